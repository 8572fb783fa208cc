"""service.storage.snapshot_reads on SQLite and PostgreSQL: a read run beside the caller's
transaction sees the caller's snapshot, on a second connection on PostgreSQL and on the
caller's own elsewhere, when no slot is free or after a write of the caller's; its errors
reach the caller, its slot is freed, and the caller's block does not end before it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session, sessionmaker

from service.storage import repository as repo
from service.storage import snapshot_reads
from service.storage.engine import session_scope
from service.storage.snapshot_reads import SLOTS, alongside, snapshot_id
from service.storage.tables import Client

CLINIC = "clinic-s"


def _count(conn: Connection) -> int:
    return int(conn.scalar(select(func.count()).where(Client.clinic_id == CLINIC)) or 0)


def _add(factory: sessionmaker[Session], client_id: str) -> None:
    with session_scope(factory) as s:  # another connection, committed at once
        repo.upsert_client(s, CLINIC, client_id, 30, None, None)


def _read_after_a_commit(
    factory: sessionmaker[Session], caller: Connection
) -> Callable[[Connection], tuple[int, bool]]:
    """A read that first commits one more client elsewhere, then counts the clients on
    the connection it is given (and says whether that is the caller's)."""

    def read(on: Connection) -> tuple[int, bool]:
        _add(factory, f"late-{time.monotonic_ns()}")
        return _count(on), on is caller

    return read


def test_the_read_sees_the_callers_snapshot_not_a_later_commit(
    db_factory: sessionmaker[Session],
) -> None:
    _add(db_factory, "first")
    with session_scope(db_factory, snapshot=True) as s:
        conn = s.connection()
        before = _count(conn)  # the snapshot is the transaction's from its first read
        with alongside(conn, _read_after_a_commit(db_factory, conn)) as result:
            counted, on_callers = result()
        still = _count(conn)
    postgresql = conn.dialect.name == "postgresql"
    assert (before, counted, still) == (1, 1, 1)
    assert on_callers is not postgresql  # PostgreSQL: a second connection, same snapshot
    with session_scope(db_factory) as s:
        assert _count(s.connection()) == 2  # the commit happened; the snapshot hid it


def test_without_a_free_slot_the_read_runs_on_the_callers_connection(
    db_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = threading.BoundedSemaphore(1)
    assert taken.acquire(blocking=False)
    monkeypatch.setattr(snapshot_reads, "_slots", taken)
    _add(db_factory, "first")
    with session_scope(db_factory, snapshot=True) as s:
        conn = s.connection()
        assert _count(conn) == 1
        with alongside(conn, _read_after_a_commit(db_factory, conn)) as result:
            assert result() == (1, True)


def test_after_a_write_of_its_own_the_read_runs_on_the_callers_connection(
    db_factory: sessionmaker[Session],
) -> None:
    """Another connection cannot see the caller's uncommitted writes, not even in the
    caller's snapshot: the read runs on the caller's connection and sees them, and the
    slot is freed."""
    _add(db_factory, "first")
    with session_scope(db_factory, snapshot=True) as s:
        repo.upsert_client(s, CLINIC, "uncommitted", 41, None, None)
        conn = s.connection()
        with alongside(conn, lambda on: (_count(on), on is conn)) as result:
            assert result() == (2, True)
        s.rollback()
    assert _free_slots() == SLOTS


def test_an_error_of_the_read_reaches_the_caller_and_frees_its_slot(
    db_factory: sessionmaker[Session],
) -> None:
    def fails(_on: Connection) -> int:
        raise LookupError("the read failed")

    for _ in range(SLOTS + 1):  # more failures than slots: each freed its own
        with session_scope(db_factory, snapshot=True) as s:
            conn = s.connection()
            _count(conn)
            with pytest.raises(LookupError, match="the read failed"), alongside(conn, fails) as got:
                got()
    assert _free_slots() == SLOTS


def test_the_callers_block_ends_only_after_a_started_read(
    db_factory: sessionmaker[Session],
) -> None:
    """On PostgreSQL the read has started when the block begins: an error in the block
    waits for it (it never outlives the caller's transaction). Elsewhere the read runs
    only when its result is asked for, so an error before that means it never runs."""
    finished: list[str] = []

    def slow(_on: Connection) -> int:
        time.sleep(0.3)
        finished.append("read")
        return 1

    with session_scope(db_factory, snapshot=True) as s:
        conn = s.connection()
        _count(conn)
        with pytest.raises(ArithmeticError), alongside(conn, slow):
            raise ArithmeticError("the caller's own work failed")
        assert finished == (["read"] if conn.dialect.name == "postgresql" else [])


@pytest.mark.parametrize("given", ["00000003-0000001B-1", "4-A2F-12"])
def test_what_pg_export_snapshot_gives_is_a_snapshot_id(given: str) -> None:
    assert snapshot_id(given) == given


@pytest.mark.parametrize("given", ["1-1-1'; DROP TABLE clients; --", "", "1-1", "a-b-1", None])
def test_anything_else_is_refused_before_it_is_written_into_a_statement(given: Any) -> None:
    """The id is written into SET TRANSACTION SNAPSHOT, where it cannot be a parameter."""
    with pytest.raises(ValueError, match="not a snapshot id"):
        snapshot_id(given)


def _free_slots() -> int:
    """How many slots are free now (each taken and given back)."""
    held = [snapshot_reads._slots.acquire(blocking=False) for _ in range(SLOTS)]
    for got in held:
        if got:
            snapshot_reads._slots.release()
    return sum(held)
