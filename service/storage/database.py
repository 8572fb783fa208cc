"""The database as the service uses it: one engine per process, migrations on start-up.

The service must keep answering stateless predictions while the database is away, so
nothing here blocks start-up: when the database cannot be reached at start, migrations are
retried at the first request that needs storage, and every storage error becomes
StorageUnavailable (503) until the database is back; no restart is needed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.core.settings import Settings, get_settings
from service.storage.engine import (
    StorageUnavailable,
    Timeouts,
    make_engine,
    session_scope,
    unavailable,
    upgrade,
)

log = logging.getLogger("dropout_risk.storage")


def timeouts(settings: Settings) -> Timeouts:
    """The database timeouts of the settings (documented there)."""
    return Timeouts(
        connect_seconds=settings.database_connect_timeout_seconds,
        pool_seconds=settings.database_pool_timeout_seconds,
        query_seconds=settings.database_query_timeout_seconds,
        ping_seconds=settings.database_ping_timeout_seconds,
    )


class Storage:
    def __init__(self, url: str, migrate: bool = True, settings: Settings | None = None) -> None:
        """`settings` (default: the process's) gives the timeouts of every database call."""
        self.url = url
        self.engine = make_engine(url, timeouts(settings or get_settings()))
        self.factory = sessionmaker(self.engine, expire_on_commit=False)
        self._migrated = not migrate
        self._lock = threading.Lock()

    def start(self) -> None:
        """Apply migrations now if the database is there; otherwise at first use."""
        try:
            self.ensure_migrated()
        except StorageUnavailable as exc:
            log.warning("database not reachable at start-up; stored endpoints wait: %s", exc)

    def ensure_migrated(self) -> None:
        """Migrations, once per process; StorageUnavailable while the database is away."""
        if self._migrated:
            return
        with self._lock:
            if self._migrated:
                return
            try:
                upgrade(self.url)
            except SQLAlchemyError as exc:
                raise unavailable(exc) from exc
            self._migrated = True

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any error."""
        self.ensure_migrated()
        with session_scope(self.factory) as session:
            yield session

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """One transaction whose reads all see the same snapshot of the database
        (session_scope's `snapshot`): for readers whose queries must agree with each other,
        the monitoring window's (repository.window_clients)."""
        self.ensure_migrated()
        with session_scope(self.factory, snapshot=True) as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()
