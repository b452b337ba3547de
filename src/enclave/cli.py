"""The `enclave` command.

Each concept folder contributes its commands through ``enclave.<concept>.cli.register(app, render)``;
this module only assembles them and turns every EnclaveError into one readable message and the exit
code that enclave.errors assigns to it, so no Python traceback reaches a person.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from enclave.errors import EnclaveError, exit_code

CONCEPTS = ("spec", "accounts", "access", "journal", "batch", "notebooks", "twin", "broker", "ops", "api")

app = typer.Typer(
    name="enclave",
    help="Control plane for a shared science enclave: Kubernetes commons, HTCondor pool, notebooks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
render = typer.Typer(help="Write derived configuration (Kubernetes objects, HTCondor config) to files.",
                     no_args_is_help=True)
app.add_typer(render, name="render")

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _register_all() -> None:
    for concept in CONCEPTS:
        name = f"enclave.{concept}.cli"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name in (name, f"enclave.{concept}"):
                continue
            raise
        module.register(app, render)


_register_all()


def report(error: EnclaveError) -> int:
    for problem in error.problems:
        err_console.print(f"[bold red]error:[/] {problem}", markup=True)
    return exit_code(error)


def main() -> None:
    try:
        app()
    except EnclaveError as error:
        sys.exit(report(error))
