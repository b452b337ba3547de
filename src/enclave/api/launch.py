"""`enclave serve`: the API, the dashboard and the broker loop in one process. The API front end's own launcher;
``enclave.main`` adds it to the command line."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.text import Text

from enclave import logs
from enclave.api.app import create_app
from enclave.api.service import Service
from enclave.api.wiring import live_runner, twin_runner
from enclave.errors import InputError, Problem
from enclave.home import enclave_home
from enclave.services import local
from enclave.services.demo import seed as demo_seed
from enclave.services.factory import Factory

console = Console(highlight=False, markup=False, soft_wrap=True)  # never wrap a token or a URL
log = logs.logger("serve")



def _twin_scenario(live: bool, twin: str | None, scenario: str | None, no_broker: bool) -> str | None:
    """The twin scenario the broker loop runs, None for live or no loop. The twin is never chosen for you
    (issue 16): without --live the loop needs --twin SCENARIO (or --no-broker)."""
    named = twin or scenario
    if live and named:
        raise InputError([Problem("--live/--twin", "name one target, not both",
                                  "--live drives the real cluster, --twin SCENARIO a simulation")])
    if live or no_broker:
        return None
    if named is None:
        raise InputError([Problem("--twin", "the broker loop needs a target and the twin is never chosen for you",
                                  "run a simulation explicitly: --twin one-week; drive the cluster: --live; "
                                  "or serve the API and dashboard only: --no-broker")])
    return named


def serve(
    spec_path: Annotated[Path | None, typer.Option("--spec", help="Enclave spec; default the embedded LSST LDF.")]
    = None,
    host: Annotated[str, typer.Option(help="Address to bind; loopback unless you mean to expose it.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    db: Annotated[str | None, typer.Option("--db", help="Database URL; default $ENCLAVE_DB or SQLite in "
                                                         "$ENCLAVE_HOME.")] = None,
    twin: Annotated[str | None, typer.Option("--twin", metavar="SCENARIO", help="Run the broker loop on a twin "
                                             "loaded with SCENARIO (name in examples/scenarios or a file); its "
                                             "moves are journaled in a scratch store, never in --db.")] = None,
    scenario: Annotated[str | None, typer.Option("--scenario", hidden=True, help="Old name of --twin.")] = None,
    speed: Annotated[float, typer.Option(min=1, help="Simulated seconds per broker cycle (twin).")] = 300.0,
    interval: Annotated[float, typer.Option(min=0.05, help="Wall-clock seconds between the twin's broker "
                                    "cycles; --live runs one every broker.cycle_seconds of the spec.")] = 1.0,
    admin: Annotated[str, typer.Option(help="Bootstrap sysadmin to create on an empty database and to print a "
                                            "token for.")] = "admin",
    live: Annotated[bool, typer.Option("--live", help="Drive a real cluster instead of the twin.")] = False,
    kubeconfig: Annotated[Path | None, typer.Option(help="Kubeconfig of the live cluster (--live).")] = None,
    collector: Annotated[str | None, typer.Option(help="HTCondor collector host[:port] (--live).")] = None,
    no_broker: Annotated[bool, typer.Option("--no-broker", help="Serve the API and dashboard only.")] = False,
    demo: Annotated[bool, typer.Option("--demo", help="Also onboard demo staff (an HTCondor admin, a service "
                                                      "admin, security) and science users, vet the spec's "
                                                      "notebook images, and print their sign-in links.")]
    = False,
    log_level: logs.LevelOption = None,
    log_format: logs.FormatOption = None,
) -> None:
    """Start the control plane: REST API (/api/v1, OpenAPI at /api/v1/docs), dashboard (/), Prometheus metrics
    (/metrics) and the broker loop on a twin (--twin SCENARIO, accelerated simulated clock, its own journal) or,
    with --live, a cluster. Logs go to stdout (--log-format json: one object per line, and the banner for
    people goes to stderr). The bootstrap token is printed only to a terminal, else written 0600 to
    $ENCLAVE_HOME/bootstrap-token."""
    scenario_name = _twin_scenario(live, twin, scenario, no_broker)
    chosen = logs.configure(log_level, log_format)
    if chosen == logs.LogFormat.JSON:
        console.file = sys.stderr  # stdout carries only the log stream
    local.check_server(db, local.os_user())  # a SQLite database: the server runs as its owner
    with Factory.standalone(spec_path, db, missing="create") as factory:  # serve makes its database (docs/api.md)
        token = factory.ensure_accounts(admin)
        demo_tokens = demo_seed(factory, admin) if demo and token else {}
        service = Service(factory=factory)
        if live:
            service.runner = live_runner(service, kubeconfig=kubeconfig, collector=collector)
        elif scenario_name is not None:
            console.print(Text.assemble("loading the twin with scenario ", (scenario_name, "bold"), " …"))
            service.runner = twin_runner(service, scenario=scenario_name, sim_seconds_per_cycle=speed,
                                         wall_seconds_per_cycle=interval)
            service.runner.snapshot()
        logs.event(log, logging.INFO, "enclave serve starting", version=logs.enclave_version(),
                   spec=str(spec_path) if spec_path else "embedded lsst-ldf", cluster=factory.spec.cluster.name,
                   database=factory.db.dialect, broker="live" if live else (
                       f"twin ({scenario_name})" if scenario_name else "none"), host=host, port=port)
        _run(service, host, port, admin, token, demo_tokens)


TOKEN_FILE = "bootstrap-token"
"""Where a server whose stderr is not a terminal leaves the bootstrap token: in the enclave home (0600)."""
DEMO_TOKEN_FILE = "demo-tokens"


def _write_secret(name: str, text: str) -> Path:
    """``text`` in ``$ENCLAVE_HOME/name``, readable and writable by its owner only (0600, also when the file was
    there before), in a home made 0700 if it is new."""
    home = enclave_home()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = home / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    return path


def _announce_tokens(url: str, admin: str, token: str | None, demo_tokens: dict[str, str]) -> None:
    """The sign-in banner's tokens. Printed only to a person at a terminal (stderr a tty): a server's stdout and
    stderr both go to its log when it is not one — the kubelet keeps both streams of a container
    (https://kubernetes.io/docs/concepts/cluster-administration/logging/, "Pod and container logs") and a
    collector ships them on — and enclave.logs' rule is that secrets never reach a log (``redact`` sees only log
    records, not this banner). Otherwise each token goes to a file of the enclave home readable by its owner only
    (0600), and the banner and the log say only where (docs/deploy.md step 8: `kubectl exec … cat` it)."""
    at_terminal = sys.stderr.isatty()
    if token and at_terminal:
        # Once, when the database is created; never in a URL (URLs end up in browser history and proxy logs).
        console.print(Text.assemble("admin token for ", (admin, "bold"),
                                    f": {token}  (shown once: made with this new database)"))
        console.print(f"dashboard sign-in: open {url}/login and paste the token")
    elif token:
        try:
            path = _write_secret(TOKEN_FILE, token + "\n")
        except OSError as exc:
            logs.event(log, logging.ERROR, "bootstrap token not written", account=admin, error=str(exc),
                       fix="issue one with `enclave tokens issue` on the server host")
            console.print(f"admin token for {admin}: not written ({exc}); issue one with `enclave tokens issue`")
        else:
            logs.event(log, logging.INFO, "bootstrap token written", account=admin, file=str(path))
            console.print(Text.assemble("admin token for ", (admin, "bold"),
                                        f": written to {path} (owner-only, 0600; not printed: this stream is "
                                        f"not a terminal)"))
            console.print(f"dashboard sign-in: open {url}/login and paste the token from that file")
    else:
        console.print(f"no token printed: the bootstrap token was shown when this database was created; "
                      f"a sysadmin issues more with `enclave tokens issue` (dashboard sign-in: {url}/login)")
    if demo_tokens and not at_terminal:
        lines = "".join(f"{user} {user_token}\n" for user, user_token in demo_tokens.items())
        path = _write_secret(DEMO_TOKEN_FILE, lines)
        logs.event(log, logging.INFO, "demo tokens written", accounts=list(demo_tokens), file=str(path))
        console.print(f"demo accounts' tokens: written to {path} (owner-only, 0600); sign in at {url}/login")
        return
    for user, user_token in demo_tokens.items():
        console.print(Text.assemble("demo account ", (user, "bold"), f": sign in at {url}/login with {user_token}"))


def _run(service: Service, host: str, port: int, admin: str, token: str | None,
         demo_tokens: dict[str, str] | None = None) -> None:
    app = create_app(service)
    url = f"http://{host}:{port}"
    console.print(Text.assemble("enclave control plane for ", (service.spec.cluster.name, "bold"), " at ",
                                (f"{url}/", "bold"), f"  (API {url}/api/v1/docs, metrics {url}/metrics, "
                                f"database {service.factory.db.safe_url})"))
    _announce_tokens(url, admin, token, demo_tokens or {})
    if service.runner:
        service.runner.start()
    try:
        # log_config=None: uvicorn's records go through enclave.logs, in its format (its access log is ours).
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, lifespan="off")
    finally:
        if service.runner:
            service.runner.stop()

