"""The `enclave` command.

Each module of this package contributes the commands of one concept through ``register(app, render)``;
this module only assembles them and turns every EnclaveError into one readable message and the exit
code that enclave.errors assigns to it, so no Python traceback reaches a person.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from enclave.cli import access as access_cli
from enclave.cli import accounts as accounts_cli
from enclave.cli import batch as batch_cli
from enclave.cli import broker as broker_cli
from enclave.cli import contexts as contexts_cli
from enclave.cli import journal as journal_cli
from enclave.cli import logs as logs_cli
from enclave.cli import notebooks as notebooks_cli
from enclave.cli import ops as ops_cli
from enclave.cli import spec as spec_cli
from enclave.cli import twin as twin_cli
from enclave.cli.options import CONTEXT_OPTION
from enclave.errors import EnclaveError, InputError, Problem, exit_code

# -h as well as --help on every command (click's help_option_names, inherited by every sub-command).
CONTEXT = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    name="enclave",
    help="Control plane for a shared science enclave: Kubernetes commons, HTCondor pool, notebooks. "
         "Read commands print a table, or JSON or YAML with -o json|yaml.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT,
)
render = typer.Typer(help="Write derived configuration (Kubernetes objects, HTCondor config) to files.",
                     no_args_is_help=True)
app.add_typer(render, name="render")

err_console = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


def version() -> str:
    try:
        return metadata.version("enclave")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"enclave {version()}")
        raise typer.Exit()


@app.callback()
def _root(show: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                             help="Print the version and exit.")] = False,
          context: Annotated[str | None, typer.Option(
              "--context", envvar="ENCLAVE_CONTEXT", help="Client context to act through (`enclave config "
              "get-contexts`); default the current one. Without any: local mode on the server host.")] = None) -> None:
    """Control plane for a shared science enclave: Kubernetes commons, HTCondor pool, notebooks. Read commands
    print a table, or JSON or YAML with -o json|yaml."""
    CONTEXT_OPTION.set(context)


for _module in (spec_cli, accounts_cli, access_cli, journal_cli, batch_cli, notebooks_cli, twin_cli, broker_cli,
                ops_cli, logs_cli, contexts_cli):
    _module.register(app, render)


def report(error: EnclaveError) -> int:
    for problem in error.problems:
        # Text.assemble never parses markup: '[/bold]' in a spec key or a username is printed as written.
        err_console.print(Text.assemble(("error:", "bold red"), " ", str(problem)))
    return exit_code(error)


def check_arguments(argv: list[str]) -> None:
    """Python decodes arguments that are not UTF-8 with lone surrogates (PEP 383), which fail later, deep in a
    database driver or a print, as a traceback: refuse them here, naming the argument."""
    problems = []
    for i, arg in enumerate(argv[1:], start=1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError as exc:
            shown = os.fsencode(arg).decode("utf-8", "backslashreplace")  # the bytes as given: \xff
            problems.append(Problem(f"argument {i}", f"'{shown}' is not UTF-8 (character {exc.start + 1})",
                                    "give the argument as UTF-8 text"))
    if problems:
        raise InputError(problems)


def run(program: typer.Typer) -> None:
    """Run a command line; an EnclaveError becomes its message and exit code, never a traceback."""
    try:
        check_arguments(sys.argv)
        program()
    except EnclaveError as error:
        sys.exit(report(error))


def main() -> None:
    run(app)
