"""`enclave twin run|compare|scenarios`: simulate the enclave under LSST-like load."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from enclave.cli.options import Output, OutputFormat, emit, services
from enclave.errors import InputError, Problem, SpecError
from enclave.outdir import check_output_dir
from enclave.spec.load import load
from enclave.twin import report
from enclave.twin.run import simulate
from enclave.twin.scenario import SCENARIOS, load_scenario
from enclave.twin.sim import Sim

twin_app = typer.Typer(help="The digital twin: simulate the enclave under LSST-like load.", no_args_is_help=True)
console = Console(highlight=False, markup=False, width=140)

ScenarioArg = Annotated[str, typer.Argument(help="Scenario file, or a shipped one by name (twin scenarios).")]
POLICY_NAMES = ("static, quotas, quotas-mem, quotas-preempt, quotas-preempt-mem, quotas-reserved, cohorts, broker, "
                "service")
PolicyOpt = Annotated[str, typer.Option("--policy", "-p", help=POLICY_NAMES)]
# --out-dir, not -o: -o is every read command's output format (enclave.cli.options.Output); --out still works.
OutOpt = Annotated[Path, typer.Option("--out-dir", "--out", help="Directory for report.html and metrics.json.")]
SpecOpt = Annotated[Path | None, typer.Option("--spec", help="Enclave spec to use instead of the scenario's.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Override the scenario's seed.")]


def _run(scenario: str, policy: str, spec: Path | None, seed: int | None,
         progress: Progress) -> tuple[Sim, dict[str, Any], float]:
    loaded = load_scenario(scenario, spec=load(spec) if spec is not None else None)
    task = progress.add_task(f"{loaded.scenario.name} · {policy}", total=loaded.scenario.duration_s)
    update: Callable[[float], None] = lambda t: progress.update(task, completed=t)  # noqa: E731
    start = time.perf_counter()
    sim, metrics = simulate(loaded, policy, seed=seed, progress=update)
    progress.update(task, completed=loaded.scenario.duration_s)
    return sim, metrics, time.perf_counter() - start


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                    TextColumn("{task.percentage:>3.0f}% sim time"), TimeElapsedColumn(), console=console,
                    transient=False)


def _print_table(runs: list[dict[str, Any]]) -> None:
    header, rows = report.table(runs)
    t = Table(title=f"Twin: {', '.join(sorted({r['scenario'] for r in runs}))}")
    for i, h in enumerate(header):
        t.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*row)
    console.print(t)


@twin_app.command("run")
def run_cmd(scenario: ScenarioArg, out: OutOpt, policy: PolicyOpt = "static", spec: SpecOpt = None,
            seed: SeedOpt = None) -> None:
    """Simulate one scenario under one policy; write report.html and metrics.json to --out."""
    check_output_dir(out)  # before the simulation, not after it
    with _progress() as progress:
        sim, metrics, wall = _run(scenario, policy, spec, seed, progress)
    path = report.write(out, [sim], [metrics])
    _print_table([metrics])
    console.print(f"{metrics['events']:,} events in {wall:.2f} s wall; report: {path}")


@twin_app.command("compare")
def compare_cmd(scenarios: Annotated[list[str], typer.Argument(help="One or more scenarios (names or files).")],
                out: OutOpt,
                policy: Annotated[list[str], typer.Option("--policy", "-p", help=f"Repeat: {POLICY_NAMES}.")],
                spec: SpecOpt = None, seed: SeedOpt = None) -> None:
    """Run every scenario under every --policy; print a side-by-side table and write one report."""
    if not policy:
        raise InputError([Problem("--policy", "no policy given", "repeat --policy, e.g. -p static -p quotas")])
    check_output_dir(out)
    sims: list[Sim] = []
    runs: list[dict[str, Any]] = []
    skipped: list[str] = []
    with _progress() as progress:
        for sc in scenarios:
            for p in policy:
                try:
                    sim, metrics, _ = _run(sc, p, spec, seed, progress)
                except SpecError as err:
                    # The broker refuses specs the other policies run (no batch-only nodes): one policy that cannot
                    # run on one scenario does not void the others' figures.
                    if p != "broker" or any(x.where != "cluster.node_groups" for x in err.problems):
                        raise
                    skipped.append(f"{sc} · {p}: not run — " + "; ".join(f"{x.where}: {x.what}" for x in err.problems))
                    continue
                sims.append(sim)
                runs.append(metrics)
    if not runs:
        raise InputError([Problem("--policy", "no scenario could run under any policy given", s) for s in skipped])
    path = report.write(out, sims, runs)
    _print_table(runs)
    for line in skipped:
        console.print(Text(line, style="yellow"))
    console.print(f"report: {path}")


@twin_app.command("sweep")
def sweep_cmd(scenario: ScenarioArg, out: OutOpt,
              param: Annotated[list[str], typer.Option("--param", help="NAME=V1,V2,… (repeat for a grid), e.g. "
                                                       "negotiator_interval=5,10,20,60, or a broker setting "
                                                       "of the spec: spec.broker.need_percentile=0.2,0.6.")],
              policy: Annotated[list[str], typer.Option("--policy", "-p", help="Repeat: static, quotas, broker, "
                                                        "service.")],
              spec: SpecOpt = None, seed: SeedOpt = None,
              jobs: Annotated[int, typer.Option("--jobs", "-j", help="Runs at once (processes); default 1.")] = 1,
              ) -> None:
    """Run a scenario over a grid of parameter values under each --policy; write sweep.md, .csv, .json and .svg."""
    check_output_dir(out)  # before the grid's simulations, not after them
    with services(spec) as factory, Progress(TextColumn("sweep {task.completed}/{task.total}"), BarColumn(),
                                             TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("sweep", total=None)
        result = factory.twin_runs.sweep(
            scenario, param, policy, out, use_spec=spec is not None, seed=seed, jobs=jobs,
            progress=lambda done, total: progress.update(task, completed=done, total=total))
    t = Table(title=f"Sweep of {result.scenario}")
    header = [*result.params, "policy", "visits ≤ deadline", "visit p95 s", "DRP jobs/h", "dominant util",
              "moves/night", "evicted core-h"]
    for i, h in enumerate(header):
        t.add_column(h, justify="left" if i <= len(result.params) else "right")
    for r in result.rows:
        t.add_row(*(str(r[n]) for n in result.params), r["policy"],
                  *(report.fmt(r[c], u) for c, u in (("visits_within_deadline", "share"), ("visit_p95_s", "s"),
                                                     ("drp_jobs_per_hour", ""), ("batch_dominant_util", "share"),
                                                     ("moves_per_night", ""), ("evicted_core_hours", ""))))
    console.print(t)
    console.print("wrote " + ", ".join(result.files))


@twin_app.command("scenarios")
def scenarios_cmd(output: Output = OutputFormat.TABLE) -> None:
    """List the shipped scenarios."""
    if output != OutputFormat.TABLE:
        emit([{"name": p.stem, "description": load_scenario(str(p)).scenario.description}
              for p in sorted(SCENARIOS.glob("*.yaml"))], output)
        return
    t = Table(title=f"Scenarios in {SCENARIOS}")
    t.add_column("name", justify="left")
    t.add_column("description", justify="left")
    for path in sorted(SCENARIOS.glob("*.yaml")):
        loaded = load_scenario(str(path))
        t.add_row(path.stem, loaded.scenario.description)
    console.print(t)


def register(app: typer.Typer, render: typer.Typer) -> None:
    app.add_typer(twin_app, name="twin")
