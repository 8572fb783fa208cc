"""How long the service's monitoring report of a large clinic takes, database included
(issue 15: under 1 s for 50,000 stored clients on PostgreSQL). Run on demand.

The clinic: CLIENTS simulated clients (training.simulate), their early sessions (1-3, as
an EHR would have pushed them so far) as the API stores them, one stored risk each
computed now, and an outcome for every client. They are written with bulk inserts into
the real tables (the repository's per-row upserts would take minutes here; what is timed
is only the read), then ANALYZEd on PostgreSQL, as autovacuum would after such a load.
Timed, in rounds that alternate the parts (load from elsewhere on a shared machine hits
them all), those that read the database each in its own transaction:

- the reference: a plain read of the clinic's session keys (client id and number of
  every stored session), the floor of any query that visits each session;
- the query (service.storage.repository.window_clients);
- the window built from it (service.scoring.monitoring_window.window_of: the stored
  payloads into the one cell writer, the one feature builder, the model's
  probabilities, the outcome rows);
- the report (training.monitoring.monitor);
- clinic_report cold (no cache: what the first request of a clinic's window costs) and
  cached (a ReportCache holding the report of the clinic's current writes: what asking
  again costs, repo.clinic_writes and the look-up).

The garbage collector is tuned as the app tunes it (service/app.py, GC_THRESHOLDS). Each
is reported as its median and as a ratio to the reference's median in the same run.
The model is the shipped one (no reference profile: drift figures are skipped, so the
report's share here is smaller than bench/monitoring.py's, which times it with one).

Usage: .venv/bin/python bench/monitoring_service.py --database-url postgresql://... \
    [--clients 50000] [--repeats 5] [--reuse]
The database must exist; its tables are created by the migrations, and the bench clinic's
rows are replaced (--reuse: kept, when the clinic already has --clients clients).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import delete, func, insert, select, text

from service.app import GC_THRESHOLDS
from service.commands.demo import _session as session_body
from service.scoring.monitoring_window import ReportCache, clinic_report, window_of
from service.storage import repository as repo
from service.storage.database import Storage
from service.storage.engine import normalise_url
from service.storage.tables import Client, Outcome, PredictionRow, SessionRow
from training.monitoring import MonitoredModel, monitor
from training.registry import Registry
from training.simulate import simulate

REPO = Path(__file__).resolve().parents[1]
CLINIC = "bench-monitoring"
TARGET_SECONDS = 1.0


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
                    **repo.measure_columns(body),  # as repo.upsert_session stores them
                    "updated_at": now,
                }
            )
    return client_rows, session_rows, prediction_rows, outcome_rows


def _seed(storage: Storage, n: int, seed: int) -> int:
    clients, sessions, predictions, outcomes = _rows(n, seed)
    with storage.session() as s:
        for table in (PredictionRow, Outcome, SessionRow, Client):
            s.execute(delete(table).where(table.clinic_id == CLINIC))
        repo.ensure_clinic(s, CLINIC)
    with storage.session() as s:
        for table, rows in ((Client, clients), (SessionRow, sessions)):
            for i in range(0, len(rows), 5_000):
                s.execute(insert(table), rows[i : i + 5_000])
        for table, rows in ((PredictionRow, predictions), (Outcome, outcomes)):
            for i in range(0, len(rows), 5_000):
                s.execute(insert(table), rows[i : i + 5_000])
    if storage.engine.dialect.name == "postgresql":
        with storage.session() as s:  # the planner's statistics, as autovacuum would take
            s.execute(text("ANALYZE clients, sessions, predictions, outcomes"))
    return len(sessions)


def _stored(storage: Storage) -> tuple[int, int]:
    with storage.session() as s:
        clients = s.scalar(select(func.count()).where(Client.clinic_id == CLINIC))
        sessions = s.scalar(select(func.count()).where(SessionRow.clinic_id == CLINIC))
    return int(clients or 0), int(sessions or 0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--reuse", action="store_true", help="keep a clinic already seeded")
    args = parser.parse_args()
    storage = Storage(normalise_url(args.database_url))
    model = Registry(REPO / "models").load()
    clients, sessions = _stored(storage)
    if not (args.reuse and clients == args.clients):
        started = time.perf_counter()
        sessions = _seed(storage, args.clients, args.seed)
        print(
            f"stored {args.clients:,} clients, {sessions:,} sessions in "
            f"{time.perf_counter() - started:.0f} s"
        )
    else:
        print(f"reused {clients:,} stored clients, {sessions:,} sessions")
    # the garbage collector tuned as the app tunes it once it has started (service/app.py)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    since = datetime(2000, 1, 1, tzinfo=UTC)
    days = 730  # every stored risk was computed just now

    def query() -> repo.StoredWindow:
        with storage.snapshot() as s:  # as the monitoring doors read it
            return repo.window_clients(s, CLINIC, since)

    def keys() -> object:
        with storage.session() as s:
            return s.execute(
                select(SessionRow.client_id, SessionRow.number).where(
                    SessionRow.clinic_id == CLINIC
                )
            ).all()

    stored = query()
    window = window_of(stored, model)
    monitored = MonitoredModel.from_metadata(model.meta)
    print(
        f"window: {window.clients:,} clients, {len(stored.sessions):,} sessions, "
        f"{window.labelled:,} labelled episodes"
    )
    cache = ReportCache()

    def report(with_cache: ReportCache | None) -> object:
        with storage.snapshot() as s:
            return clinic_report(s, CLINIC, model, days, cache=with_cache)

    if report(cache) is not report(cache):  # the second is a hit: the very report
        raise SystemExit("the cache missed a repeated call")
    parts: dict[str, Callable[[], object]] = {
        "reference: the session keys": keys,
        "query (window_clients)": query,
        "window (window_of)": lambda: window_of(stored, model),
        "report (monitor)": lambda: monitor(monitored, window, CLINIC),
        "clinic_report, cold": lambda: report(None),
        "clinic_report, cached": lambda: report(cache),
    }
    times: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(args.repeats):
        for name, fn in parts.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    reference = statistics.median(times["reference: the session keys"])
    print("\n| what | median | min–max | x reference |")
    print("|---|---|---|---|")
    for name, got in times.items():
        ms = sorted(t * 1000 for t in got)
        print(
            f"| {name} | {statistics.median(ms):.0f} ms | {ms[0]:.0f}–{ms[-1]:.0f} ms "
            f"| {statistics.median(got) / reference:.1f}x |"
        )
    for name in ("clinic_report, cold", "clinic_report, cached"):
        median = statistics.median(times[name])
        verdict = "met" if median < TARGET_SECONDS else "NOT met"
        print(f"{name}: median {median:.3f} s; target < {TARGET_SECONDS:.0f} s: {verdict}")
    storage.close()


if __name__ == "__main__":
    main()
