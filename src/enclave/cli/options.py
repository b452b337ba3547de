"""The options every command shares, defined once, and the one way a command gets its services."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import BaseModel
from rich.console import Console

from enclave.client.config import Context, selected
from enclave.client.http import Api, check_actor
from enclave.client.remote import Remote
from enclave.errors import InputError, Problem
from enclave.services import local
from enclave.services.factory import Factory, Missing, open_database
from enclave.spec.defaults import default_spec_path
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec

console = Console(highlight=False, markup=False, width=140)

SpecOption = Annotated[
    Path | None, typer.Option("--spec", help="Enclave spec; default $ENCLAVE_SPEC or examples/lsst-ldf.yaml.")]


# --- who acts: a context's token, or local mode on the server host (docs/accounts.md, "Who is acting") ----------

API: frozenset[str] = frozenset({
    "accounts show", "accounts list", "accounts onboard", "accounts depart", "accounts expire", "accounts renew",
    "accounts promote", "accounts demote", "accounts grow-quota", "accounts correct-quota", "accounts join",
    "accounts leave", "roles grant", "roles revoke", "tokens issue", "tokens list", "tokens revoke",
    "journal show", "journal verify", "images submit", "images approve", "images reject", "images list",
    "batch move", "batch add-pods", "batch delete-pods", "batch drain-node", "batch start-htcondor",
    "batch return-node", "batch drain-startd", "logs", "broker schedule push", "broker schedule show"})
"""Commands with an API route: with a context they go through the API; without one, local mode."""
HOST: frozenset[str] = frozenset({
    "accounts bootstrap", "accounts import", "accounts expire-due", "roles list", "access check", "db migrate",
    "db status", "local map", "local unmap", "local list", "notebooks options", "backup create", "backup prune",
    "backup restore", "broker run", "serve", "webdav", "vospace", "accounts reach", "journal rekey"})
"""Commands on the server host's database with no API route (bootstrap, recovery, the servers themselves, the
procedures on the live pool): always local mode, whatever the context — only the database's owner, as a mapped
account."""
NOBODY: frozenset[str] = frozenset({
    "spec validate", "spec show", "render access", "render admission", "render all", "render condor",
    "render deploy", "render notebooks", "twin run", "twin compare", "twin scenarios", "twin sweep", "security check",
    "security credentials",
    "security list", "upgrade plan", "upgrade releases", "backup list", "backup verify", "backup schedule",
    "backup restore-plan", "access matrix", "notebooks capacity", "batch explain", "batch pools", "batch spoof",
    "broker plan", "login", "config get-contexts", "config use-context", "config current-context"})
"""Commands that act on nobody's state — specs, renders, simulations, checks of files, etcd archives, the
client's own contexts — and need no identity. (``backup create|prune|restore`` act on etcd's files; given --as
they journal in the enclave's database and run in local mode.) tests/cli/test_identity.py checks that every
command is in exactly one of API, HOST and NOBODY."""


def command_name(ctx: typer.Context) -> str:
    """``accounts show`` for the click context of `enclave accounts show`."""
    names = []
    node: Any = ctx
    while node.parent is not None:
        names.append(node.info_name or "")
        node = node.parent
    return " ".join(reversed(names))


CONTEXT_OPTION: ContextVar[str | None] = ContextVar("enclave_context_option", default=None)
"""The global --context of the command being run (set by the program's root callback)."""


def selected_context() -> Context | None:
    """The context this command runs in (``--context``, $ENCLAVE_CONTEXT, the config's current-context)."""
    return selected(CONTEXT_OPTION.get())


def _through_api(ctx: typer.Context) -> Context | None:
    return selected_context() if command_name(ctx) in API else None


def _db_param(ctx: typer.Context) -> str | None:
    value = ctx.params.get("db") or ctx.params.get("db_url")  # --db is eager, so it is parsed before --as
    return value if isinstance(value, str) else None


def resolve_actor(ctx: typer.Context, value: str | None) -> str:
    """--as: over the API the context's token decides (another name is refused); in local mode an account mapped to
    this OS user (default: its only one), in a database that OS user owns."""
    if ctx.resilient_parsing:
        return value or ""
    context = _through_api(ctx)
    if context is not None:
        check_actor(context, value or context.username)
        return context.username
    user = local.os_user()
    url = _db_param(ctx)
    local.check_owner(url, user)
    db = open_database(url, missing="refuse")
    try:
        return local.acting_account(db, user, value or None)
    finally:
        db.dispose()


def resolve_optional_actor(ctx: typer.Context, value: str | None) -> str | None:
    return resolve_actor(ctx, value) if value else None


SELF = ""
"""--as left out: the context's account, or the one account mapped to this OS user."""
As = Annotated[str, typer.Option(
    "--as", envvar="ENCLAVE_AS", callback=resolve_actor, show_default=False,
    help="The acting account. With a context: its token's account (the default; no other). Without one (local "
         "mode on the server host): an account mapped to your OS user, default the only one (or $ENCLAVE_AS).")]
Reason = Annotated[str, typer.Option("--reason", help="Why: every change is documented (seed §8).")]


class OutputFormat(StrEnum):
    """kubectl's output flag (https://kubernetes.io/docs/reference/kubectl/#output-options), for every read
    command: a table for people, JSON or YAML for programs."""

    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


Output = Annotated[OutputFormat, typer.Option("--output", "-o", case_sensitive=False,
                                              help="table (default), json or yaml.")]
Live = Annotated[bool, typer.Option("--live", help="The real Kubernetes cluster and HTCondor pool, not the twin.")]
Scenario = Annotated[str, typer.Option("--scenario", help="Twin scenario (name or file) when not --live.")]
Twin = Annotated[str | None, typer.Option(
    "--twin", metavar="SCENARIO", help="Act on a throw-away twin of the spec loaded with SCENARIO (name or file): "
    "its own store and journal; nothing is recorded in the enclave's journal. Without --twin a command acts on "
    "the configured live enclave.")]
DbOption = Annotated[str | None, typer.Option("--db", is_eager=True, help="Database URL; default $ENCLAVE_DB or "
                                                                         "SQLite in $ENCLAVE_HOME.")]


def spec_path_of(path: Path | None, *, on_host: bool = False) -> Path | None:
    """--spec, else the selected context's default spec, else None (the default: $ENCLAVE_SPEC, else the embedded
    one). A command in local mode on the host (``on_host``: ``host()``) never takes the context's spec, which names
    the spec of the enclave the context reaches, not this host's: --spec, else $ENCLAVE_SPEC, else the embedded
    default."""
    if path is not None:
        return path
    if on_host:
        return None
    context = selected_context()
    return Path(context.spec).expanduser() if context is not None and context.spec else None


def load_spec_option(path: Path | None) -> EnclaveSpec:
    """The spec named by a --spec option, or the context's default spec, or the embedded default."""
    return load(spec_path_of(path) or default_spec_path())


@contextmanager
def services(spec: Path | None = None, db: str | None = None, *, missing: Missing = "empty") -> Iterator[Factory]:
    """The factory for a command that acts on nobody's state (renders, checks, simulations): no identity. Where there
    is no enclave database it answers from an empty one, as for a new enclave, and leaves no file behind; an
    existing one is neither migrated nor changed. ``missing="refuse"``: the command's output is only right from
    the enclave's own database (``render access``)."""
    with Factory.standalone(spec_path_of(spec), db, missing=missing) as factory:
        yield factory


@contextmanager
def host(spec: Path | None = None, db: str | None = None, *, may_create: bool = False) -> Iterator[Factory]:
    """The factory for a HOST command: local mode, for the OS user who owns the database only; every journal entry
    it makes names that OS user."""
    user = local.os_user()
    local.check_owner(db, user, may_create=may_create)
    with Factory.standalone(spec_path_of(spec, on_host=True), db, missing="create" if may_create else "refuse") \
            as factory:
        local.enter(factory.db, user)
        yield factory


@contextmanager
def enclave(spec: Path | None = None, db: str | None = None) -> Iterator[Factory | Remote]:
    """The services for an API command: over the API with the context's token when a context is selected, else
    local mode as ``host``. Either offers the same methods, so the command has one code path. Only the commands
    in ``API`` call it (tests/cli/test_identity.py checks)."""
    context = selected_context()
    if context is None:
        with host(spec, db) as factory:
            yield factory
        return
    api = Api(context)
    try:
        yield Remote(api)
    finally:
        api.close()


def parse_date(text: str | None, option: str) -> datetime | None:
    """A date option: YYYY-MM-DD (midnight UTC) or a full ISO-8601 time with zone."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InputError([Problem(option, f"{text!r} is not a date", "write YYYY-MM-DD, e.g. 2027-01-31")]) from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def plain(value: Any) -> Any:
    """``value`` as JSON/YAML-ready data: models and dataclasses as mappings, enums by value, times as
    ISO 8601 in UTC (``2026-06-21T12:00:00Z``), paths as strings."""
    if isinstance(value, BaseModel):
        return plain(value.model_dump())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(plain(k)): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, Path):
        return str(value)
    return value


def emit(data: Any, output: OutputFormat) -> None:
    """Print ``data`` as JSON or YAML (``output`` is not TABLE: the command draws its own table)."""
    ready = plain(data)
    if output == OutputFormat.YAML:
        typer.echo(yaml.safe_dump(ready, sort_keys=False, allow_unicode=True), nl=False)
    else:
        typer.echo(json.dumps(ready, indent=2, ensure_ascii=False))
