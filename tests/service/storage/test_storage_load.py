"""Many writers at once (issue 4): 32 concurrent writers PUT 5,000 sessions, with deliberate
duplicates and changes, to a real server (2 worker processes) on each database; exactly the
expected rows are stored, with the last values, and no request gets a 5xx.

A burst of one client's sessions at once (issue 11) leaves a stored latest risk computed
from every stored session: writers of one client are ordered by a lock on the client row,
and each recomputes from what the earlier ones committed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from service.storage.engine import make_engine
from service.storage.tables import SessionRow
from tests.support.helpers import REPO, create_key
from tests.support.live import live_server

WRITERS = 32
CLIENTS, SESSIONS_EACH = 500, 10  # 5,000 distinct sessions
DUPLICATES, CHANGES = 1_000, 500


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    scopes = ["clients:write", "clients:read", "predict"]
    token = create_key(database_url, "clinic-load", scopes)
    with live_server(tmp_path, database_url, REPO / "models", 2) as url:
        yield url, token


def _session(client: int, number: int) -> dict[str, Any]:
    goal = 1 + ((client * 7 + number * 3) % 16) / 4  # 1.0 .. 4.75 in quarter steps
    return {
        "date": f"2026-{1 + number // 28:02d}-{1 + number % 28:02d}",
        "wai": {"goal": goal, "task": 3.5, "bond": 4.0},
        "srs": {"total": 30.0 + number},
    }


def _run(
    url: str, token: str, jobs: list[tuple[str, str, dict[str, Any]]], writers: int = WRITERS
) -> list[int]:
    """Each job is (method, path, body); `writers` threads, each with its own keep-alive
    client, job i going to thread i % writers."""
    chunks = [jobs[i::writers] for i in range(writers)]

    def write(chunk: list[tuple[str, str, dict[str, Any]]]) -> list[int]:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            return [http.request(m, p, json=b).status_code for m, p, b in chunk]

    with ThreadPoolExecutor(writers) as pool:
        return [status for part in pool.map(write, chunks) for status in part]


@pytest.mark.slow
def test_32_writers_5000_sessions_exact_rows(server: tuple[str, str], database_url: str) -> None:
    url, token = server
    rng = random.Random(4)
    clients = [("PUT", f"/v1/clients/L-{c}", {"age": 20 + c % 50}) for c in range(CLIENTS)]
    assert set(_run(url, token, clients)) == {200}

    distinct = [
        ("PUT", f"/v1/clients/L-{c}/sessions/{n}", _session(c, n))
        for c in range(CLIENTS)
        for n in range(1, SESSIONS_EACH + 1)
    ]
    writes = distinct + rng.sample(distinct, DUPLICATES)  # identical repeats
    rng.shuffle(writes)
    statuses = _run(url, token, writes)
    assert len(statuses) == len(distinct) + DUPLICATES
    assert set(statuses) == {200}, sorted(set(statuses))

    changed = rng.sample(range(len(distinct)), CHANGES)
    updates = [(m, p, {**b, "srs": {"total": 10.0}}) for m, p, b in (distinct[i] for i in changed)]
    assert set(_run(url, token, updates)) == {200}

    rows, total = _stored_sessions(database_url)
    assert total == len(rows) == CLIENTS * SESSIONS_EACH
    stored = {(r.client_id, r.number): r.payload for r in rows}
    changed_keys = {(f"L-{i // SESSIONS_EACH}", i % SESSIONS_EACH + 1) for i in changed}
    for (client_id, number), payload in stored.items():
        expected = 10.0 if (client_id, number) in changed_keys else 30.0 + number
        assert payload["srs"]["total"] == expected, (client_id, number)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        caseload = http.get("/v1/caseload", params={"limit": 1}).json()
    assert caseload["total"] == CLIENTS  # every client has a stored risk


def _stored_sessions(database_url: str) -> tuple[list[Any], int]:
    """The load clinic's stored sessions (client, number, date, payload) and all rows."""
    engine = make_engine(database_url)
    columns = (SessionRow.client_id, SessionRow.number, SessionRow.session_date)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(*columns, SessionRow.payload)
                .where(SessionRow.clinic_id == "clinic-load")
                .order_by(SessionRow.client_id, SessionRow.number)
            ).all()
            total = conn.execute(select(func.count()).select_from(SessionRow)).scalar_one()
    finally:
        engine.dispose()
    return list(rows), total


BURST_CLIENTS, BURST_SESSIONS = 60, 12


@pytest.mark.slow
def test_burst_of_one_clients_sessions_stores_the_risk_of_its_sessions(
    server: tuple[str, str], database_url: str
) -> None:
    """12 sessions of each of 60 clients PUT at once: every client's stored latest risk is
    what POST /v1/predictions answers for its stored sessions (issue 11)."""
    url, token = server
    ages = {f"B-{c}": 20 + c % 50 for c in range(BURST_CLIENTS)}
    assert set(
        _run(url, token, [("PUT", f"/v1/clients/{c}", {"age": a}) for c, a in ages.items()])
    ) == {200}
    # Client-major order over 48 threads: each client's 12 sessions are in flight together.
    burst = [
        ("PUT", f"/v1/clients/{c}/sessions/{n}", {**_session(i, n), "srs": {"total": 28.0 + n}})
        for i, c in enumerate(ages)
        for n in range(1, BURST_SESSIONS + 1)
    ]
    assert set(_run(url, token, burst, writers=48)) == {200}

    rows, _total = _stored_sessions(database_url)
    episodes: dict[str, list[dict[str, Any]]] = {c: [] for c in ages}
    for row in rows:
        episodes[row.client_id].append({**row.payload, "number": row.number})
    wrong = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        for client_id, sessions in episodes.items():
            assert len(sessions) == BURST_SESSIONS
            body = {"client_id": client_id, "age": ages[client_id], "sessions": sessions}
            fresh = http.post("/v1/predictions", json=body).json()
            stored = http.get(f"/v1/clients/{client_id}/risk").json()["prediction"]
            keys = ("probability", "risk_level", "landmark_session")
            if any(stored[k] != fresh[k] for k in keys):
                wrong.append((client_id, [(stored[k], fresh[k]) for k in keys]))
    assert wrong == []
