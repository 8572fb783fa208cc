"""Alembic's entry point for this schema: run by service.storage.engine.upgrade, never by hand.

upgrade() passes its own connection (already locked and inside a transaction) in
config.attributes["connection"]; without one, an engine is made from sqlalchemy.url.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from service.storage.engine import make_engine
from service.storage.tables import Base

config = context.config
target_metadata = Base.metadata


def run(connection: Connection) -> None:
    # SQLite cannot ALTER most things in place: batch mode copies the table instead.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """`--sql` mode: print the DDL for a DBA instead of running it."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    given = config.attributes.get("connection")
    if isinstance(given, Connection):
        run(given)
        return
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("set sqlalchemy.url or pass a connection in config.attributes")
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
