"""A clinic's monitoring window from its stored clients, and its report (training.monitoring).

The window: every client of the clinic with a risk stored in the last N days (by the
stored prediction's `computed_at`: the clients the service answered for in the window,
whether their sessions were pushed late or on time), each once, at the latest landmark
its stored sessions reach. The feature rows come from the stored sessions through the
one feature builder, as a stored risk does: the stored sessions' measures (read from
each payload when it was written) go into the grid's one cell writer through
service.scoring.episodes (grid_from_window, as grid_from_episodes for a request; no
EpisodeIn is rebuilt), then training.features; the probability
is the monitored model's calibrated one on those rows (not the stored, published one:
that is rounded, and may come from an older champion). Clients with a stored outcome
give the `Outcomes` rows: their probability at every landmark they reached.

Two queries of the window's columns whatever the clinic's size
(service.storage.repository.window_clients). The report is computed on request of
`GET /v1/monitoring` or `dropout-risk monitor`, never on a prediction's path; the API
keeps the last reports in a ReportCache, keyed by what the report depends on (clinic,
model version, window, the clinic's writes), so asking again costs two aggregates.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session

from service.scoring.episodes import grid_from_window
from service.storage import repository as repo
from training.errors import DropoutRiskError
from training.features import FloatArray, IntArray, landmark_examples, latest_landmark_features
from training.monitoring import (
    MonitoredModel,
    MonitoringReport,
    Outcomes,
    PeriodSplit,
    Window,
    monitor,
)
from training.registry import LoadedModel

MAX_WINDOW_DAYS = 730
WINDOW_RULE = f"<N>d, N a whole number of days from 1 to {MAX_WINDOW_DAYS} (e.g. 90d)"
_WINDOW = re.compile(r"^([0-9]{1,3})d$")
# The figures over time: weeks, or for a window longer than PERIODS weeks, PERIODS periods
# of ceil(days / PERIODS) days (a 365-day window: 13 periods of 29 days).
PERIOD_DAYS = 7
PERIODS = 13


class InvalidWindow(DropoutRiskError):
    """A window that is not <N>d with N from 1 to MAX_WINDOW_DAYS."""


def parse_window(text: str) -> int:
    """'90d' -> 90; InvalidWindow naming the field, the value and the rule otherwise."""
    match = _WINDOW.match(text)
    days = int(match.group(1)) if match else 0
    if not 1 <= days <= MAX_WINDOW_DAYS:
        raise InvalidWindow(f"window: value {text[:40]!r} must be {WINDOW_RULE}")
    return days


def _landmarks(model: LoadedModel) -> tuple[int, ...]:
    return tuple(sorted(model.meta.landmarks))


def period_days(days: int) -> int:
    """The length of a window's periods (the figures over time): PERIOD_DAYS, or
    ceil(days / PERIODS) when that is longer."""
    return max(PERIOD_DAYS, math.ceil(days / PERIODS))


def period_bounds(days: int, now: datetime) -> tuple[tuple[datetime, datetime], ...]:
    """The window's consecutive periods, oldest first: period_days(days) each, counted
    back from `now`; the oldest is cut at the window's start, so it may be shorter (a
    30-day window: 2 days, then 4 weeks)."""
    length = timedelta(days=period_days(days))
    start = _since(days, now)
    bounds: list[tuple[datetime, datetime]] = []
    end = now
    while end > start:
        bounds.append((max(end - length, start), end))
        end -= length
    return tuple(reversed(bounds))


def _period_of(
    stored: repo.StoredWindow, bounds: tuple[tuple[datetime, datetime], ...]
) -> IntArray:
    """Each stored client's period: the one holding its latest risk in the window (a risk
    stored after the report's `now` counts in the last)."""
    starts = np.array([repo.epoch_micros(start) for start, _ in bounds[1:]], dtype=np.int64)
    return np.searchsorted(starts, stored.clients.last_risk, side="right").astype(np.int64)


def window_of(stored: repo.StoredWindow, model: LoadedModel) -> Window:
    """The window of these stored clients for this model (see the module's docstring)."""
    return _window_parts(stored, model)[0]


def _window_parts(
    stored: repo.StoredWindow, model: LoadedModel
) -> tuple[Window, IntArray, IntArray]:
    """The window, and which stored client each of its rows and outcome rows is of.

    With outcomes stored, every landmark each client reached is scored once and the
    window's rows are each client's latest of them (the same features: one builder); with
    none, only the latest landmark's rows are built and scored."""
    landmarks = _landmarks(model)
    grid = grid_from_window(stored, max(landmarks))
    y = stored.clients.dropout
    if not np.isfinite(y).any():
        X, landmark = latest_landmark_features(grid, landmarks)
        keep = np.flatnonzero(landmark > 0)
        rows = X[keep]
        window = Window(rows, landmark[keep].astype(np.int64), _probability(model, rows), None)
        return window, keep, np.zeros(0, dtype=np.int64)
    examples = landmark_examples(grid, landmarks)  # blocks in increasing landmark order
    p = _probability(model, examples.X)  # column-major, as the predictors read fastest
    latest = np.full(grid.n_clients, -1, dtype=np.int64)
    np.maximum.at(latest, examples.row_client, np.arange(examples.row_client.shape[0]))
    keep = np.flatnonzero(latest >= 0)
    at = latest[keep]
    known = np.isfinite(y[examples.row_client])
    owner = examples.row_client[known].astype(np.int64)
    outcomes = Outcomes(episode=owner, landmark=examples.landmark[known], p=p[known], y=y[owner])
    rows = examples.X[at]
    window = Window(rows, examples.landmark[at].astype(np.int64), p[at], outcomes)
    return window, keep, owner


def _probability(model: LoadedModel, X: FloatArray) -> FloatArray:
    if not X.shape[0]:
        return np.zeros(0)
    return np.asarray(model.probability(X), dtype=np.float64).reshape(-1)


def _since(days: int, now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)) - timedelta(days=days)


def stored_window(
    s: Session, clinic: str, model: LoadedModel, days: int, now: datetime | None = None
) -> Window:
    """The clinic's window of the last `days` days (by stored-prediction time)."""
    return window_of(repo.window_clients(s, clinic, _since(days, now)), model)


def _report(
    s: Session,
    model: LoadedModel,
    stored: repo.StoredWindow,
    clinic: str,
    days: int,
    now: datetime,
) -> MonitoringReport:
    """training.monitoring.monitor on the stored window, its next steps counting every
    labelled episode of the clinic (a retrain exports them all, not just the window's),
    its periods those of period_bounds (each client in the period of its latest risk). A
    model without a reference profile gets the report's "no reference profile" figures,
    not an error."""
    meta = MonitoredModel.from_metadata(model.meta)
    labelled = repo.outcome_counts(s, clinic)
    window, row_client, outcome_client = _window_parts(stored, model)
    bounds = period_bounds(days, now)
    period = _period_of(stored, bounds)
    split = PeriodSplit(bounds, period[row_client], period[outcome_client])
    return monitor(meta, window, clinic, labelled_outcomes=labelled, periods=split)


@dataclass(frozen=True)
class _Cached:
    report: MonitoringReport
    since_at_least: datetime | None  # valid while the window starts at or before this
    until: datetime  # and never after this (ReportCache.max_age after it was computed)


class ReportCache:
    """The last `size` monitoring reports (least recently used out first), each keyed by
    (clinic, model version, window days, the clinic's writes: repo.ClinicWrites).

    A write that can change a report adds a stored risk or records an outcome, so it
    changes the key; a report also expires when the window's start passes the oldest
    risk it was computed from (a client may have left the window without any write),
    and after `max_age` whatever happens, which bounds what no count or latest value can
    see (an outcome updated by a transaction that committed after a later one's). Shared
    by the API's worker threads; a report is immutable, so a hit returns the very object.
    """

    def __init__(self, size: int = 64, max_age: timedelta = timedelta(minutes=5)) -> None:
        if size < 1:
            raise ValueError(f"size: value {size} must be at least 1")
        self.size, self.max_age = size, max_age
        self._entries: OrderedDict[tuple[object, ...], _Cached] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(
        self, key: tuple[object, ...], since: datetime, now: datetime
    ) -> MonitoringReport | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            fresh = now < entry.until and (
                entry.since_at_least is None or since <= entry.since_at_least
            )
            if not fresh:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry.report

    def put(
        self,
        key: tuple[object, ...],
        report: MonitoringReport,
        since_at_least: datetime | None,
        now: datetime,
    ) -> None:
        with self._lock:
            self._entries[key] = _Cached(report, since_at_least, now + self.max_age)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


def clinic_report(
    s: Session,
    clinic: str,
    model: LoadedModel,
    days: int,
    now: datetime | None = None,
    cache: ReportCache | None = None,
) -> MonitoringReport:
    """training.monitoring.monitor on the clinic's stored window, from `cache` when it
    holds the report of the clinic's current writes (then only repo.clinic_writes runs).
    `s` reads one snapshot (Storage.snapshot), as repo.window_clients needs."""
    now = now or datetime.now(UTC)
    since = _since(days, now)
    if cache is None:
        return _report(s, model, repo.window_clients(s, clinic, since), clinic, days, now)
    key = (clinic, model.version, days, repo.clinic_writes(s, clinic))
    report = cache.get(key, since, now)
    if report is None:
        stored = repo.window_clients(s, clinic, since)
        report = _report(s, model, stored, clinic, days, now)
        cache.put(key, report, stored.earliest, now)
    return report
