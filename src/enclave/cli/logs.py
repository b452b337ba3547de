"""`enclave logs NAMESPACE POD`: a developer reads a pod's log (seed §5, AA2/AA3), with kubectl's options
(https://kubernetes.io/docs/reference/kubectl/generated/kubectl_logs/: -c/--container, --since, --tail, -f/--follow).
One call of ``enclave.services.logs.LogService.read``: the check, the journal entry and the lines all come from
there."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from enclave.cli.broker import AtHours, _target
from enclave.cli.options import SELF, As, DbOption, Live, SpecOption, Twin, enclave
from enclave.domain.logs import LogRequest
from enclave.errors import InputError, Problem
from enclave.services.factory import Factory

# kubectl's --since is a Go duration of hours, minutes and seconds ("5s, 2m, or 3h"; time.ParseDuration).
DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_since(text: str | None) -> int | None:
    if text is None:
        return None
    m = DURATION.match(text)
    if not text or m is None:
        raise InputError([Problem("--since", f"{text!r} is not a duration", "write e.g. 30s, 10m, 3h or 1h30m")])
    h, mi, s = (int(g or 0) for g in m.groups())
    return h * 3600 + mi * 60 + s


def logs_cmd(namespace: Annotated[str, typer.Argument(help="Application namespace, e.g. firefly.")],
             pod: Annotated[str, typer.Argument(help="Pod name, as `kubectl get pods` shows it.")],
             container: Annotated[str | None, typer.Option("-c", "--container",
                                                           help="Container; default the pod's only one.")] = None,
             since: Annotated[str | None, typer.Option("--since", help="Only lines newer than this: 30s, 10m, 3h.")]
             = None,
             tail: Annotated[int, typer.Option("--tail", help="Last lines only; -1 (default): all.")] = -1,
             follow: Annotated[bool, typer.Option("-f", "--follow", help="Stream new lines as they come.")] = False,
             live: Live = False, twin: Twin = None, at_hours: AtHours = 0.0, spec_path: SpecOption = None,
             db_url: DbOption = None, actor: As = SELF) -> None:
    """Print a pod's log: for accounts with logs.read in that namespace (its developers); every read, and every
    refusal, is journaled. With a context the server reads it (from the cluster or twin it serves); on the server
    host, --live reads the cluster and --twin SCENARIO the simulated pods' events (checked, not journaled)."""
    request = LogRequest(namespace, pod, container=container, since_seconds=parse_since(since),
                         tail_lines=None if tail == -1 else tail, follow=follow)  # kubectl: -1 means every line
    with enclave(spec_path, db_url) as factory:
        if isinstance(factory, Factory):
            _local_source(factory, live, twin, at_hours)
        elif live or twin:
            raise InputError([Problem("--live" if live else "--twin", "through a context the server reads the log "
                                      "from the cluster (or twin) it serves", "drop the option")])
        for line in factory.logs.read(actor, request):
            typer.echo(line)


def _local_source(factory: Factory, live: bool, twin: str | None, at_hours: float) -> None:
    if _target(live, twin):
        assert twin is not None
        factory.use_twin_logs(factory.twin_backend(twin, at_hours))
    else:
        factory.use_live_logs()


def register(app: typer.Typer, render: typer.Typer) -> None:
    app.command("logs")(logs_cmd)
