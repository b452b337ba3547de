"""The enclave database itself: bring its schema up to date, tell where it is and at which revision."""

from __future__ import annotations

from dataclasses import dataclass

from enclave.db import Database


@dataclass(frozen=True)
class DatabaseStatus:
    url: str
    """The URL with any password hidden."""
    revisions: tuple[str, ...]
    """Alembic heads the schema is at; empty when never migrated."""


def _status(db: Database) -> DatabaseStatus:
    return DatabaseStatus(db.safe_url, tuple(sorted(db.current_revisions())))


def migrate(url: str | None = None) -> DatabaseStatus:
    db = Database(url)
    try:
        db.migrate()
        return _status(db)
    finally:
        db.dispose()


def status(url: str | None = None) -> DatabaseStatus:
    db = Database(url)
    try:
        return _status(db)
    finally:
        db.dispose()
