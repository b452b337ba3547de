"""CLI helpers for commands that use the database (not a concept: nothing to register)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import typer
from sqlalchemy.orm import Session

from enclave.db.core import Database
from enclave.errors import InputError, Problem

_migrated: set[str] = set()


def open_database(url: str | None = None) -> Database:
    """The database named by $ENCLAVE_DB (or the default SQLite file), migrated to the newest schema."""
    db = Database(url)
    if db.url not in _migrated:
        db.migrate()
        _migrated.add(db.url)
    return db


@contextmanager
def cli_session(url: str | None = None) -> Iterator[Session]:
    db = open_database(url)
    try:
        with db.session() as session:
            yield session
    finally:
        db.dispose()


def parse_date(text: str | None, option: str) -> datetime | None:
    """A --date option: YYYY-MM-DD (midnight UTC) or a full ISO-8601 time with zone."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InputError([Problem(option, f"{text!r} is not a date", "write YYYY-MM-DD, e.g. 2027-01-31")]) from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


db_app = typer.Typer(help="The enclave database ($ENCLAVE_DB or ~/.enclave/enclave.db).", no_args_is_help=True)


@db_app.command("migrate")
def migrate() -> None:
    """Bring the database schema up to date."""
    db = Database()
    db.migrate()
    typer.echo(f"{db.safe_url}: at {', '.join(sorted(db.current_revisions()))}")
    db.dispose()


@db_app.command("status")
def status() -> None:
    """Show the database URL and its schema revision."""
    db = Database()
    revs = db.current_revisions()
    typer.echo(f"{db.safe_url}: {', '.join(sorted(revs)) if revs else 'not migrated (run `enclave db migrate`)'}")
    db.dispose()
