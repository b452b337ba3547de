"""The `enclave` command.

Each module of this package contributes the commands of one concept through ``register(app, render)``;
this module only assembles them and turns every EnclaveError into one readable message and the exit
code that enclave.errors assigns to it, so no Python traceback reaches a person.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.text import Text

from enclave.cli import access as access_cli
from enclave.cli import accounts as accounts_cli
from enclave.cli import batch as batch_cli
from enclave.cli import broker as broker_cli
from enclave.cli import journal as journal_cli
from enclave.cli import notebooks as notebooks_cli
from enclave.cli import ops as ops_cli
from enclave.cli import spec as spec_cli
from enclave.cli import twin as twin_cli
from enclave.errors import EnclaveError, exit_code

app = typer.Typer(
    name="enclave",
    help="Control plane for a shared science enclave: Kubernetes commons, HTCondor pool, notebooks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
render = typer.Typer(help="Write derived configuration (Kubernetes objects, HTCondor config) to files.",
                     no_args_is_help=True)
app.add_typer(render, name="render")

err_console = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


for _module in (spec_cli, accounts_cli, access_cli, journal_cli, batch_cli, notebooks_cli, twin_cli, broker_cli,
                ops_cli):
    _module.register(app, render)


def report(error: EnclaveError) -> int:
    for problem in error.problems:
        # Text.assemble never parses markup: '[/bold]' in a spec key or a username is printed as written.
        err_console.print(Text.assemble(("error:", "bold red"), " ", str(problem)))
    return exit_code(error)


def run(program: typer.Typer) -> None:
    """Run a command line; an EnclaveError becomes its message and exit code, never a traceback."""
    try:
        program()
    except EnclaveError as error:
        sys.exit(report(error))


def main() -> None:
    run(app)
