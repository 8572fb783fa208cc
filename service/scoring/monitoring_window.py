"""A clinic's monitoring window from its stored clients, and its report (training.monitoring).

The window: every client of the clinic with a risk stored in the last N days (by the
stored prediction's `computed_at`: the clients the service answered for in the window,
whether their sessions were pushed late or on time), each once, at the latest landmark
its stored sessions reach. The feature rows come from the stored sessions through the
one feature builder, as a stored risk does (service.scoring.records.episode, then
service.scoring.episodes.grid_from_episodes, then training.features); the probability
is the monitored model's calibrated one on those rows (not the stored, published one:
that is rounded, and may come from an older champion). Clients with a stored outcome
give the `Outcomes` rows: their probability at every landmark they reached.

Two queries whatever the clinic's size (service.storage.repository.window_clients). The
report is computed on request of `GET /v1/monitoring` or `dropout-risk monitor`, never
on a prediction's path.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session

from service.scoring.episodes import grid_from_episodes
from service.scoring.records import episode
from service.storage import repository as repo
from training.errors import DropoutRiskError
from training.features import FloatArray, landmark_examples, latest_landmark_features
from training.monitoring import MonitoredModel, MonitoringReport, Outcomes, Window, monitor
from training.registry import LoadedModel

MAX_WINDOW_DAYS = 730
WINDOW_RULE = f"<N>d, N a whole number of days from 1 to {MAX_WINDOW_DAYS} (e.g. 90d)"
_WINDOW = re.compile(r"^([0-9]{1,3})d$")


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
    return tuple(sorted(int(k) for k in model.metadata["landmarks"]))


def window_of(clients: list[repo.WindowClient], model: LoadedModel) -> Window:
    """The window of these stored clients for this model (see the module's docstring)."""
    landmarks = _landmarks(model)
    with_sessions = [c for c in clients if c.sessions]
    episodes = [episode(c.client, c.sessions) for c in with_sessions]
    grid = grid_from_episodes(episodes, max(landmarks))
    X, landmark = latest_landmark_features(grid, landmarks)
    keep = landmark > 0
    rows = np.ascontiguousarray(X[keep])
    p = _probability(model, rows)
    y = np.array(
        [np.nan if c.dropout is None else float(c.dropout) for c in with_sessions],
        dtype=np.float64,
    )
    outcomes = None
    if np.isfinite(y).any():
        examples = landmark_examples(grid, landmarks)
        known = np.isfinite(y[examples.row_client])
        owner = examples.row_client[known].astype(np.int64)
        outcomes = Outcomes(
            episode=owner,
            landmark=examples.landmark[known],
            p=_probability(model, np.ascontiguousarray(examples.X[known])),
            y=y[owner],
        )
    return Window(rows, landmark[keep].astype(np.int64), p, outcomes)


def _probability(model: LoadedModel, X: FloatArray) -> FloatArray:
    if not X.shape[0]:
        return np.zeros(0)
    return np.asarray(model.probability(X), dtype=np.float64).reshape(-1)


def stored_window(
    s: Session, clinic: str, model: LoadedModel, days: int, now: datetime | None = None
) -> Window:
    """The clinic's window of the last `days` days (by stored-prediction time)."""
    since = (now or datetime.now(UTC)) - timedelta(days=days)
    return window_of(repo.window_clients(s, clinic, since), model)


def clinic_report(
    s: Session, clinic: str, model: LoadedModel, days: int, now: datetime | None = None
) -> MonitoringReport:
    """training.monitoring.monitor on the clinic's stored window. A model without a
    reference profile gets the report's "no reference profile" figures, not an error."""
    window = stored_window(s, clinic, model, days, now)
    return monitor(MonitoredModel.from_metadata(model.meta), window, clinic)
