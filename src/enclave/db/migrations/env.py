"""Alembic environment: runs on the connection that Database.migrate() hands over (or the URL)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from enclave.db.core import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.begin() as conn:
            _run_on(conn)
        engine.dispose()
    else:
        _run_on(connection)


def _run_on(connection: sa.Connection) -> None:
    # render_as_batch lets ALTER TABLE work on SQLite by copying the table.
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


run()
