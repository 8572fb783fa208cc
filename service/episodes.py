"""Request episodes laid out as the shared SessionGrid, so the service computes features
with the very builder training used (training.features); only this layout step differs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np

from service.schemas import EpisodeIn, SessionIn, SrsIn, WaiIn
from training.features import (
    BOND,
    DAY,
    GOAL,
    ORS,
    PHQ9,
    SRS,
    TASK,
    SessionGrid,
    gender_word_code,
)

# WAI-SR item -> subscale (Hatcher & Gillaspy 2006): the one place this mapping lives.
WAI_SR_ITEMS: dict[str, tuple[int, ...]] = {
    "task": (1, 2, 10, 12),
    "bond": (3, 5, 7, 9),
    "goal": (4, 6, 8, 11),
}
_EPOCH = date(1970, 1, 1).toordinal()


def wai_subscales(wai: WaiIn) -> tuple[float | None, float | None, float | None]:
    """(goal, task, bond) item means, from the means given or from the 12 answers."""
    if wai.items is None:
        return wai.goal, wai.task, wai.bond
    items = wai.items

    def mean(numbers: tuple[int, ...]) -> float:
        return sum(items[n - 1] for n in numbers) / len(numbers)

    return mean(WAI_SR_ITEMS["goal"]), mean(WAI_SR_ITEMS["task"]), mean(WAI_SR_ITEMS["bond"])


def srs_total(srs: SrsIn) -> float:
    """The SRS total, given or summed from its four 0-10 items."""
    if srs.total is not None:
        return srs.total
    items = (srs.relationship, srs.goals, srs.approach, srs.overall)
    return float(sum(i for i in items if i is not None))


def _fill_session(values: np.ndarray, j: int, i: int, session: SessionIn) -> None:
    if session.wai is not None:
        for row, value in zip((GOAL, TASK, BOND), wai_subscales(session.wai), strict=True):
            if value is not None:
                values[row, j, i] = value
    if session.srs is not None:
        values[SRS, j, i] = srs_total(session.srs)
    if session.ors is not None:
        values[ORS, j, i] = session.ors.total
    if session.phq9 is not None:
        values[PHQ9, j, i] = session.phq9.total
    if session.date is not None:
        values[DAY, j, i] = session.date.toordinal() - _EPOCH


def grid_from_episodes(episodes: Sequence[EpisodeIn], max_session: int) -> SessionGrid:
    """Sessions after `max_session` only count towards `reached`, as in training."""
    grid = SessionGrid.empty(len(episodes), max_session)
    for i, episode in enumerate(episodes):
        grid.reached[i] = max(s.number for s in episode.sessions)
        if episode.age is not None:
            grid.age[i] = episode.age
        grid.gender[i] = gender_word_code(episode.gender)
        for session in episode.sessions:
            if session.number <= max_session:
                _fill_session(grid.values, session.number - 1, i, session)
    return grid
