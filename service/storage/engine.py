"""Engines, migrations and transactions, the same for the embedded SQLite file and PostgreSQL.

SQLite is tuned for one server with several worker processes (WAL: readers never wait for the
writer; a busy writer is waited for, not failed). PostgreSQL gets a pool that drops dead
connections before use, so a database restart costs no failed request once it is back. A
database that cannot be reached or used becomes StorageUnavailable, which the API answers
with 503 while stateless predictions keep working.

Client data never reaches a log line through a database error: every engine hides
statement parameters (`hide_parameters`), and StorageUnavailable's message names only the
kind of error (its class and SQLSTATE or SQLite code), never the driver's text, which can
quote values (PostgreSQL's "DETAIL: Key (client_id)=(...)").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from alembic import command
from alembic.config import Config
from psycopg.abc import PQGen
from psycopg.errors import _WaitTimeout
from sqlalchemy import Connection, Engine, create_engine, event, make_url, select
from sqlalchemy import exc as sa_exc
from sqlalchemy import func as sa_func
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.orm import Session, sessionmaker

from training.errors import DropoutRiskError

_T = TypeVar("_T")
# How much longer than statement_timeout the client waits for an answer: a slow statement
# on a healthy server is cancelled by the server (the connection stays usable); only a
# server that does not answer at all has its connection dropped by the client.
_ANSWER_GRACE_SECONDS = 0.5
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any fixed 64-bit number works; this one spells "drkmigr" so it is recognisable in pg_locks.
MIGRATION_LOCK = 0x64726B6D696772
_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
    "PRAGMA synchronous=NORMAL",
)
# PostgreSQL errors after which a connection stays useless even once the cause is fixed:
# connection exceptions, operator intervention (shutdown, terminated backend), and a
# read-only server (a standby after fail-over: default_transaction_read_only is fixed for
# the connection's life).
_PG_UNUSABLE = ("08", "57P", "25006")


class StorageUnavailable(DropoutRiskError):
    """The database cannot be reached (down, restarting, or the pool is exhausted)."""


@dataclass(frozen=True)
class Timeouts:
    """How long one database call may take (the service's come from its settings, where
    each is documented). query_seconds None: no bound (migrations, tests' own engines)."""

    connect_seconds: int
    pool_seconds: float
    query_seconds: float | None
    ping_seconds: float


# What engines get unless their caller says otherwise: today's libpq connect timeout,
# SQLAlchemy's default pool wait, and queries as long as they take.
UNBOUNDED_QUERIES = Timeouts(
    connect_seconds=3, pool_seconds=30.0, query_seconds=None, ping_seconds=30.0
)


def normalise_url(url: str) -> str:
    """Spell PostgreSQL URLs with the psycopg 3 driver: `postgresql://` alone would make
    SQLAlchemy look for psycopg2, which is not installed."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, timeouts: Timeouts = UNBOUNDED_QUERIES) -> Engine:
    """An engine configured for its backend (see the module docstring)."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(url, parsed.database)
    else:
        bounded = timeouts.query_seconds is not None
        engine = create_engine(
            parsed,
            hide_parameters=True,
            pool_pre_ping=not bounded,  # bounded engines ping on checkout themselves
            pool_size=10,
            max_overflow=20,
            pool_timeout=timeouts.pool_seconds,
            connect_args=_postgresql_connect_args(timeouts, parsed.query.get("options")),
        )
        if timeouts.query_seconds is not None:
            wait = timeouts.query_seconds + _ANSWER_GRACE_SECONDS
            event.listen(engine, "do_connect", _bounded_connect(wait))
            event.listen(engine, "checkout", _bounded_ping(timeouts.ping_seconds))
    event.listen(engine, "handle_error", _replace_unusable_connections)
    return engine


def _postgresql_connect_args(timeouts: Timeouts, options: Any) -> dict[str, Any]:
    """libpq's connection parameters. The session answers times in UTC (TimeZone), as
    they are stored: the driver then gives them with its one UTC tzinfo, which UtcDateTime
    passes on as is rather than converting each (50,000 of them in a large clinic's
    monitoring window). For the timeouts, the server cancels a statement at
    query_seconds (statement_timeout), the kernel drops a connection whose sent data goes
    unacknowledged that long (tcp_user_timeout), and keepalives find a dead peer of an idle
    pooled connection. The URL's own `options` are kept, after ours."""
    given = options if isinstance(options, str) else ""
    args: dict[str, Any] = {
        "connect_timeout": timeouts.connect_seconds,
        "options": f"-c TimeZone=UTC {given}".strip(),
    }
    if timeouts.query_seconds is None:
        return args
    millis = max(1, round(timeouts.query_seconds * 1000))
    return {
        **args,
        "options": f"{args['options']} -c statement_timeout={millis}",
        "tcp_user_timeout": millis,
        "keepalives": 1,
        "keepalives_idle": max(1, round(timeouts.query_seconds)),
        "keepalives_interval": 1,
        "keepalives_count": 2,
    }


class _BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection that waits at most `query_seconds` (the statement timeout and a
    grace) for the server.

    psycopg waits for an answer without limit, and a server whose packets are dropped
    (a firewall, a dead host, no reset) leaves the request hanging: statement_timeout
    cannot help, since the server never sees the statement, nor the kernel, when something
    in between still acknowledges. Every wait of the protocol (queries, commits, the
    pool's pings) goes through wait(); when it times out the connection's state is unknown,
    so it is closed, which SQLAlchemy takes for a disconnect (the pool is refreshed and the
    error becomes StorageUnavailable).
    """

    query_seconds: float | None = None

    @contextmanager
    def bounded(self, seconds: float) -> Iterator[None]:
        """Wait at most `seconds` for the server within the block."""
        saved, self.query_seconds = self.query_seconds, seconds
        try:
            yield
        finally:
            self.query_seconds = saved

    def wait(self, gen: PQGen[_T], interval: float = 0.1, timeout: float | None = None) -> _T:
        bound = self.query_seconds if timeout is None else timeout
        try:
            return super().wait(gen, interval, bound)
        except _WaitTimeout as exc:
            self.close()
            raise psycopg.OperationalError(f"the database did not answer in {bound:g} s") from exc


def _bounded_ping(seconds: float) -> Any:
    """A pooled connection is pinged before each use, waiting at most `seconds`: an empty
    statement needs no lock and no work, so a server that cannot answer it that fast is
    treated as away (SQLAlchemy's pre-ping would wait the whole query timeout). A failed
    ping drops every pooled connection and one fresh connection is tried."""

    def ping(dbapi_connection: _BoundedConnection, _record: Any, _proxy: Any) -> None:
        try:
            with dbapi_connection.bounded(seconds):
                dbapi_connection.execute(";")
        except psycopg.Error as exc:
            raise sa_exc.InvalidatePoolError("the database did not answer a ping") from exc

    return ping


def _bounded_connect(query_seconds: float) -> Any:
    def connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> _BoundedConnection:
        connection = _BoundedConnection.connect(*cargs, **cparams)
        connection.query_seconds = query_seconds
        return connection

    return connect


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, hide_parameters=True, connect_args={"check_same_thread": False, "timeout": 30}
    )
    event.listen(engine, "connect", _set_sqlite_pragmas)
    return engine


def _replace_unusable_connections(context: ExceptionContext) -> None:
    """Treat errors of the database as a whole as a disconnect, so the pool replaces every
    connection and the service recovers by itself once the cause is fixed.

    Without this a pooled connection keeps failing after the cause is gone: SQLite opens a
    write-protected file read-only for the connection's life ("attempt to write a readonly
    database" until a restart, issue 11), and a PostgreSQL connection made to a read-only
    server stays read-only. Every SQLite OperationalError is about the file (read-only,
    missing, locked, full, I/O); for PostgreSQL see _PG_UNUSABLE.
    """
    error = context.original_exception
    if context.dialect.name == "sqlite":
        unusable = type(error).__name__ == "OperationalError"
    else:
        unusable = str(getattr(error, "sqlstate", None) or "").startswith(_PG_UNUSABLE)
    if unusable:
        context.is_disconnect = True


def unavailable(exc: BaseException) -> StorageUnavailable:
    """StorageUnavailable naming only the kind of `exc` (class, SQLSTATE or SQLite code):
    the driver's message can quote client data, so it goes no further than the cause."""
    error = getattr(exc, "orig", None) or exc
    code = getattr(error, "sqlstate", None) or getattr(error, "sqlite_errorname", None)
    kind = type(error).__name__ + (f" {code}" if code else "")
    return StorageUnavailable(f"the database cannot be reached or used ({kind})")


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def upgrade(url: str) -> None:
    """Bring the schema to the latest migration; a no-op when it is already there.

    Several workers start at once, so the upgrade is serialised: on PostgreSQL by an
    advisory lock (the second worker waits, then finds the schema current), on SQLite by
    running the whole upgrade in one `BEGIN IMMEDIATE` transaction.
    """
    url = normalise_url(url)
    engine = make_engine(url)  # queries unbounded: a migration may take its time
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                _upgrade_locked(connection, url)
            else:
                _upgrade_in_transaction(connection, url)
    finally:
        engine.dispose()


def _upgrade_locked(connection: Connection, url: str) -> None:
    connection.execute(select(sa_func.pg_advisory_lock(MIGRATION_LOCK)))
    connection.commit()
    try:
        _upgrade_in_transaction(connection, url)
    finally:
        connection.execute(select(sa_func.pg_advisory_unlock(MIGRATION_LOCK)))
        connection.commit()


def _upgrade_in_transaction(connection: Connection, url: str) -> None:
    with connection.begin():
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        config = alembic_config(url)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def alembic_config(url: str) -> Config:
    """Alembic's configuration built in code, so no alembic.ini has to ship or be found."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    # ConfigParser interpolates '%': a percent-encoded password must survive it.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@contextmanager
def session_scope(factory: sessionmaker[Session], snapshot: bool = False) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises.

    Connecting happens first, so a database that cannot be reached fails before any work.
    Any error of the database itself (sa_exc.DBAPIError: unreachable, read-only, timed out,
    or a statement it refused) and a pool with no free connection become StorageUnavailable:
    none is the caller's fault, and the API answers them all with 503 and Retry-After.

    `snapshot`: every statement of the transaction reads the same snapshot of the database
    (_begin_snapshot), for a reader whose queries must agree with each other (a monitoring
    window: its clients, then their sessions numbered by client). Otherwise each statement
    sees what was committed when it started (PostgreSQL's READ COMMITTED; SQLite reads
    outside a transaction until the first write).
    """
    session = factory()
    try:
        if snapshot:
            _begin_snapshot(session)
        else:
            session.connection()
        yield session
        session.commit()
    except (sa_exc.DBAPIError, sa_exc.TimeoutError) as exc:
        _rollback(session)
        raise unavailable(exc) from exc
    except BaseException:
        _rollback(session)
        raise
    finally:
        with suppress(sa_exc.SQLAlchemyError):
            session.close()


def _begin_snapshot(session: Session) -> None:
    """Start `session`'s transaction so that all its reads share one snapshot: REPEATABLE
    READ on PostgreSQL (the snapshot of its first query), set for this transaction only
    (the connection goes back to the pool as it came: the checkout's ping has already
    opened the transaction, so the connection's own level cannot be changed); on SQLite an
    explicit BEGIN, so the reads run in one read transaction (in WAL mode a writer still
    commits meanwhile, unseen by it) instead of each in its own."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    else:
        connection.exec_driver_sql("BEGIN")


def _rollback(session: Session) -> None:
    """Roll back, even if the connection is already gone (the error at hand is what counts)."""
    with suppress(sa_exc.SQLAlchemyError):
        session.rollback()
