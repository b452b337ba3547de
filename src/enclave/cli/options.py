"""The options every command shares, defined once, and the one way a command gets its services."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import BaseModel
from rich.console import Console

from enclave.errors import InputError, Problem
from enclave.services.factory import Factory
from enclave.spec.defaults import default_spec_path
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec

console = Console(highlight=False, markup=False, width=140)

SpecOption = Annotated[
    Path | None, typer.Option("--spec", help="Enclave spec; default $ENCLAVE_SPEC or examples/lsst-ldf.yaml.")]
As = Annotated[str, typer.Option("--as", envvar="ENCLAVE_AS", help="The acting account (or $ENCLAVE_AS).")]
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
DbOption = Annotated[str | None, typer.Option("--db", help="Database URL; default $ENCLAVE_DB or SQLite in "
                                                           "$ENCLAVE_HOME.")]


def load_spec_option(path: Path | None) -> EnclaveSpec:
    """The spec named by a --spec option, or the embedded default."""
    return load(path or default_spec_path())


@contextmanager
def services(spec: Path | None = None, db: str | None = None) -> Iterator[Factory]:
    """The factory for one command: its spec, its database, closed when the command ends."""
    with Factory.standalone(spec, db) as factory:
        yield factory


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
