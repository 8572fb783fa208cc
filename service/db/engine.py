"""Engines, migrations and transactions, the same for the embedded SQLite file and PostgreSQL.

SQLite is tuned for one server with several worker processes (WAL: readers never wait for the
writer; a busy writer is waited for, not failed). PostgreSQL gets a pool that drops dead
connections before use, so a database restart costs no failed request once it is back. A
database that cannot be reached becomes StorageUnavailable, which the API answers with 503
while stateless predictions keep working.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, make_url, select
from sqlalchemy import exc as sa_exc
from sqlalchemy import func as sa_func
from sqlalchemy.orm import Session, sessionmaker

from training.errors import DropoutRiskError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any fixed 64-bit number works; this one spells "drkmigr" so it is recognisable in pg_locks.
MIGRATION_LOCK = 0x64726B6D696772
_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
    "PRAGMA synchronous=NORMAL",
)


class StorageUnavailable(DropoutRiskError):
    """The database cannot be reached (down, restarting, or the pool is exhausted)."""


def normalise_url(url: str) -> str:
    """Spell PostgreSQL URLs with the psycopg 3 driver: `postgresql://` alone would make
    SQLAlchemy look for psycopg2, which is not installed."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    """An engine configured for its backend (see the module docstring)."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    return create_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        connect_args={"connect_timeout": 3},
    )


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    event.listen(engine, "connect", _set_sqlite_pragmas)
    return engine


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
    engine = make_engine(url)
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
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises.

    Connecting happens first and on its own, so any failure there is known to mean "the
    database cannot be reached" rather than "this statement was wrong".
    """
    session = factory()
    try:
        _connect(session)
        yield session
        session.commit()
    except sa_exc.DBAPIError as exc:
        session.rollback()
        if exc.connection_invalidated:
            raise StorageUnavailable("the database cannot be reached") from exc
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _connect(session: Session) -> None:
    try:
        session.connection()
    except (sa_exc.DBAPIError, sa_exc.TimeoutError) as exc:
        # The message names neither the URL nor the password; the cause keeps the details.
        raise StorageUnavailable("the database cannot be reached") from exc
