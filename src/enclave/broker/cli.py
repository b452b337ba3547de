"""`enclave broker plan|run` and the BCS procedures by hand: `enclave batch move|add-pods|delete-pods|
drain-node|start-htcondor|return-node|drain-startd`.

Every command works on the twin (the embedded default, a fresh simulated enclave of the spec loaded with a
scenario) or, with ``--live``, on Kubernetes + HTCondor. Changes are role-checked against the acting
account and journaled in the enclave database, the same way whichever backend carries them out.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from enclave.broker.decide import BROKER_ACTOR, Plan, plan
from enclave.broker.execute import Executor, Outcome, cycle, target
from enclave.broker.model import (
    Action,
    Backend,
    DeletePods,
    DeployPods,
    DrainNode,
    DrainStartd,
    Observed,
    Relabel,
    ReturnNode,
    StartHTCondor,
)
from enclave.db import Database
from enclave.errors import InputError, NotFound, Problem
from enclave.spec.cli import SpecOption, load_spec_option
from enclave.spec.models import EnclaveSpec

broker_app = typer.Typer(help="The capacity broker: move capacity between pools and between Kubernetes and "
                              "HTCondor (seed §7.1, BCS 1–5).", no_args_is_help=True)
console = Console(highlight=False, width=140)

DEFAULT_SCENARIO = "one-night"
Live = Annotated[bool, typer.Option("--live", help="Act on the real Kubernetes cluster and HTCondor pool.")]
Scenario = Annotated[str, typer.Option("--scenario", help="Twin scenario (name or file) when not --live.")]
AtHours = Annotated[float, typer.Option("--at-hours", min=0, help="Run the twin this long first (hours).")]
As = Annotated[str, typer.Option("--as", envvar="ENCLAVE_AS", help="The acting account (or $ENCLAVE_AS).")]
Reason = Annotated[str, typer.Option("--reason", help="Why: every change is documented (seed §8).")]
DbUrl = Annotated[str | None, typer.Option("--db", help="Database URL for role checks and the journal "
                                                        "(default $ENCLAVE_DB or ~/.enclave/enclave.db).")]


class _Twin:
    """A fresh twin of the spec with a scenario, run ``hours`` forward before anything is decided."""

    def __init__(self, spec: EnclaveSpec, scenario: str, hours: float) -> None:
        from enclave.twin.backend import TwinBackend

        # "static" lays capacity out by guaranteed share and makes no moves of its own: the broker drives.
        self.twin = TwinBackend.from_scenario(scenario, spec=spec, policy="static")
        if hours:
            self.twin.advance(hours * 3600)


def _backend(spec: EnclaveSpec, live: bool, scenario: str, hours: float) -> tuple[Backend, Any]:
    if live:
        from enclave.cluster.live import LiveBackend

        return LiveBackend.connect(spec), None
    t = _Twin(spec, scenario, hours)
    return t.twin, t.twin


@contextmanager
def _database(url: str | None) -> Iterator[Database]:
    from enclave.db.cli import open_database

    db = open_database(url)
    try:
        yield db
    finally:
        db.dispose()


@contextmanager
def _twin_database(spec: EnclaveSpec) -> Iterator[Database]:
    """A simulated enclave gets its own accounts and journal: an admin and the broker's service account."""
    from enclave.api.wiring import ensure_accounts

    with tempfile.TemporaryDirectory(prefix="enclave-twin-") as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'twin.db'}")
        db.migrate()
        ensure_accounts(db, spec)
        try:
            yield db
        finally:
            db.dispose()


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_plan(p: Plan, observed: Observed, out: Console) -> None:
    out.print(f"[bold]broker plan[/] at {_when(observed.now)} — {p.standalone_cores} standalone batch cores; "
              + "; ".join(p.notes or ["no observing night (no site in the spec)"]))
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
    from enclave.broker.model import StartdKind

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
             at_hours: AtHours = 0.0,
             as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False) -> None:
    """What the broker would do now and why (changes nothing)."""
    spec = load_spec_option(spec_path)
    backend, _ = _backend(spec, live, scenario, at_hours)
    observed = backend.observe()
    p = plan(spec, observed)
    if as_json:
        typer.echo(json.dumps({"now": observed.now, "capped": p.capped, "notes": p.notes,
                               "pools": {n: vars(ps) for n, ps in p.pools.items()},
                               "actions": [{"kind": a.kind, **vars(a)} for a in p.actions]}, default=list, indent=2))
        return
    render_plan(p, observed, console)


@broker_app.command("run")
def run_cmd(spec_path: SpecOption = None, live: Live = False, scenario: Scenario = DEFAULT_SCENARIO,
            hours: Annotated[float, typer.Option("--hours", min=0, help="Twin: simulated hours to run.")] = 24.0,
            cycles: Annotated[int | None, typer.Option("--cycles", min=1, help="Stop after this many cycles.")]
            = None, actor: Annotated[str, typer.Option("--as", help="Account the broker acts as.")] = BROKER_ACTOR,
            db_url: DbUrl = None) -> None:
    """The broker loop: observe → decide → act every broker.cycle_seconds, each action journaled.

    On the twin (default) the loop runs in simulated time with a throwaway journal unless --db is given;
    with --live it runs in real time against the cluster and journals in the enclave database."""
    import time

    spec = load_spec_option(spec_path)
    backend, twin = _backend(spec, live, scenario, 0.0)
    step = spec.broker.cycle_seconds
    total = cycles if cycles is not None else (None if live else max(1, int(hours * 3600 // step)))
    db_ctx = _database(db_url) if live or db_url else _twin_database(spec)
    applied: dict[str, int] = {}
    with db_ctx as db:
        executor = Executor(backend, db)
        n = 0
        while total is None or n < total:
            if live:
                backend.progress()  # type: ignore[attr-defined]
            report = cycle(spec, executor, actor)
            stamp = _when(backend.observe().now) if any(o.applied for o in report.outcomes) else ""
            for o in report.outcomes:
                if o.applied:
                    applied[o.action.kind] = applied.get(o.action.kind, 0) + 1
                    console.print(f"{stamp}  {o.action.kind:<14} "
                                  f"{target(o.action):<28} {o.action.reason}", overflow="ellipsis", no_wrap=True)
            n += 1
            if live:
                time.sleep(step)
            else:
                twin.advance(step)
                if twin.sim.now >= twin.sim.horizon:
                    break
    summary = ", ".join(f"{k} {v}" for k, v in sorted(applied.items())) or "no actions"
    console.print(f"[bold]{n} cycle(s)[/]: {summary}")
    if twin is not None and twin.sim.now >= twin.sim.horizon:  # the figures cover the whole scenario
        _twin_figures(twin)


def _twin_figures(twin: Any) -> None:
    from enclave.twin.metrics import compute

    m = compute(twin.sim)
    prompt, util = m.get("prompt") or {}, m.get("utilization") or {}
    within = prompt.get("visits_within_deadline")
    console.print(f"twin: {prompt.get('visits', 0)} visits, "
                  + (f"{within:.2%} within {prompt.get('deadline_s', 60):g} s" if within is not None else "no visits")
                  + f"; batch utilization {util.get('batch', 0) or 0:.2%}, enclave {util.get('enclave', 0) or 0:.2%}")


# --- BCS procedures by hand, under `enclave batch` ------------------------------------------------------


def _manual(spec: EnclaveSpec, action: Action, live: bool, scenario: str, at_hours: float,
            db_url: str | None) -> Outcome:
    backend, _ = _backend(spec, live, scenario, at_hours)
    with _database(db_url) as db:
        outcome = Executor(backend, db).apply(action)
    where = "live" if live else f"twin ({scenario})"
    if outcome.applied:
        console.print(f"{action.kind} {target(action)} done on {where}; journal entry {outcome.seq}")
    else:
        console.print(f"{action.kind} {target(action)}: already in effect on {where}; nothing to do")
    return outcome


def _pool(spec: EnclaveSpec, pool: str, option: str) -> None:
    if pool not in spec.pools:
        raise InputError([Problem(option, f"pool {pool!r} is not defined", f"use one of: {', '.join(spec.pools)}")])


def _startd(o: Observed, name: str) -> Any:
    for s in o.startds:
        if s.name == name:
            return s
    raise NotFound(f"no HTCondor startd named {name!r}", where=name,
                   fix="batch-only nodes, drained nodes and worker pods are startds; `enclave broker plan` lists "
                       "the pools")


Twin = Annotated[str, typer.Option("--scenario", help="Twin scenario to try it on when not --live.")]


def move_cmd(node: Annotated[str, typer.Argument(help="Startd: a batch-only node, drained node or worker pod.")],
             to: Annotated[str, typer.Option("--to", help="The pool it should serve.")], actor: As, reason: Reason,
             live: Live = False, scenario: Twin = DEFAULT_SCENARIO, at_hours: AtHours = 0.0,
             spec_path: SpecOption = None, db_url: DbUrl = None) -> None:
    """BCS 1/2: relabel a startd's pool (HTCondor administrator)."""
    spec = load_spec_option(spec_path)
    _pool(spec, to, "--to")
    backend, _ = _backend(spec, live, scenario, at_hours)
    s = _startd(backend.observe(), node)
    grace = spec.pools[s.pool].grace_seconds if s.pool in spec.pools and \
        spec.pools[s.pool].take_away.value == "vacate" else None
    action = Relabel(actor=actor, reason=reason, startd=node, from_pool=s.pool, to_pool=to,
                     vacate_after_seconds=grace)
    _apply_on(spec, backend, action, live, scenario, db_url)


def _apply_on(spec: EnclaveSpec, backend: Backend, action: Action, live: bool, scenario: str,
              db_url: str | None) -> None:
    with _database(db_url) as db:
        outcome = Executor(backend, db).apply(action)
    where = "live" if live else f"twin ({scenario})"
    if outcome.applied:
        console.print(f"{action.kind} {target(action)} done on {where}; journal entry {outcome.seq}")
    else:
        console.print(f"{action.kind} {target(action)}: already in effect on {where}; nothing to do")


def add_pods_cmd(node: Annotated[str, typer.Argument(help="Kubernetes worker node.")],
                 pool: Annotated[str, typer.Option("--pool", help="Pool the pods serve.")], actor: As, reason: Reason,
                 count: Annotated[int, typer.Option("--count", min=1, max=1024)] = 1,
                 cores: Annotated[int | None, typer.Option("--cores", min=1, help="Default broker.pod_cores.")] = None,
                 memory_mib: Annotated[int | None, typer.Option("--memory-mib", min=1)] = None,
                 live: Live = False, scenario: Twin = DEFAULT_SCENARIO, at_hours: AtHours = 0.0,
                 spec_path: SpecOption = None, db_url: DbUrl = None) -> None:
    """BCS 4: deploy HTCondor worker pods on a worker, labelled for a pool (Kubernetes service administrator)."""
    from enclave.broker.naming import pod_names

    spec = load_spec_option(spec_path)
    _pool(spec, pool, "--pool")
    backend, _ = _backend(spec, live, scenario, at_hours)
    existing = {s.name for s in backend.observe().startds}
    action = DeployPods(actor=actor, reason=reason, node=node, pool=pool, pods=pod_names(node, count, existing),
                        cores_per_pod=cores or spec.broker.pod_cores,
                        memory_mib_per_pod=memory_mib or spec.broker.pod_memory_mib)
    _apply_on(spec, backend, action, live, scenario, db_url)


def delete_pods_cmd(pods: Annotated[list[str], typer.Argument(help="Worker pod names.")], actor: As, reason: Reason,
                    live: Live = False, scenario: Twin = DEFAULT_SCENARIO, at_hours: AtHours = 0.0,
                    spec_path: SpecOption = None, db_url: DbUrl = None) -> None:
    """BCS 3: delete HTCondor worker pods (drain them first with drain-startd so jobs finish)."""
    spec = load_spec_option(spec_path)
    _manual(spec, DeletePods(actor=actor, reason=reason, pods=tuple(pods)), live, scenario, at_hours, db_url)


def drain_node_cmd(node: Annotated[str, typer.Argument(help="Kubernetes worker node.")], actor: As, reason: Reason,
                   live: Live = False, scenario: Twin = DEFAULT_SCENARIO, at_hours: AtHours = 0.0,
                   spec_path: SpecOption = None, db_url: DbUrl = None) -> None:
    """BCS 5 step 1: cordon a worker and evict its pods (Kubernetes service administrator)."""
    spec = load_spec_option(spec_path)
    _manual(spec, DrainNode(actor=actor, reason=reason, node=node), live, scenario, at_hours, db_url)


def start_htcondor_cmd(node: Annotated[str, typer.Argument(help="A drained Kubernetes worker.")],
                       pool: Annotated[str, typer.Option("--pool", help="Pool it serves.")], actor: As,
                       reason: Reason, live: Live = False, scenario: Twin = DEFAULT_SCENARIO,
                       at_hours: AtHours = 0.0, spec_path: SpecOption = None, db_url: DbUrl = None) -> None:
    """BCS 5 steps 2–3: start HTCondor on a drained worker, labelled for a pool (HTCondor administrator)."""
    spec = load_spec_option(spec_path)
    _pool(spec, pool, "--pool")
    _manual(spec, StartHTCondor(actor=actor, reason=reason, node=node, pool=pool), live, scenario, at_hours, db_url)


def return_node_cmd(node: Annotated[str, typer.Argument(help="A worker drained or running HTCondor.")],
                    actor: As, reason: Reason, live: Live = False, scenario: Twin = DEFAULT_SCENARIO,
                    at_hours: AtHours = 0.0, spec_path: SpecOption = None, db_url: DbUrl = None) -> None:
    """Reverse of BCS 5: stop HTCondor on the node and uncordon it (needs both administrator roles)."""
    spec = load_spec_option(spec_path)
    _manual(spec, ReturnNode(actor=actor, reason=reason, node=node), live, scenario, at_hours, db_url)


def drain_startd_cmd(startd: Annotated[str, typer.Argument(help="Startd to stop matching new jobs.")],
                     actor: As, reason: Reason,
                     vacate_after: Annotated[float | None, typer.Option(
                         "--vacate-after", min=0, help="Evict what still runs after this many seconds.")] = None,
                     live: Live = False, scenario: Twin = DEFAULT_SCENARIO, at_hours: AtHours = 0.0,
                     spec_path: SpecOption = None, db_url: DbUrl = None) -> None:
    """Drain a startd: running jobs finish (or are vacated after --vacate-after); no new ones start."""
    spec = load_spec_option(spec_path)
    _manual(spec, DrainStartd(actor=actor, reason=reason, startd=startd, vacate_after_seconds=vacate_after),
            live, scenario, at_hours, db_url)


BATCH_COMMANDS: dict[str, Callable[..., None]] = {
    "move": move_cmd, "add-pods": add_pods_cmd, "delete-pods": delete_pods_cmd, "drain-node": drain_node_cmd,
    "start-htcondor": start_htcondor_cmd, "return-node": return_node_cmd, "drain-startd": drain_startd_cmd,
}


def register(app: typer.Typer, render: typer.Typer) -> None:
    app.add_typer(broker_app, name="broker")
    try:
        from enclave.batch.cli import batch_app
    except ImportError:  # the batch concept is not installed: offer the procedures under `broker`
        batch_app = broker_app
    for name, fn in BATCH_COMMANDS.items():
        batch_app.command(name)(fn)
