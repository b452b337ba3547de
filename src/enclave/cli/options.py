"""The options every command shares, defined once, and the one way a command gets its services."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
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
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
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
