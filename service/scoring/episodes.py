"""Episodes laid out as the shared SessionGrid, so the service computes features with the
very builder training used (training.features); only this layout step differs.

Two sources feed the one cell writer (`_GridCells.session`): request episodes
(`grid_from_episodes`, EpisodeIn) and a monitoring window's stored sessions
(`grid_from_window`, their measures read from the stored payloads without rebuilding an
EpisodeIn: the payloads were validated when they were written). Both roll the WAI-SR and
SRS items up with training.vocabulary."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

import numpy as np

from service.core.schemas import EpisodeIn, SrsIn, WaiIn
from training.features import DAY, MEASURES, SessionGrid, gender_word_code
from training.vocabulary import srs_items_total, wai_subscale_means

if TYPE_CHECKING:  # a type only: the layout step itself never reads the database
    from service.storage.repository import StoredWindow

_EPOCH = date(1970, 1, 1).toordinal()
# One session's values of training.features.MEASURES but the date, in that order (WAI-SR
# goal, task and bond means, SRS, ORS and PHQ-9 totals); None: not taken.
Measures = Sequence[float | None]


def wai_subscales(wai: WaiIn) -> tuple[float | None, float | None, float | None]:
    """(goal, task, bond) item means, from the means given or from the 12 answers."""
    items = wai.items
    if items is None:
        return wai.goal, wai.task, wai.bond
    return wai_subscale_means(items)


def srs_total(srs: SrsIn) -> float | None:
    """The SRS total, given or summed from its four 0-10 items (SrsIn has one or the
    other)."""
    if srs.total is not None:
        return srs.total
    return srs_items_total((srs.relationship, srs.goals, srs.approach, srs.overall))


class _GridCells:
    """A SessionGrid of n clients being filled, as plain Python lists turned into arrays
    once: writing numpy cells one by one costs more than the rest of a one-client
    prediction's feature work. Measure m of session j of client i lives at
    m * plane + j * n + i."""

    __slots__ = ("age", "cells", "gender", "max_session", "n", "plane", "reached")

    def __init__(self, n: int, max_session: int) -> None:
        self.n, self.max_session = n, max_session
        self.plane = max_session * n  # cells per measure
        self.cells = [math.nan] * (len(MEASURES) * self.plane)
        self.age, self.gender, self.reached = [math.nan] * n, [0] * n, [0] * n

    def client(self, i: int, age: int | None, gender: str | None) -> None:
        if age is not None:
            self.age[i] = age
        self.gender[i] = gender_word_code(gender)

    def session(self, i: int, number: int, measures: Measures, day: date | None) -> None:
        """The one cell writer: session `number` of client i, its `measures` (MEASURES
        order, the date apart) and its date. Sessions after max_session only count towards
        `reached`, as in training; a measure not taken (None) stays NaN."""
        reached = self.reached
        if number > reached[i]:
            reached[i] = number
        if number > self.max_session:
            return
        cells, plane = self.cells, self.plane
        at = (number - 1) * self.n + i
        for m, value in enumerate(measures):
            if value is not None:
                cells[m * plane + at] = value
        if day is not None:
            cells[DAY * plane + at] = day.toordinal() - _EPOCH

    def grid(self) -> SessionGrid:
        return SessionGrid(
            np.array(self.cells, dtype=np.float64).reshape(len(MEASURES), self.max_session, self.n),
            np.array(self.age),
            np.array(self.gender, dtype=np.int64),
            np.array(self.reached, dtype=np.int64),
        )


def grid_from_episodes(episodes: Sequence[EpisodeIn], max_session: int) -> SessionGrid:
    """Request episodes as a grid (sessions after `max_session` only count towards
    `reached`)."""
    grid = _GridCells(len(episodes), max_session)
    for i, episode in enumerate(episodes):
        for s in episode.sessions:
            goal, task, bond = (None, None, None) if s.wai is None else wai_subscales(s.wai)
            srs = None if s.srs is None else srs_total(s.srs)
            ors = None if s.ors is None else s.ors.total
            phq9 = None if s.phq9 is None else s.phq9.total
            grid.session(i, s.number, (goal, task, bond, srs, ors, phq9), s.date)
        grid.client(i, episode.age, episode.gender)
    return grid.grid()


def grid_from_window(window: StoredWindow, max_session: int) -> SessionGrid:
    """A monitoring window's stored clients as a grid, one column per client in
    window.clients order: the same cells as grid_from_episodes gives for the EpisodeIn
    that service.scoring.records.episode rebuilds from the same stored rows."""
    grid = _GridCells(len(window.clients), max_session)
    write = grid.session
    for at, number, day, *measures in window.sessions:  # WindowSession: MEASURES order
        write(at, number, measures, day)
    for i, client in enumerate(window.clients):
        grid.client(i, client.age, client.gender)
    return grid.grid()
