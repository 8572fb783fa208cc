"""Request episodes laid out as the shared SessionGrid, so the service computes features
with the very builder training used (training.features); only this layout step differs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date

import numpy as np

from service.core.schemas import EpisodeIn, SessionIn, SrsIn, WaiIn
from training.features import (
    BOND,
    DAY,
    GOAL,
    MEASURES,
    ORS,
    PHQ9,
    SRS,
    TASK,
    SessionGrid,
    gender_word_code,
)
from training.vocabulary import WAI_SR_ITEMS, WAI_SUBSCALES

# training.vocabulary's WAI-SR item map as 0-based positions in the 12 answers, in
# (goal, task, bond) order: built once, as this runs for every session of every request.
_SUBSCALE_POSITIONS = tuple(tuple(n - 1 for n in WAI_SR_ITEMS[name]) for name in WAI_SUBSCALES)
_EPOCH = date(1970, 1, 1).toordinal()


def _mean(items: list[int], positions: tuple[int, ...]) -> float:
    return sum(map(items.__getitem__, positions)) / len(positions)


def wai_subscales(wai: WaiIn) -> tuple[float | None, float | None, float | None]:
    """(goal, task, bond) item means, from the means given or from the 12 answers."""
    items = wai.items
    if items is None:
        return wai.goal, wai.task, wai.bond
    goal, task, bond = _SUBSCALE_POSITIONS
    return _mean(items, goal), _mean(items, task), _mean(items, bond)


def srs_total(srs: SrsIn) -> float:
    """The SRS total, given or summed from its four 0-10 items."""
    if srs.total is not None:
        return srs.total
    items = (srs.relationship, srs.goals, srs.approach, srs.overall)
    return float(sum([i for i in items if i is not None]))


def _fill_session(cells: list[float], at: int, plane: int, session: SessionIn) -> None:
    """Write one session's measures into the flat cells of a grid (measure m of the cell
    at `at` lives at m * plane + at)."""
    if session.wai is not None:
        goal, task, bond = wai_subscales(session.wai)
        if goal is not None:
            cells[GOAL * plane + at] = goal
        if task is not None:
            cells[TASK * plane + at] = task
        if bond is not None:
            cells[BOND * plane + at] = bond
    if session.srs is not None:
        cells[SRS * plane + at] = srs_total(session.srs)
    if session.ors is not None:
        cells[ORS * plane + at] = session.ors.total
    if session.phq9 is not None:
        cells[PHQ9 * plane + at] = session.phq9.total
    if session.date is not None:
        cells[DAY * plane + at] = session.date.toordinal() - _EPOCH


def grid_from_episodes(episodes: Sequence[EpisodeIn], max_session: int) -> SessionGrid:
    """Sessions after `max_session` only count towards `reached`, as in training.

    Filled as plain Python lists and turned into arrays once: writing numpy cells one by
    one costs more than the rest of a one-client prediction's feature work."""
    n = len(episodes)
    plane = max_session * n  # cells per measure
    cells = [math.nan] * (len(MEASURES) * plane)
    age, gender, reached = [math.nan] * n, [0] * n, [0] * n
    for i, episode in enumerate(episodes):
        for session in episode.sessions:
            number = session.number
            reached[i] = max(reached[i], number)
            if number <= max_session:
                _fill_session(cells, (number - 1) * n + i, plane, session)
        if episode.age is not None:
            age[i] = episode.age
        gender[i] = gender_word_code(episode.gender)
    return SessionGrid(
        np.array(cells).reshape(len(MEASURES), max_session, n),
        np.array(age),
        np.array(gender, dtype=np.int64),
        np.array(reached, dtype=np.int64),
    )
