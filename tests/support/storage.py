"""Database fixtures: every storage test runs on SQLite and on PostgreSQL.

SQLite gets a fresh file per test. PostgreSQL (the server named by TEST_DATABASE_URL; CI
always sets it) gets one database per xdist worker, so workers never see each other's rows,
and a fresh `public` schema per test, migrated by the real upgrade().
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from service.storage.engine import make_engine, normalise_url, upgrade

# Serialises CREATE DATABASE between workers (it copies template1, which must be quiet).
_CREATE_LOCK = 0x64726B74657374


def _worker() -> str:
    """This process's share of the server: its xdist worker, after an optional prefix
    (DROPOUT_TEST_DB_PREFIX) that keeps concurrent checkouts off each other's databases."""
    prefix = os.environ.get("DROPOUT_TEST_DB_PREFIX", "")
    return prefix + os.environ.get("PYTEST_XDIST_WORKER", "main")


def _ensure_database(server_url: str, name: str) -> None:
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _CREATE_LOCK})
            try:
                found = conn.execute(
                    text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
                ).first()
                if found is None:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _CREATE_LOCK})
    finally:
        engine.dispose()


def server_url(url: str) -> str:
    """The maintenance database of the server at `url` (for CREATE / ALTER DATABASE)."""
    return make_url(normalise_url(url)).set(database="postgres").render_as_string(False)


def reset_schema(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


def _postgresql_url() -> str:
    server = os.environ.get("TEST_DATABASE_URL")
    if not server:
        pytest.skip("TEST_DATABASE_URL not set")
    server = normalise_url(server)
    name = f"dropout_test_{_worker()}"
    _ensure_database(server, name)
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    reset_schema(url)
    return url


def _sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'dropout-risk.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A freshly migrated, empty database of each kind."""
    url = _sqlite_url(tmp_path) if request.param == "sqlite" else _postgresql_url()
    upgrade(url)
    return url


@pytest.fixture
def empty_database_url(database_url: str, tmp_path: Path) -> str:
    """A database of the same kind with no tables at all: what a first start-up finds."""
    if database_url.startswith("sqlite"):
        return _sqlite_url(tmp_path / "empty")
    reset_schema(database_url)
    return database_url


@pytest.fixture
def db_factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test database, as the service makes them."""
    engine = make_engine(database_url)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()
