"""One read run on a second connection, in the snapshot of the first, while the first goes on.

Why: a monitoring window is two large reads that must see one snapshot (its clients, then
their sessions, each naming its client: service.storage.repository.window_clients). Run one
after the other, the database works on one core while the other waits, and the two reads
(for 50,000 clients each 0.2-0.4 s by the machine, server and driver together) are most
of a cold report; run side by side, the window costs about the longer of the two
(bench/monitoring_service.py). PostgreSQL lets a second transaction share the first's
snapshot: the first exports it (`pg_export_snapshot()`), the second imports it (`SET
TRANSACTION SNAPSHOT`) before its first query, so both see exactly the same rows
(PostgreSQL's documentation, "Snapshot Synchronization Functions").

Bounded: at most SLOTS such reads run at once in the process; when none is free the read
runs on the first connection after its own work, as it did before (so a pool can never be
emptied by requests that each hold one connection and wait for a second: at most SLOTS
requests wait so); so does it when the first transaction has written anything, which the
second could not see. SQLite has no such export: there the read always runs on the
caller's connection.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine

T = TypeVar("T")

# The machines we run on have two cores: more reads at once would only queue in the server.
SLOTS = 2
_slots = threading.BoundedSemaphore(SLOTS)
_workers = ThreadPoolExecutor(max_workers=SLOTS, thread_name_prefix="snapshot-read")
# The snapshot, and whether the transaction has written (it then has a transaction id:
# PostgreSQL assigns one at the first write; pg_current_xact_id_if_assigned, PostgreSQL 13).
_EXPORT = "SELECT pg_export_snapshot(), pg_current_xact_id_if_assigned() IS NOT NULL"
# What pg_export_snapshot() returns: hexadecimal virtual transaction id parts and a counter.
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+-[0-9]+")


@contextmanager
def alongside(conn: Connection, read: Callable[[Connection], T]) -> Iterator[Callable[[], T]]:
    """Start `read` on another connection in `conn`'s snapshot, and give the function that
    returns its result (waiting for it) or raises its error. Without a free slot or on
    SQLite, that function runs `read` on `conn` itself.

    `conn` must be in a REPEATABLE READ transaction (Storage.snapshot) for its own later
    statements to see the exported snapshot too. A transaction that has already written
    gets its read on `conn`: an exported snapshot holds what was committed, not the
    exporting transaction's own writes. The block does not end before the read
    does, whatever happens in it: no read outlives the caller's transaction."""
    future = _start(conn, read)
    if future is None:
        yield lambda: read(conn)
        return
    try:
        yield future.result
    finally:
        wait_for([future])


def _start(conn: Connection, read: Callable[[Connection], T]) -> Future[T] | None:
    if conn.dialect.name != "postgresql" or not _slots.acquire(blocking=False):
        return None
    try:
        exported, wrote = conn.exec_driver_sql(_EXPORT).one()
        if wrote:  # its own writes would be missing from the other connection's view
            _slots.release()
            return None
        return _workers.submit(_read_in, conn.engine, snapshot_id(exported), read)
    except BaseException:
        _slots.release()
        raise


def snapshot_id(given: object) -> str:
    """`given` if it is a snapshot id as pg_export_snapshot writes it, else ValueError:
    it is written into SET TRANSACTION SNAPSHOT, which takes no parameter."""
    if not isinstance(given, str) or not _SNAPSHOT_ID.fullmatch(given):
        raise ValueError(f"{given!r} is not a snapshot id")
    return given


def _read_in(engine: Engine, snapshot: str, read: Callable[[Connection], T]) -> T:
    """`read` on a connection of `engine` whose transaction imports `snapshot`; rolled
    back (it only reads), the slot freed."""
    try:
        with engine.connect() as side:
            side.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            side.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")  # checked above
            return read(side)
    finally:
        _slots.release()
