"""A simulated clinic stored as the EHR API stores it, for the monitoring tests (the API,
the CLI and the page /ui/monitoring): 400 clients of the trained_registry's own cohort
(simulate(1500, 7)), or of that cohort simulated again with other parameters, with their
sessions, the recomputed risk and the outcome."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import select, update

from service.commands.demo import _session as session_body
from service.scoring.records import recompute, require_client
from service.storage import repository as repo
from service.storage.database import Storage
from service.storage.tables import PredictionRow
from training.registry import LoadedModel
from training.simulate import SimulationParams, simulate

CLIENTS, COHORT, SEED = 400, 1500, 7  # COHORT and SEED: the trained_registry's cohort
# The plots of /ui/monitoring, by their element id (service.ui.monitoring_views.plots)
PLOTS = (
    "plot-score",
    "plot-psi",
    "plot-auc",
    "plot-calibration",
    "plot-flag-time",
    "plot-auc-time",
    "plot-slope-time",
    "plot-intercept-time",
)


def clinic_tables(params: SimulationParams | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    clients, sessions = simulate(COHORT, SEED, params)
    chosen = clients.iloc[-CLIENTS:]
    return chosen, sessions[sessions["client_id"].isin(chosen["client_id"])]


def store_clinic(
    database_url: str,
    model: LoadedModel,
    clinic: str,
    clients: pd.DataFrame,
    sessions: pd.DataFrame,
) -> pd.DataFrame:
    """Store the clinic (clients, sessions with a measure, risk, outcome); returns the
    sessions stored, in the contract's columns."""
    bodies = [session_body(r) for r in sessions.to_dict("records")]
    keep = [len(b) > 1 for b in bodies]  # a session needs a measure besides its date
    stored = sessions[keep]
    by_client: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for row, body in zip(
        stored.to_dict("records"),
        [b for b, k in zip(bodies, keep, strict=False) if k],
        strict=False,
    ):
        by_client.setdefault(row["client_id"], []).append((int(row["session_number"]), body))
    storage = Storage(database_url)
    try:
        with storage.session() as s:
            repo.ensure_clinic(s, clinic)
            for c in clients.to_dict("records"):
                cid = c["client_id"]
                if cid not in by_client:
                    continue
                age = None if pd.isna(c["age"]) else int(c["age"])
                gender = None if pd.isna(c["gender"]) else c["gender"]
                repo.upsert_client(s, clinic, cid, age, gender, None)
                for number, body in by_client[cid]:
                    day = pd.Timestamp(body["date"]).date() if body.get("date") else None
                    repo.upsert_session(s, clinic, cid, number, day, body)
                recompute(s, clinic, require_client(s, clinic, cid), model, None)
                if not pd.isna(c["dropout"]):
                    repo.set_outcome(s, clinic, cid, bool(c["dropout"]), date(2026, 11, 1))
    finally:
        storage.close()
    return stored


def move_back(database_url: str, clinic: str, every: int, by: timedelta) -> int:
    """Move every `every`-th client's stored risks (in client id order) `by` into the
    past: a clinic whose window spans more than one period (the figures over time).
    Returns how many clients moved."""
    storage = Storage(database_url)
    try:
        with storage.session() as s:
            ids = s.scalars(
                select(PredictionRow.client_id)
                .where(PredictionRow.clinic_id == clinic)
                .distinct()
                .order_by(PredictionRow.client_id)
            ).all()
            moved = list(ids[::every])
            mine = (PredictionRow.clinic_id == clinic) & PredictionRow.client_id.in_(moved)
            # in Python: datetime arithmetic in SQL differs between the two databases
            rows = s.execute(select(PredictionRow.id, PredictionRow.computed_at).where(mine)).all()
            for row_id, at in rows:
                moved_at = update(PredictionRow).where(PredictionRow.id == row_id)
                s.execute(moved_at.values(computed_at=at - by))
    finally:
        storage.close()
    return len(moved)
