"""Episodes laid out as the shared SessionGrid, so the service computes features with the
very builder training used (training.features); only this layout step differs.

Two sources give sessions to the one cell writer, training.features' grid_from_rows (which
lays out the contract tables too): request episodes (`grid_from_episodes`, EpisodeIn, as
SessionValues rows through training.features.session_table) and a monitoring window's
stored sessions (`grid_from_window`: the cell writer's table as storage reads it, their
measures as stored beside the payloads when they were written, without rebuilding an
EpisodeIn). Both roll the WAI-SR and SRS items up with training.vocabulary."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from service.core.schemas import EpisodeIn, SrsIn, WaiIn
from training.features import (
    GENDER_UNKNOWN,
    SessionGrid,
    SessionValues,
    gender_word_code,
    grid_from_rows,
    session_table,
)
from training.vocabulary import srs_items_total, wai_subscale_means

if TYPE_CHECKING:  # a type only: the layout step itself never reads the database
    from service.storage.repository import StoredWindow


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


def grid_from_episodes(episodes: Sequence[EpisodeIn], max_session: int) -> SessionGrid:
    """Request episodes as a grid (sessions after `max_session` only count towards
    `reached`): their sessions collected as plain tuples and turned into one array once,
    since building numpy arrays per session costs more than the rest of a one-client
    prediction's feature work."""
    rows: list[SessionValues] = []
    age = [math.nan if e.age is None else float(e.age) for e in episodes]
    gender = [gender_word_code(e.gender) for e in episodes]
    for i, episode in enumerate(episodes):
        for s in episode.sessions:
            goal, task, bond = (None, None, None) if s.wai is None else wai_subscales(s.wai)
            srs = None if s.srs is None else srs_total(s.srs)
            ors = None if s.ors is None else s.ors.total
            phq9 = None if s.phq9 is None else s.phq9.total
            rows.append((i, s.number, s.date, goal, task, bond, srs, ors, phq9))
    return grid_from_rows(len(episodes), max_session, session_table(rows), age, gender)


def grid_from_window(window: StoredWindow, max_session: int) -> SessionGrid:
    """A monitoring window's stored clients as a grid, one column per client in
    window.clients order: the same cells as grid_from_episodes gives for the EpisodeIn
    that service.scoring.records.episode rebuilds from the same stored rows (the window's
    sessions come as the cell writer's table already). Each of the window's gender words
    is coded once (as training.features.gender_code does a column)."""
    clients = window.clients
    codes = np.array([*map(gender_word_code, clients.gender_words), GENDER_UNKNOWN])
    gender = codes[clients.gender]  # -1, no gender recorded, picks the trailing unknown
    return grid_from_rows(len(clients), max_session, window.sessions, clients.age, gender)
