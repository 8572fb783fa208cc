"""What a stored session's write costs: `PUT /v1/clients/{id}/sessions/{n}` as an EHR sends
it, in-process (the ASGI app through Starlette's test client: no network), on SQLite or
on the PostgreSQL database given with --database-url. Run on demand.

Each PUT stores one session and answers with the client's recomputed risk: the client is
locked, the session upserted, every stored session read back, the episode scored, the
risk and the audit row stored, then the commit. Timed, in rounds that alternate the parts
(load from elsewhere on a shared machine hits them all):

- the reference: `GET /healthz` (the app's middleware, no database);
- a new session (created: the risk recomputed and stored);
- the same PUT again (unchanged: nothing written but the audit row; the risk, on the
  same inputs, is the one stored).

CLIENTS clients are created first, each with session 1; round r PUTs session r + 1 of
every client, then the same again. Each figure is the median over all PUTs of its kind,
and a ratio to the reference's median in the same run; the statements each kind sends
(SQLAlchemy's, without BEGIN and COMMIT) are counted once. The database's tables are
created in a fresh SQLite file, or migrated in the given database, where each run stores
its own clinic (named with the run's start time): drop the database after.

Usage: .venv/bin/python bench/stored_writes.py [--database-url URL] [--clients 100]
       [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Engine

from service.app import create_app
from service.core.settings import Settings
from service.security.key_store import DbKeyStore
from service.storage.database import Storage

REPO = Path(__file__).resolve().parents[1]


def _session(number: int) -> dict[str, Any]:
    """Session `number`'s scores: a week apart, alliance falling a little each time."""
    return {
        "date": f"2026-10-{number * 7 - 6:02d}" if number <= 4 else f"2026-11-{number:02d}",
        "wai": {"goal": 4.0 - 0.1 * number, "task": 3.6, "bond": 4.1},
        "srs": {"total": 36.0 - number},
        "phq9": {"total": 12},
    }


class _Statements:
    """Counts the statements SQLAlchemy sends while `counting`."""

    def __init__(self) -> None:
        self.counting, self.count = False, 0
        event.listen(Engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        if self.counting:
            self.count += 1

    def of(self, fn: Callable[[], object]) -> int:
        self.counting, self.count = True, 0
        try:
            fn()
        finally:
            self.counting = False
        return self.count


def _put(client: TestClient, headers: dict[str, str], client_id: str, number: int) -> str:
    response = client.put(
        f"/v1/clients/{client_id}/sessions/{number}", json=_session(number), headers=headers
    )
    if response.status_code != 200:
        raise SystemExit(f"PUT session {number}: {response.status_code} {response.text[:200]}")
    return str(response.json()["status"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="dropout-writes-bench-"))
    url = args.database_url or f"sqlite:///{root / 'service.db'}"
    storage = Storage(url)
    storage.ensure_migrated()
    clinic = f"bench-writes-{time.time_ns()}"
    token = DbKeyStore(storage.factory).create("ehr", clinic, ["clients:read", "clients:write"])[1]
    storage.close()
    settings = Settings(
        models_dir=REPO / "models",
        database_url=url,
        pseudonym_key_file=root / "p.key",
        ui_secret_file=root / "ui.key",
        log_level="warning",
    )
    headers = {"Authorization": f"Bearer {token}"}
    ids = [f"w{i:04d}" for i in range(args.clients)]
    counter = _Statements()
    times: dict[str, list[float]] = {"reference: GET /healthz": [], "created": [], "unchanged": []}
    with TestClient(create_app(settings)) as client:
        for client_id in [*ids, "probe"]:
            body = {"age": 34, "gender": "female"}
            client.put(f"/v1/clients/{client_id}", json=body, headers=headers)
            _put(client, headers, client_id, 1)
        created = counter.of(lambda: _put(client, headers, "probe", 2))
        unchanged = counter.of(lambda: _put(client, headers, "probe", 2))
        for r in range(args.rounds):
            number = r + 2
            for client_id in ids:
                started = time.perf_counter()
                client.get("/healthz")
                times["reference: GET /healthz"].append(time.perf_counter() - started)
                for kind in ("created", "unchanged"):
                    started = time.perf_counter()
                    status = _put(client, headers, client_id, number)
                    times[kind].append(time.perf_counter() - started)
                    if status != kind:
                        raise SystemExit(f"expected {kind}, the service said {status}")
    reference = statistics.median(times["reference: GET /healthz"])
    dialect = url.split(":", 1)[0].split("+", 1)[0]
    print(f"{dialect}: {args.clients} clients x {args.rounds} rounds")
    print("\n| what | median | p90 | x reference | statements |")
    print("|---|---|---|---|---|")
    sent = {"created": created, "unchanged": unchanged}
    for name, got in times.items():
        ms = sorted(t * 1000 for t in got)
        p90 = ms[int(0.9 * (len(ms) - 1))]
        print(
            f"| {name} | {statistics.median(ms):.2f} ms | {p90:.2f} ms "
            f"| {statistics.median(got) / reference:.1f}x | {sent.get(name, '')} |"
        )


if __name__ == "__main__":
    main()
