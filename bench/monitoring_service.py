"""How long the service's monitoring report of a large clinic takes, database included
(issue 15: under 1 s for 50,000 stored clients on PostgreSQL). Run on demand.

The clinic: CLIENTS simulated clients (training.simulate), their early sessions (1-3, as
an EHR would have pushed them so far) as the API stores them, one stored risk each
computed now, and an outcome for every client. They are written with bulk inserts into
the real tables (the repository's per-row upserts would take minutes here; what is timed
is only the read). Timed, REPEATS times each, in one transaction per run:

- the two queries (service.storage.repository.window_clients);
- the window built from them (service.scoring.monitoring_window.window_of: episodes,
  the one feature builder, the model's probabilities, the outcome rows);
- the report (training.monitoring.monitor), and the whole of clinic_report.

The model is the shipped one (no reference profile: drift figures are skipped, so the
report's share here is smaller than bench/monitoring.py's, which times it with one).

Usage: .venv/bin/python bench/monitoring_service.py --database-url postgresql://... \
    [--clients 50000] [--repeats 5]
The database must exist; its tables are created by the migrations, and the bench clinic's
rows are replaced.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import delete, insert

from service.commands.demo import _session as session_body
from service.scoring.monitoring_window import clinic_report, window_of
from service.storage import repository as repo
from service.storage.database import Storage
from service.storage.engine import normalise_url
from service.storage.tables import Client, Outcome, Prediction, SessionRow
from training.monitoring import MonitoredModel, monitor
from training.registry import Registry
from training.simulate import simulate

REPO = Path(__file__).resolve().parents[1]
CLINIC = "bench-monitoring"
TARGET_SECONDS = 1.0


def _times(fn: Callable[[], object], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def _rows(n: int, seed: int) -> tuple[list[dict[str, Any]], ...]:
    clients, sessions = simulate(n, seed)
    early = sessions[sessions["session_number"] <= 3]
    now = datetime.now(UTC)
    client_rows, session_rows, prediction_rows, outcome_rows = [], [], [], []
    for c in clients.to_dict("records"):
        client_rows.append(
            {
                "clinic_id": CLINIC,
                "client_id": c["client_id"],
                "age": None if pd.isna(c["age"]) else int(c["age"]),
                "gender": None if pd.isna(c["gender"]) else c["gender"],
                "therapist_id": None,
                "created_at": now,
                "updated_at": now,
            }
        )
        outcome_rows.append(
            {
                "clinic_id": CLINIC,
                "client_id": c["client_id"],
                "dropout": bool(c["dropout"]),
                "ended_on": date(2026, 11, 1),
                "recorded_at": now,
            }
        )
        prediction_rows.append(
            {
                "clinic_id": CLINIC,
                "client_id": c["client_id"],
                "computed_at": now,
                "model_version": "bench",
                "inputs_sha256": "0" * 64,
                "probability": 0.2,
                "risk_level": "moderate",
                "landmark": 1,
                "body": {},
                "level_changed": False,
            }
        )
    for r in early.to_dict("records"):
        body = session_body(r)
        if len(body) > 1:
            day = pd.Timestamp(body["date"]).date() if body.get("date") else None
            session_rows.append(
                {
                    "clinic_id": CLINIC,
                    "client_id": r["client_id"],
                    "number": int(r["session_number"]),
                    "session_date": day,
                    "payload": body,
                    "updated_at": now,
                }
            )
    return client_rows, session_rows, prediction_rows, outcome_rows


def _seed(storage: Storage, n: int, seed: int) -> int:
    clients, sessions, predictions, outcomes = _rows(n, seed)
    with storage.session() as s:
        for table in (Prediction, Outcome, SessionRow, Client):
            s.execute(delete(table).where(table.clinic_id == CLINIC))
        repo.ensure_clinic(s, CLINIC)
    with storage.session() as s:
        for table, rows in ((Client, clients), (SessionRow, sessions)):
            for i in range(0, len(rows), 5_000):
                s.execute(insert(table), rows[i : i + 5_000])
        for table, rows in ((Prediction, predictions), (Outcome, outcomes)):
            for i in range(0, len(rows), 5_000):
                s.execute(insert(table), rows[i : i + 5_000])
    return len(sessions)


def _line(name: str, times: list[float]) -> None:
    ms = sorted(t * 1000 for t in times)
    print(f"{name:<34} median {statistics.median(ms):7.0f} ms  (min {ms[0]:.0f}, max {ms[-1]:.0f})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    storage = Storage(normalise_url(args.database_url))
    model = Registry(REPO / "models").load()
    started = time.perf_counter()
    sessions = _seed(storage, args.clients, args.seed)
    took = time.perf_counter() - started
    print(f"stored {args.clients:,} clients, {sessions:,} sessions in {took:.0f} s")
    since = datetime(2000, 1, 1, tzinfo=UTC)

    def query() -> list[repo.WindowClient]:
        with storage.session() as s:
            return repo.window_clients(s, CLINIC, since)

    rows = query()
    window = window_of(rows, model)
    monitored = MonitoredModel.from_metadata(model.meta)
    print(f"window: {window.clients:,} clients, {window.labelled:,} labelled episodes")

    def whole() -> object:
        with storage.session() as s:
            return clinic_report(s, CLINIC, model, 730)

    _line("queries (window_clients)", _times(query, args.repeats))
    _line("window (window_of)", _times(lambda: window_of(rows, model), args.repeats))
    _line("report (monitor)", _times(lambda: monitor(monitored, window, CLINIC), args.repeats))
    total = _times(whole, args.repeats)
    _line("clinic_report, all of it", total)
    verdict = "under" if statistics.median(total) < TARGET_SECONDS else "OVER"
    print(f"target {TARGET_SECONDS:.0f} s: {verdict}")
    storage.close()


if __name__ == "__main__":
    main()
