"""`enclave journal verify|show`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from enclave.cli.options import SELF, As, Output, OutputFormat, Reason, emit, enclave, host, parse_date, resolve_actor
from enclave.clock import stamp
from enclave.services import local
from enclave.services.factory import open_database

journal_app = typer.Typer(help="The tamper-evident journal of every change.", no_args_is_help=True)
console = Console(highlight=False, markup=False, width=160)


@journal_app.command("verify")
def verify_command(output: Output = OutputFormat.TABLE, actor: As = SELF) -> None:
    """Check the keyed hash chain and the anchor file; exit 6 naming the first bad entry or anchored head if
    anything was edited, removed, reordered, truncated or wiped (needs journal.read)."""
    with enclave() as factory:
        count = factory.journal.verify(actor)
    if output != OutputFormat.TABLE:
        emit({"intact": True, "entries": count}, output)
        return
    console.print(f"journal intact: {count} entries")


def _rekey_actor(ctx: typer.Context, value: str | None) -> str:
    """A journal written before the keyed hash predates local mode too: nobody is mapped yet, so the database's
    owner names the sysadmin to act as (the service checks the roles) and is mapped to it once the journal is
    re-sealed, as `accounts bootstrap` maps whoever ran it. Otherwise --as as everywhere (``resolve_actor``)."""
    if ctx.resilient_parsing or not value:
        return resolve_actor(ctx, value)
    user = local.os_user()
    local.check_owner(None, user)
    db = open_database(missing="refuse")
    try:
        fresh = local.nobody_mapped(db)
    finally:
        db.dispose()
    return value if fresh else resolve_actor(ctx, value)


@journal_app.command("rekey")
def rekey_command(reason: Reason, actor: Annotated[str, typer.Option(
        "--as", envvar="ENCLAVE_AS", callback=_rekey_actor, show_default=False,
        help="A sysadmin account mapped to your OS user; on a database from before local mode (nobody mapped), "
             "the sysadmin you will be mapped to.")] = SELF) -> None:
    """Upgrade a journal written before the keyed hash: verify it under the old unkeyed rule first (refuse,
    changing nothing, if it does not verify), then re-seal every entry under the journal key and journal that
    it did (needs journal.read and roles.grant). On the server host, in local mode."""
    user = local.os_user()
    with host() as factory:
        count, old_head, entry = factory.journal.rekey(actor, reason=reason)
        key = factory.db.journal_key
        if factory.accounts.map_local(actor, user.name, actor, reason=f"journal rekey by the database's owner: "
                                                                       f"{reason}"):
            console.print(f"OS user {user.name} may act as {actor} in local mode")
    console.print(f"journal re-sealed: {count} entries verified under the old unkeyed rule (head {old_head[:16]}…), "
                  f"now sealed under the key {key}; entry {entry.seq} records it")


@journal_app.command("show")
def show(
    by: Annotated[str | None, typer.Option("--actor", help="Only changes by this actor.")] = None,
    action: Annotated[str | None, typer.Option("--action", help="Action, or prefix ending in * (accounts.*).")]
    = None,
    target: Annotated[str | None, typer.Option("--target", help="e.g. account/alice")] = None,
    since: Annotated[str | None, typer.Option("--since", help="YYYY-MM-DD or ISO time.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="YYYY-MM-DD or ISO time.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many (newest).")] = None,
    output: Output = OutputFormat.TABLE, actor: As = SELF) -> None:
    """Journal entries, oldest first, filtered (needs journal.read)."""
    with enclave() as factory:
        entries = factory.journal.entries(actor, by=by, action=action, target=target,
                                          since=parse_date(since, "--since"), until=parse_date(until, "--until"),
                                          limit=limit, newest_first=False)
    entries.sort(key=lambda e: e.seq)
    if output != OutputFormat.TABLE:
        emit(entries, output)
        return
    table = Table(title=f"{len(entries)} entries")
    for col in ("seq", "at", "actor", "action", "target", "reason", "change"):
        table.add_column(col, overflow="fold")
    for e in entries:
        table.add_row(str(e.seq), e.at, e.actor, e.action, e.target, e.reason, _change(e.before, e.after))
    console.print(table)


CLOCK_KEYS = frozenset({"clock"})
"""Fields of a journal change that are backend clock readings (Unix seconds): shown as a UTC date, not a number."""


def _value(key: str, value: object) -> object:
    """A changed field as people read it: a clock reading by ``enclave.clock.stamp`` (UTC, ISO 8601 date and time;
    audit: `clock: None → 1782043200.0`), anything else as stored."""
    if key in CLOCK_KEYS and isinstance(value, int | float) and not isinstance(value, bool):
        return stamp(value)
    return value


def _change(before: object, after: object) -> str:
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        return "; ".join(f"{k}: {_value(k, before.get(k))} → {_value(k, after.get(k))}" for k in keys)
    return json.dumps(after, default=str)[:200]


def register(app: typer.Typer, render: typer.Typer) -> None:
    app.add_typer(journal_app, name="journal")
