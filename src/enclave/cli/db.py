"""`enclave db migrate|status` (registered with the accounts commands)."""

from __future__ import annotations

import typer

from enclave.cli.options import Output, OutputFormat, emit
from enclave.services import database, local

db_app = typer.Typer(help="The enclave database ($ENCLAVE_DB or ~/.enclave/enclave.db).", no_args_is_help=True)


@db_app.command("migrate")
def migrate() -> None:
    """Bring the database schema up to date (local mode: the database's owner only)."""
    local.check_owner(None, local.os_user(), may_create=True)
    done = database.migrate()
    typer.echo(f"{done.url}: at {', '.join(done.revisions)}")


@db_app.command("status")
def status(output: Output = OutputFormat.TABLE) -> None:
    """Show the database URL and its schema revision (local mode: the database's owner only)."""
    local.check_owner(None, local.os_user())
    now = database.status()
    if output != OutputFormat.TABLE:
        emit({"url": now.url, "revisions": list(now.revisions), "migrated": bool(now.revisions)}, output)
        return
    typer.echo(f"{now.url}: {', '.join(now.revisions) if now.revisions else 'not migrated (run `enclave db migrate`)'}")
