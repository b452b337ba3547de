"""`enclave broker plan|run` and the BCS procedures by hand: `enclave batch move|add-pods|delete-pods|
drain-node|start-htcondor|return-node|drain-startd`.

A command that changes an enclave (a procedure, `broker run`) acts on the configured live enclave — Kubernetes
+ HTCondor — and journals there; with ``--twin SCENARIO`` it acts on a fresh simulated enclave of the spec in
a throw-away store of its own (``Factory.scratch``), says so, and leaves the enclave's journal alone. Without a
live enclave and without ``--twin`` it refuses. `broker plan` changes nothing and looks at the twin unless
``--live``. Each procedure is one call of
``enclave.services.broker.BrokerService`` — the same call the API makes — so both build the same action and
journal the same entry.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from enclave import logs
from enclave.access.permissions import Permission
from enclave.broker.decide import BROKER_ACTOR, Plan
from enclave.broker.execute import Outcome, target
from enclave.cli.batch import batch_app
from enclave.cli.options import (
    SELF,
    As,
    DbOption,
    Live,
    Output,
    OutputFormat,
    Reason,
    Scenario,
    SpecOption,
    Twin,
    emit,
    enclave,
    host,
    load_spec_option,
    resolve_actor,
    selected_context,
)
from enclave.client.remote import Remote, RemoteBroker
from enclave.clock import stamp
from enclave.domain.capacity import Action, DeployPods, DrainStartd, Observed, Relabel, StartdKind, StartHTCondor
from enclave.domain.schedule import ObservingSchedule
from enclave.domain.schedule import parse as parse_schedule
from enclave.errors import EnclaveError, InputError, Problem
from enclave.services.broker import BrokerService, DrainOverrides
from enclave.services.factory import Factory
from enclave.spec import document
from enclave.spec.models import MAX_SECONDS, Role

broker_app = typer.Typer(help="The capacity broker: move capacity between pools and between Kubernetes and "
                              "HTCondor (seed §7.1, BCS 1–5).", no_args_is_help=True)
console = Console(highlight=False, markup=False, width=140)
err_console = Console(stderr=True, highlight=False, markup=False, width=140)

DEFAULT_SCENARIO = "one-night"
# Bounded above as well: ``min`` alone let inf through, which ended in a traceback (review, stop 48).
TWIN_MAX_HOURS = MAX_SECONDS / 3600
AtHours = Annotated[float, typer.Option("--at-hours", min=0, max=TWIN_MAX_HOURS,
                                        help="Run the twin this long first (hours).")]


@contextmanager
def _broker(spec_path: Path | None, live: bool, scenario: str, at_hours: float) -> Iterator[BrokerService]:
    """The broker service a read-only command (plan) looks through: live, or a twin in a scratch store."""
    spec = load_spec_option(spec_path)
    if not live:
        with Factory.scratch(spec) as factory:
            yield factory.broker(factory.twin_backend(scenario, at_hours), f"twin ({scenario})")
        return
    with Factory.standalone(spec_path) as factory:
        yield factory.broker(factory.live_backend(), "live")


def _target(live: bool, twin: str | None) -> bool:
    """True for the twin. A command that changes an enclave acts on the configured live one unless the twin
    is named explicitly, and refuses when there is no live enclave to act on."""
    if live and twin is not None:
        raise InputError([Problem("--live/--twin", "name one target, not both",
                                  "--live acts on the real enclave, --twin SCENARIO on a throw-away simulation")])
    if twin is None and not live and not Factory.live_configured():
        raise InputError([Problem("target", "no live enclave is configured here (no in-cluster credentials, "
                                  "$KUBECONFIG or ~/.kube/config), and the twin is never chosen for you",
                                  f"act on a simulation explicitly: --twin {DEFAULT_SCENARIO}; or configure "
                                  "Kubernetes credentials and pass --live")])
    return twin is not None


@contextmanager
def _on_host(spec_path: Path | None, live: bool, twin: str | None, at_hours: float, db_url: str | None,
             actor: str, roles: list[Role] | None = None) -> Iterator[BrokerService]:
    """The broker service a changing command acts through on this host: the live enclave and its journal (local
    mode), or — named with --twin — a twin in its own scratch store (``Factory.scratch``), where ``actor`` holds
    the roles it holds in the enclave (``roles``, else read in local mode), so the twin refuses what the enclave
    would. Nothing simulated reaches the enclave's journal."""
    if not _target(live, twin):
        with host(spec_path, db_url) as factory:
            yield factory.broker(factory.live_backend(), "live")
        return
    assert twin is not None
    spec = load_spec_option(spec_path)
    mirror: dict[str, list[Role]] = {}
    if actor != BROKER_ACTOR:  # the broker's service account has fixed roles, made in every scratch store
        if roles is None:
            with host(spec_path, db_url) as real:
                roles = [Role(r) for r in real.accounts.show(actor, actor).roles]
        mirror[actor] = roles
    with Factory.scratch(spec, mirror) as factory:
        yield factory.broker(factory.twin_backend(twin, at_hours), f"twin ({twin})", drives=True)


@contextmanager
def _procedure(spec_path: Path | None, live: bool, twin: str | None, at_hours: float, db_url: str | None,
               actor: str) -> Iterator[BrokerService | RemoteBroker]:
    """A BCS procedure's broker: with a context, the server's (``POST /broker/actions``, as the token's account;
    with --twin, a local twin where the token's account holds its real roles, read from ``/whoami``); without
    one, this host's (``_on_host``)."""
    roles = None
    scopes: frozenset[Permission] | None = None
    if selected_context() is not None:
        if live and twin is not None:
            _target(live, twin)  # the same refusal as locally
        with enclave(spec_path, db_url) as services:
            assert isinstance(services, Remote)  # a context is selected: enclave() goes through the API
            if twin is None:
                yield services.broker
                return
            me = services.whoami()
            roles = [Role(r) for r in me["roles"]]
            # The token's own permissions too: its account's roles alone would let a token scoped away from the
            # broker's actions drive them on the twin (review, stop 48).
            scopes = frozenset(Permission(p) for p in me["permissions"])
    with _on_host(spec_path, live, twin, at_hours, db_url, actor, roles) as broker:
        if scopes is not None and isinstance(broker, BrokerService):
            broker.scopes = scopes
        yield broker


def render_plan(p: Plan, observed: Observed, out: Console) -> None:
    out.print(Text.assemble(("broker plan", "bold"), f" at {stamp(observed.now)} — {p.standalone_cores} standalone "
                            "batch cores; " + "; ".join(p.notes or ["no observing night (no site in the spec)"])))
    pools = Table(title="Pools (cores)")
    for col in ("pool", "priority", "work", "guaranteed", "max", "need", "target", "borrow", "holds", "borrowed"):
        pools.add_column(col, justify="left" if col in ("pool", "work") else "right")
    for ps in sorted(p.pools.values(), key=lambda x: -x.priority):
        work = ("pre-warm" if ps.prewarm else "yes") if ps.has_work else "no"
        pools.add_row(ps.name, str(ps.priority), work, str(ps.guaranteed), str(ps.maximum), str(ps.need),
                      str(ps.target), str(ps.lend), str(_holds(observed, ps.name, standalone=True)),
                      str(_holds(observed, ps.name, standalone=False)))
    out.print(pools)
    if not p.actions:
        out.print("nothing to do: every pool is where its targets put it (within hysteresis and cooldown)")
        return
    acts = Table(title=f"{len(p.actions)} action(s)" + (" — move limit reached, more next cycle" if p.capped else ""))
    for col in ("#", "action", "target", "detail", "why"):
        acts.add_column(col, justify="right" if col == "#" else "left", overflow="fold")
    for i, a in enumerate(p.actions, 1):
        acts.add_row(str(i), a.kind, target(a), _detail(a), a.reason)
    out.print(acts)


def _holds(o: Observed, pool: str, *, standalone: bool) -> int:
    return sum(s.cores for s in o.startds
               if s.pool == pool and not s.draining and (s.kind == StartdKind.STANDALONE) == standalone)


def _detail(a: Action) -> str:
    match a:
        case Relabel(from_pool=f, to_pool=t, vacate_after_seconds=v):
            return f"{f} → {t}" + (f", vacate after {v:g} s" if v is not None else ", running jobs finish")
        case DeployPods(pool=pool, pods=pods, cores_per_pod=c):
            return f"{len(pods)} × {c} cores for {pool}"
        case StartHTCondor(pool=pool):
            return f"for {pool}"
        case DrainStartd(vacate_after_seconds=v):
            return "let jobs finish" if v is None else f"vacate after {v:g} s"
    return ""


@broker_app.command("plan")
def plan_cmd(spec_path: SpecOption = None, live: Live = False, scenario: Scenario = DEFAULT_SCENARIO,
             at_hours: AtHours = 0.0, output: Output = OutputFormat.TABLE) -> None:
    """What the broker would do now and why (changes nothing)."""
    with _broker(spec_path, live, scenario, at_hours) as broker:
        p, observed = broker.plan()
    if output != OutputFormat.TABLE:
        emit({"now": datetime.fromtimestamp(observed.now, UTC), "capped": p.capped, "notes": p.notes,
              "pools": {n: vars(ps) for n, ps in p.pools.items()},
              "actions": [{"kind": a.kind, **vars(a)} for a in p.actions]}, output)
        return
    render_plan(p, observed, console)


def _broker_actor(ctx: typer.Context, value: str) -> str:
    """The broker's own service account needs no mapping (the loop runs in local mode, as the database's owner);
    any other account is resolved as every --as is."""
    return value if value == BROKER_ACTOR else resolve_actor(ctx, value)


@broker_app.command("run")
def run_cmd(spec_path: SpecOption = None, live: Live = False, twin: Twin = None,
            hours: Annotated[float, typer.Option("--hours", min=0, max=TWIN_MAX_HOURS,
                                                 help="Twin: simulated hours to run.")] = 24.0,
            cycles: Annotated[int | None, typer.Option("--cycles", min=1, help="Stop after this many cycles.")]
            = None, actor: Annotated[str, typer.Option("--as", callback=_broker_actor, help="Account the broker acts "
                                                       "as (another than the broker's: mapped to your OS user).")]
            = BROKER_ACTOR,
            db_url: DbOption = None, log_level: logs.LevelOption = None, log_format: logs.FormatOption = None) -> None:
    """The broker loop: observe → decide → act every broker.cycle_seconds, each action journaled.

    On the live enclave (the default; --live to insist) it runs in real time and journals in the enclave
    database. With --twin SCENARIO it runs in simulated time in a throw-away store with its own journal.
    With --log-level/--log-format (or $ENCLAVE_LOG_LEVEL/$ENCLAVE_LOG_FORMAT) it also logs each action applied
    or refused to stdout, as `enclave serve` does."""
    if log_level or log_format or os.environ.get(logs.LEVEL_ENV) or os.environ.get(logs.FORMAT_ENV):
        logs.configure(log_level, log_format)
    simulated = _target(live, twin)
    applied: dict[str, int] = {}
    n = 0
    with _loop_host(spec_path, live, twin, db_url, actor) as (broker, leading):
        # The cycle of the spec the loop runs on: on the live enclave the host's (--spec, $ENCLAVE_SPEC), never a
        # context's, which names the spec of the enclave the context reaches (review, stop 49).
        step = broker.spec.broker.cycle_seconds
        total = cycles if cycles is not None else (max(1, int(hours * 3600 // step)) if simulated else None)
        backend = broker.backend
        while (total is None or n < total) and not backend.finished:
            _run_cycle(broker, actor, leading, applied)
            n += 1
            backend.advance(step)
        console.print(Text.assemble((f"{n} cycle(s)", "bold"), f" on {broker.where}: " + (
            ", ".join(f"{k} {v}" for k, v in sorted(applied.items())) or "no actions")))
        if backend.finished:  # the figures cover the whole scenario
            _twin_figures(backend)
        if simulated:
            console.print(f"SIMULATED on {broker.where}: the enclave itself was not changed and its journal has "
                          "no entry of this run")


@contextmanager
def _loop_host(spec_path: Path | None, live: bool, twin: str | None, db_url: str | None,
               actor: str) -> Iterator[tuple[BrokerService, Callable[[], bool] | None]]:
    """The loop's broker (``_on_host``) and, on the live enclave, whether this process may run it now: the same
    leadership as a serving replica's loop (``Factory.broker_leadership``), so the two never act together (review:
    the command never asked)."""
    if not _target(live, twin):
        with host(spec_path, db_url) as factory:
            yield factory.broker(factory.live_backend(), "live"), factory.broker_leadership
        return
    with _on_host(spec_path, live, twin, 0.0, db_url, actor) as broker:
        yield broker, None


def _run_cycle(broker: BrokerService, actor: str, leading: Callable[[], bool] | None,
               applied: dict[str, int]) -> None:
    """One cycle of ``broker run``, as the server's loop runs one (``enclave.api.runner``): standing by while
    another process leads, and a failure of the systems it drives reported and tried again next cycle, never the
    end of the loop (review: the first 500 ended the command)."""
    try:
        if leading is not None and not leading():
            console.print("standing by: another enclave process runs the broker")
            return
        with contextlib.suppress(EnclaveError):  # refused evictions are retried next cycle; the cycle goes on
            broker.backend.progress()
        report = broker.cycle(actor, leading=leading)
        if any(o.applied for o in report.outcomes):  # the time to print them at: an observation, on live many calls
            _print_applied(report.outcomes, broker.observe().now, applied)
        for line in report.refused:
            err_console.print(f"refused: {line}")
        if report.stopped:
            err_console.print(f"stopped: {report.stopped}")
    except Exception as error:  # as the server's loop: reported, tried again next cycle
        err_console.print(f"cycle failed, trying again next cycle: {type(error).__name__}: {error}")


def _print_applied(outcomes: list[Outcome], now: float, applied: dict[str, int]) -> None:
    for o in outcomes:
        if o.applied:
            applied[o.action.kind] = applied.get(o.action.kind, 0) + 1
            console.print(f"{stamp(now)}  {o.action.kind:<14} {target(o.action):<28} {o.action.reason}",
                          overflow="ellipsis", no_wrap=True)


def _twin_figures(twin: Any) -> None:
    from enclave.twin.metrics import compute  # the figures of a finished twin run

    m = compute(twin.sim)
    prompt, util = m.get("prompt") or {}, m.get("utilization") or {}
    within = prompt.get("visits_within_deadline")
    console.print(f"twin: {prompt.get('visits', 0)} visits, "
                  + (f"{within:.2%} within {prompt.get('deadline_s', 60):g} s" if within is not None else "no visits")
                  + f"; batch utilization {util.get('batch', 0) or 0:.2%}, enclave {util.get('enclave', 0) or 0:.2%}")


# --- BCS procedures by hand, under `enclave batch` ------------------------------------------------------

def _done(broker: BrokerService | RemoteBroker, outcome: Outcome) -> None:
    action = outcome.action
    simulated = broker.where.startswith("twin")
    if outcome.applied:
        journal = (f"entry {outcome.seq} of the twin's throw-away journal; nothing recorded in the enclave's"
                   if simulated else f"journal entry {outcome.seq}")
        console.print(f"{action.kind} {target(action)} done on {broker.where}; {journal}")
    else:
        console.print(f"{action.kind} {target(action)}: already in effect on {broker.where}; nothing to do")
    if simulated:
        console.print(f"SIMULATED on {broker.where}: the enclave itself was not changed")


def move_cmd(node: Annotated[str, typer.Argument(help="Startd: a batch-only node, drained node or worker pod.")],
             to: Annotated[str, typer.Option("--to", help="The pool it should serve.")], reason: Reason,
             live: Live = False, twin: Twin = None, at_hours: AtHours = 0.0,
             spec_path: SpecOption = None, db_url: DbOption = None, actor: As = SELF) -> None:
    """BCS 1/2: relabel a startd's pool (HTCondor administrator)."""
    with _procedure(spec_path, live, twin, at_hours, db_url, actor) as broker:
        _done(broker, broker.move(actor, node, to, reason=reason))


def add_pods_cmd(node: Annotated[str, typer.Argument(help="Kubernetes worker node.")],
                 pool: Annotated[str, typer.Option("--pool", help="Pool the pods serve.")], reason: Reason,
                 count: Annotated[int, typer.Option("--count", min=1, max=1024)] = 1,
                 cores: Annotated[int | None, typer.Option("--cores", min=1, help="Default broker.pod_cores.")] = None,
                 memory_mib: Annotated[int | None, typer.Option("--memory-mib", min=1)] = None,
                 live: Live = False, twin: Twin = None, at_hours: AtHours = 0.0,
                 spec_path: SpecOption = None, db_url: DbOption = None, actor: As = SELF) -> None:
    """BCS 4: deploy HTCondor worker pods on a worker, labelled for a pool (Kubernetes service administrator)."""
    with _procedure(spec_path, live, twin, at_hours, db_url, actor) as broker:
        _done(broker, broker.add_pods(actor, node, pool, reason=reason, count=count, cores=cores,
                                      memory_mib=memory_mib))


def delete_pods_cmd(pods: Annotated[list[str], typer.Argument(help="Worker pod names.")], reason: Reason,
                    live: Live = False, twin: Twin = None, at_hours: AtHours = 0.0,
                    spec_path: SpecOption = None, db_url: DbOption = None, actor: As = SELF) -> None:
    """BCS 3: delete HTCondor worker pods (drain them first with drain-startd so jobs finish)."""
    with _procedure(spec_path, live, twin, at_hours, db_url, actor) as broker:
        _done(broker, broker.delete_pods(actor, pods, reason=reason))


_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str | None, option: str) -> float | None:
    """kubectl's duration flags take Go durations (``0s``, ``90s``, ``5m``, ``1h30m``: Go time.ParseDuration,
    https://pkg.go.dev/time#ParseDuration); a bare number is seconds."""
    if text is None:
        return None
    value = text.strip()
    with contextlib.suppress(ValueError):
        return float(value)
    if not value or _GO_DURATION.sub("", value) != "":
        raise InputError([Problem(option, f"{text!r} is not a duration", "write e.g. 0s, 90s, 5m or 1h30m")])
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _GO_DURATION.findall(value))


def _duration(text: str | None, option: str) -> float | None:
    seconds = parse_duration(text, option)
    if seconds is not None and seconds < 0:
        raise InputError([Problem(option, f"{text!r} is negative", "give 0s (no limit) or a positive duration")])
    return seconds


def drain_node_cmd(
    node: Annotated[str, typer.Argument(help="Kubernetes worker node.")], reason: Reason,
    force: Annotated[bool | None, typer.Option(
        "--force/--no-force", help="kubectl drain --force: also evict pods no controller manages (notebook "
        "pods). Default: the spec's cluster.drain.force.")] = None,
    ignore_daemonsets: Annotated[bool | None, typer.Option(
        "--ignore-daemonsets/--no-ignore-daemonsets", help="kubectl drain --ignore-daemonsets: leave DaemonSet "
        "pods in place instead of refusing. Default: the spec's.")] = None,
    delete_emptydir_data: Annotated[bool | None, typer.Option(
        "--delete-emptydir-data/--no-delete-emptydir-data", help="kubectl drain --delete-emptydir-data: evict "
        "pods with emptyDir volumes (their data is lost). Default: the spec's.")] = None,
    grace_period: Annotated[int, typer.Option(
        "--grace-period", help="kubectl drain --grace-period: seconds each pod gets to stop; negative (the "
        "default, -1): the pod's own terminationGracePeriodSeconds.")] = -1,
    timeout: Annotated[str | None, typer.Option(
        "--timeout", help="kubectl drain --timeout: wait this long (Go duration: 90s, 5m) for the evictions, "
        "0s without limit; exit non-zero if pods remain. Default: do not wait (the broker retries each "
        "cycle).")] = None,
    live: Live = False, twin: Twin = None, at_hours: AtHours = 0.0,
    spec_path: SpecOption = None, db_url: DbOption = None, actor: As = SELF,
) -> None:
    """BCS 5 step 1: taint a worker against new pods and evict its pods (Kubernetes service administrator), with kubectl
    drain's flags (https://kubernetes.io/docs/reference/kubectl/generated/kubectl_drain/); flags given here
    override the spec's cluster.drain for this drain."""
    flags = DrainOverrides(force=force, ignore_daemonsets=ignore_daemonsets,
                           delete_emptydir_data=delete_emptydir_data,
                           grace_period_seconds=grace_period if grace_period >= 0 else None,
                           timeout_seconds=_duration(timeout, "--timeout"))
    with _procedure(spec_path, live, twin, at_hours, db_url, actor) as broker:
        _done(broker, broker.drain_node(actor, node, reason=reason, flags=flags))


def start_htcondor_cmd(node: Annotated[str, typer.Argument(help="A drained Kubernetes worker.")],
                       pool: Annotated[str, typer.Option("--pool", help="Pool it serves.")], reason: Reason,
                       live: Live = False, twin: Twin = None,
                       at_hours: AtHours = 0.0, spec_path: SpecOption = None, db_url: DbOption = None,
                       actor: As = SELF) -> None:
    """BCS 5 steps 2–3: start HTCondor on a drained worker, labelled for a pool (HTCondor administrator)."""
    with _procedure(spec_path, live, twin, at_hours, db_url, actor) as broker:
        _done(broker, broker.start_htcondor(actor, node, pool, reason=reason))


def return_node_cmd(node: Annotated[str, typer.Argument(help="A worker drained or running HTCondor.")],
                    reason: Reason, live: Live = False, twin: Twin = None,
                    at_hours: AtHours = 0.0, spec_path: SpecOption = None, db_url: DbOption = None,
                    actor: As = SELF) -> None:
    """Reverse of BCS 5: stop HTCondor on the node and give it back to Kubernetes (needs both administrator roles)."""
    with _procedure(spec_path, live, twin, at_hours, db_url, actor) as broker:
        _done(broker, broker.return_node(actor, node, reason=reason))


def drain_startd_cmd(startd: Annotated[str, typer.Argument(help="Startd to stop matching new jobs.")],
                     reason: Reason,
                     vacate_after: Annotated[float | None, typer.Option(
                         "--vacate-after", min=0, max=MAX_SECONDS,
                         help="Evict what still runs after this many seconds.")] = None,
                     live: Live = False, twin: Twin = None, at_hours: AtHours = 0.0,
                     spec_path: SpecOption = None, db_url: DbOption = None, actor: As = SELF) -> None:
    """Drain a startd: running jobs finish (or are vacated after --vacate-after); no new ones start."""
    with _procedure(spec_path, live, twin, at_hours, db_url, actor) as broker:
        _done(broker, broker.drain_startd(actor, startd, reason=reason, vacate_after=vacate_after))


# --- the observing schedule the broker pre-warms for (docs/broker.md, "Observing schedule") ---------------

schedule_app = typer.Typer(help="The observing schedule the broker pre-warms for: next_visit-style visits pushed "
                                "from a file (twilight decides where no schedule covers).", no_args_is_help=True)
broker_app.add_typer(schedule_app, name="schedule")


def read_schedule(path: Path) -> ObservingSchedule:
    """A schedule file: YAML or JSON, a mapping with ``visits`` or a list of next_visit messages; every problem
    named with the file and the field."""
    data, _ = document.parse(document.read_text(path), str(path))
    return parse_schedule(data, str(path))


@schedule_app.command("push")
def schedule_push_cmd(file: Annotated[Path, typer.Argument(help="YAML or JSON: `visits:` of next_visit messages "
                                                           "(groupId, startTime in TAI Unix seconds, duration, "
                                                           "nimages, instrument, detectors).")],
                      reason: Reason, spec_path: SpecOption = None, db_url: DbOption = None,
                      actor: As = SELF) -> None:
    """Make FILE the observing schedule in force (HTCondor administrator); journaled. An empty `visits: []`
    hands the pre-warm back to twilight."""
    schedule = read_schedule(file)
    with enclave(spec_path, db_url) as services:
        done = services.schedules.push(actor, schedule, reason=reason)
    console.print(f"observing schedule {done.digest[:19]}… in force: {_span(done.schedule)}; journal entry "
                  f"{done.journal_seq}")
    if done.dropped:
        console.print("dropped, not this pool's instrument (broker.prewarm_instrument): "
                      + ", ".join(f"{n} visit(s) of {name or 'no instrument'}" for name, n in done.dropped.items()))


@schedule_app.command("show")
def schedule_show_cmd(spec_path: SpecOption = None, db_url: DbOption = None, actor: As = SELF,
                      output: Output = OutputFormat.TABLE) -> None:
    """The observing schedule in force (journal readers)."""
    with enclave(spec_path, db_url) as services:
        shown = services.schedules.show(actor)
    if output != OutputFormat.TABLE:
        emit(shown, output)
        return
    if shown is None:
        console.print("no observing schedule was pushed: twilight decides the pre-warm")
        return
    console.print(f"pushed by {shown.pushed_by} at {shown.pushed_at:%Y-%m-%d %H:%M:%S}Z ({shown.reason}); "
                  f"{shown.digest[:19]}…; {_span(shown.schedule)}")
    table = Table(title=f"{len(shown.schedule.visits)} visit(s)")
    for col in ("groupId", "start (UTC)", "duration s", "nimages", "instrument", "detectors"):
        table.add_column(col, justify="left" if col in ("groupId", "start (UTC)", "instrument") else "right")
    for v in shown.schedule.visits:
        table.add_row(v.groupId, stamp(v.start), f"{v.duration:g}", str(v.nimages), v.instrument, str(v.detectors))
    console.print(table)


def _span(s: ObservingSchedule) -> str:
    until = s.known_until()
    span = (f"complete from {stamp(s.complete_from) if s.complete_from is not None else 'the push'} to "
            f"{stamp(until) if until is not None else '—'}")
    if not s.visits:
        return f"no visits ({span}: twilight decides)"
    return f"{len(s.visits)} visits {stamp(s.visits[0].start)} … {stamp(s.visits[-1].readout)}, {span}"


BATCH_COMMANDS: dict[str, Callable[..., None]] = {
    "move": move_cmd, "add-pods": add_pods_cmd, "delete-pods": delete_pods_cmd, "drain-node": drain_node_cmd,
    "start-htcondor": start_htcondor_cmd, "return-node": return_node_cmd, "drain-startd": drain_startd_cmd,
}


def register(app: typer.Typer, render: typer.Typer) -> None:
    app.add_typer(broker_app, name="broker")
    for name, fn in BATCH_COMMANDS.items():
        batch_app.command(name)(fn)
