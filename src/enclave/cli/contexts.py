"""`enclave login`, `enclave config get-contexts|use-context|current-context` (kubectl's names,
https://kubernetes.io/docs/reference/kubectl/generated/kubectl_config/) and `enclave local map|unmap|list`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from enclave.cli.options import CONTEXT_OPTION, SELF, As, Output, OutputFormat, Reason, console, emit, host
from enclave.client.config import Context, config_path, load_config, save_config, server_problem, token_problem, warn
from enclave.client.http import Api, plain_http_problem
from enclave.client.remote import Remote
from enclave.errors import InputError, NotFound, Problem
from enclave.services import local

config_app = typer.Typer(help="Client contexts: which enclave API a command talks to, with which token.",
                         no_args_is_help=True)
local_app = typer.Typer(help="Local mode on the server host: which OS users may act as which accounts without a "
                             "token (a sysadmin maps them; journaled).", no_args_is_help=True)


def _read_token(token_file: Path | None) -> str:
    """The token from --token-file, else standard input when it is not a terminal, else a hidden prompt: never a
    command-line argument, which other users of the host can read in the process list."""
    if token_file is not None:
        try:
            text = token_file.read_bytes().decode("utf-8-sig")  # -sig: a UTF-8 byte-order mark (Notepad) dropped
        except OSError as exc:
            raise InputError([Problem("--token-file", f"cannot read {token_file}: {exc.strerror}",
                                      "give a readable file holding the token")]) from exc
        except UnicodeDecodeError as exc:
            raise InputError([Problem("--token-file", f"{token_file} is not UTF-8 text ({exc.reason} at byte "
                                      f"{exc.start})", "save the token as plain text (ASCII or UTF-8)")]) from exc
    elif not sys.stdin.isatty():
        try:
            text = sys.stdin.read()
        except UnicodeDecodeError as exc:
            raise InputError([Problem("token", f"standard input is not UTF-8 text ({exc.reason})",
                                      "pipe the token in as plain text (ASCII or UTF-8)")]) from exc
    else:
        text = typer.prompt("Token", hide_input=True)
    token = text.removeprefix("\ufeff").strip()
    if not token:
        raise InputError([Problem("token", "no token was given",
                                  "pass --token-file FILE, pipe the token in, or paste it at the prompt")])
    problem = token_problem(token)
    if problem is not None:
        raise InputError([Problem("--token-file" if token_file is not None else "token", problem,
                                  "copy the token exactly as `enclave tokens issue` printed it")])
    return token


def _warn_if_overridden(name: str) -> None:
    """$ENCLAVE_CONTEXT picks the context of every command in this shell, whatever the config's current-context:
    making ``name`` current changes nothing there, so say so (on stderr) rather than let the next command go to
    the other server."""
    env = os.environ.get("ENCLAVE_CONTEXT")
    if env and env != name:
        warn(f"$ENCLAVE_CONTEXT={env} overrides the current context in this shell: commands run here still use "
             f"context {env!r}, not {name!r} (`unset ENCLAVE_CONTEXT` to use {name!r})")


def login(server: Annotated[str, typer.Argument(help="The enclave API's base URL, e.g. https://enclave.example.org")],
          context: Annotated[str | None, typer.Option("--context", help="Name of the context (default: the "
                                                      "server's host name).")] = None,
          token_file: Annotated[Path | None, typer.Option("--token-file", help="File holding the token (default: "
                                                          "standard input, or a prompt).")] = None,
          spec: Annotated[str | None, typer.Option("--spec", help="Default spec for commands in this context.")]
          = None) -> None:
    """Check a token against SERVER (`GET /api/v1/whoami`) and save it as a context (0600), the current one."""
    if not server.startswith(("http://", "https://")):
        raise InputError([Problem("SERVER", f"{server!r} is not an http(s) URL", "e.g. https://enclave.example.org")])
    problem = server_problem(server) or plain_http_problem(server)  # plain http: RFC 6750 §5.3 (client.http)
    if problem is not None:
        raise InputError([Problem("SERVER", problem, "use https://, e.g. https://enclave.example.org (plain http "
                                  "only to localhost, e.g. through `ssh -L` or `kubectl port-forward`)")])
    name = context or server.split("://", 1)[1].split("/", 1)[0]
    probe = Context(name=name, server=server, token=_read_token(token_file), username="?", spec=spec)
    api = Api(probe)
    try:
        who = Remote(api).whoami()
    finally:
        api.close()
    config = load_config()
    config.put(probe.model_copy(update={"username": str(who["username"])}))
    config.current_context = name
    path = save_config(config)
    console.print(f"logged in to {server} as {who['username']} ({', '.join(who['roles']) or 'no roles'}); "
                  f"context {name!r} saved in {path} and made current")
    _warn_if_overridden(name)


@config_app.command("get-contexts")
def get_contexts(output: Output = OutputFormat.TABLE) -> None:
    """Every context: name, server, account, default spec; never the tokens."""
    config = load_config()
    rows = [{"current": c.name == config.current_context, "name": c.name, "server": c.server,
             "username": c.username, "spec": c.spec} for c in config.contexts]
    if output != OutputFormat.TABLE:
        emit(rows, output)
        return
    table = Table(title=str(config_path()))
    for col in ("current", "name", "server", "account", "spec"):
        table.add_column(col)
    for r in rows:
        table.add_row("*" if r["current"] else "", str(r["name"]), str(r["server"]), str(r["username"]),
                      str(r["spec"] or ""))
    console.print(table)


@config_app.command("use-context")
def use_context(name: Annotated[str, typer.Argument(help="A context from get-contexts.")]) -> None:
    """Make NAME the current context."""
    config = load_config()
    config.find(name)
    config.current_context = name
    save_config(config)
    console.print(f"switched to context {name!r}")
    _warn_if_overridden(name)


@config_app.command("current-context")
def current_context(ctx: typer.Context, output: Output = OutputFormat.TABLE) -> None:
    """The context in effect: --context, else $ENCLAVE_CONTEXT, else the config's current-context, as commands
    choose it (exit 3 if none: commands then run in local mode). When an option or $ENCLAVE_CONTEXT decides, it
    says so (on stderr for a table; ``source`` in JSON/YAML)."""
    config = load_config()
    name = CONTEXT_OPTION.get() or config.current_context  # the root --context, which reads $ENCLAVE_CONTEXT too
    given = CONTEXT_OPTION.get() is not None
    source_of = ctx.find_root().get_parameter_source("context")
    from_env = source_of is not None and source_of.name == "ENVIRONMENT"
    source = ("$ENCLAVE_CONTEXT" if from_env else "--context") if given else "config"
    if name is None:
        raise NotFound("no current context is set", where=str(config_path()),
                       fix="`enclave login SERVER` or `enclave config use-context NAME`")
    if source != "config":
        config.find(name)
    if output != OutputFormat.TABLE:
        emit({"current-context": name} if source == "config" else
             {"current-context": name, "source": source, "config-current-context": config.current_context}, output)
        return
    typer.echo(name)
    if source != "config":
        typer.echo(f"({name!r} comes from {source}, which overrides the config's current-context; that is "
                   f"{config.current_context!r})", err=True)


OsUserArg = Annotated[str, typer.Argument(help="OS user of this host (as `id -un` prints it).")]
AccountArg = Annotated[str, typer.Argument(help="Enclave account.")]


@local_app.command("map")
def map_cmd(os_user: OsUserArg, account: AccountArg, reason: Reason, actor: As = SELF) -> None:
    """Let OS_USER act as ACCOUNT in local mode on this host (needs accounts.manage; journaled)."""
    with host() as factory:
        done = factory.accounts.map_local(actor, os_user, account, reason=reason)
    console.print(f"OS user {os_user} may act as {account} in local mode" if done
                  else f"OS user {os_user} already may act as {account}; nothing changed")


@local_app.command("unmap")
def unmap_cmd(os_user: OsUserArg, account: AccountArg, reason: Reason, actor: As = SELF) -> None:
    """Withdraw a mapping (needs accounts.manage; journaled)."""
    with host() as factory:
        done = factory.accounts.unmap_local(actor, os_user, account, reason=reason)
    console.print(f"OS user {os_user} may no longer act as {account}" if done
                  else f"OS user {os_user} was not mapped to {account}; nothing changed")


@local_app.command("list")
def list_cmd(os_user: Annotated[str | None, typer.Argument(help="OS user (default: you).")] = None,
             output: Output = OutputFormat.TABLE) -> None:
    """The accounts an OS user may act as in local mode."""
    who = os_user or local.os_user().name
    with host() as factory:
        names = factory.accounts.local_accounts(who)
    if output != OutputFormat.TABLE:
        emit({"os_user": who, "accounts": names}, output)
        return
    console.print(f"OS user {who}: {', '.join(names) or 'no account'}")


def register(app: typer.Typer, render: typer.Typer) -> None:
    app.command("login")(login)
    app.add_typer(config_app, name="config")
    app.add_typer(local_app, name="local")
