"""Sensitivity sweeps: one scenario run over a grid of parameter values and policies (issue 14 item 7).

``enclave twin sweep one-night --param negotiator_interval=5,10,20,60 -p static -p quotas`` runs every
combination and writes ``sweep.md``, ``sweep.csv``, ``sweep.json`` and ``sweep.svg`` (share of visits within
the deadline over the first parameter, one line per policy and combination of the others), so an answer from
the twin comes with the range of settings over which it holds.

A parameter is one of the names in ``PARAMS`` (each a field of the scenario, so the scenario's own validation
checks every value), any scenario field by its dotted path (``htcondor.claim_worklife_s``, ``prompt.detectors``),
or one of the broker's settings in the spec as ``spec.broker.<field>`` (``spec.broker.need_percentile``), held to
the spec's own checks: the trade a setting makes (visits against utilization and churn) read off one table.
Only the broker's part of the spec is swept: other parts (pools, nodes) also shape the scenario's derived HTCondor
settings, so a changed copy of them needs a spec file of its own (``--spec``).
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from enclave.charts import value_chart
from enclave.errors import InputError, Problem
from enclave.outdir import output_dir
from enclave.spec.checks import check
from enclave.spec.models import BrokerPolicy, EnclaveSpec
from enclave.twin.run import simulate
from enclave.twin.scenario import Loaded, Scenario, load_scenario, scenario_problems

PARAMS: dict[str, tuple[str, str]] = {
    "negotiator_interval": ("htcondor.negotiator_interval_s", "NEGOTIATOR_INTERVAL, s"),
    "negotiator_cycle_delay": ("htcondor.negotiator_cycle_delay_s", "NEGOTIATOR_CYCLE_DELAY, s"),
    "negotiator_min_interval": ("htcondor.negotiator_min_interval_s", "NEGOTIATOR_MIN_INTERVAL, s"),
    "claim_worklife": ("htcondor.claim_worklife_s", "CLAIM_WORKLIFE, s (0: one job per claim)"),
    "schedd_interval": ("htcondor.schedd_interval_s", "SCHEDD_INTERVAL, s"),
    "job_start_count": ("htcondor.job_start_count", "JOB_START_COUNT"),
    "job_start_delay": ("htcondor.job_start_delay_s", "JOB_START_DELAY, s"),
    "job_startup": ("htcondor.job_startup_s", "shadow and starter start-up, s (estimate)"),
    "reschedule_on_submit": ("htcondor.reschedule_on_submit", "schedd-idle | always | never"),
    "dedicated_schedds": ("htcondor.dedicated_schedds", "pools with a schedd of their own, '+'-joined; none"),
    "matching": ("htcondor.matching", "negotiator | instant"),
    "consumption_policy": ("htcondor.consumption_policy", "CONSUMPTION_POLICY on the startds: true | false"),
    "pod_cores": ("layout.pod_cores", "cores per HTCondor pod (0: whole node)"),
    "pod_startup": ("layout.pod_startup_s", "container start to first ad, s"),
    "pull_gbit_s": ("kubernetes.pull_gbit_s", "image pull bandwidth, Gbit/s"),
    "seed": ("seed", "random seed"),
}
"""Short names for the parameters an answer's sensitivity is usually asked about: name → (scenario path, meaning)."""

COLUMNS = ("visits_within_deadline", "visit_p50_s", "visit_p95_s", "drp_jobs_per_hour", "batch_dominant_util",
           "notebooks_refused", "moves", "moves_per_night", "evicted_core_hours", "user_wait_p50_s")


SPEC_PREFIX = "spec.broker."
"""Names under it address the spec's ``broker`` section, not the scenario."""


@dataclass(frozen=True)
class Axis:
    name: str
    path: tuple[str, ...]
    """Within the scenario, or within the spec for a ``spec.broker.`` name (``in_spec``)."""
    values: tuple[Any, ...]
    texts: tuple[str, ...]
    in_spec: bool = False


def _convert(text: str, path: tuple[str, ...], in_spec: bool = False) -> Any:
    """A value as YAML would give it for this field: a number if it reads as one, a list for pool lists, and for
    the broker's optional settings (``prewarm_cores``) ``none`` as unset."""
    if path[-1] == "dedicated_schedds":
        return [] if text in ("", "none") else text.split("+")
    if in_spec and text in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        child = data.get(key)
        if not isinstance(child, dict):
            raise KeyError(key)
        data = child
    if path[-1] not in data:
        raise KeyError(path[-1])
    data[path[-1]] = value


def apply(loaded: Loaded, changes: Sequence[tuple[Axis, int]], where: str = "--param") -> Loaded:
    """The scenario (and spec) with each axis set to its ``index``-th value, validated as their files would be."""
    text = ", ".join(f"{a.name}={a.texts[i]}" for a, i in changes)
    spec = _changed_spec(loaded.spec, [(a, i) for a, i in changes if a.in_spec], f"{where} {text}")
    data = loaded.scenario.model_dump()
    for axis, i in changes:
        if axis.in_spec:
            continue
        try:
            _set(data, axis.path, axis.values[i])
        except KeyError:
            raise InputError([Problem(f"{where} {axis.name}", f"the scenario has no {'.'.join(axis.path)} "
                                      "(is that part of the load switched off?)",
                                      "sweep a part the scenario has, or give a scenario that has it")]) from None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        raise InputError([Problem(f"{where} {text}", f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}",
                                  "give values the scenario reference allows (docs/twin.md)")
                          for e in err.errors()]) from None
    # What a scenario file with these values would be refused for (review, stop 48: a sweep point ran without it).
    problems = scenario_problems(scenario, spec, f"{where} {text}")
    if problems:
        raise InputError(problems)
    return Loaded(scenario=scenario, spec=spec, source=loaded.source)


def _changed_spec(spec: EnclaveSpec, changes: Sequence[tuple[Axis, int]], where: str) -> EnclaveSpec:
    """``spec`` with the broker settings of ``changes``, held to the model and to the spec's own checks
    (``spec.checks``), as a spec file with those values would be."""
    if not changes:
        return spec
    data = spec.model_dump()
    for axis, i in changes:
        _set(data, axis.path, axis.values[i])
    try:
        changed = EnclaveSpec.model_validate(data)
    except ValidationError as err:
        raise InputError([Problem(where, f"spec {'.'.join(str(x) for x in e['loc'])}: {e['msg']}",
                                  "give values the spec reference allows (docs/spec.md, the broker section)")
                          for e in err.errors()]) from None
    problems = [Problem(where, f"spec {'.'.join(str(x) for x in loc)}: {what}", fix)
                for loc, what, fix in check(changed)]
    if problems:
        raise InputError(problems)
    return changed


def parse_params(texts: Sequence[str]) -> list[Axis]:
    """``name=v1,v2,…`` options as axes; a clear error for a malformed option or an unknown parameter."""
    axes: list[Axis] = []
    for text in texts:
        name, sep, values = text.partition("=")
        name = name.strip()
        if not sep or not name or not values.strip():
            raise InputError([Problem(f"--param {text}", "not NAME=VALUE[,VALUE…]",
                                      "e.g. --param negotiator_interval=5,10,20,60")])
        in_spec = name.startswith(SPEC_PREFIX)
        if in_spec:
            path = _broker_path(name)
        elif name in PARAMS:
            path = tuple(PARAMS[name][0].split("."))
        elif name.startswith("spec."):
            raise InputError([Problem(f"--param {name}", "only the broker's settings in the spec are swept",
                                      f"give {SPEC_PREFIX}<field>; for other spec changes give a spec file "
                                      "with --spec")])
        elif "." in name or name in Scenario.model_fields:
            path = tuple(name.split("."))
        else:
            raise InputError([Problem(f"--param {name}", "unknown parameter",
                                      f"use one of: {', '.join(PARAMS)}; or a scenario field by its dotted path "
                                      "(e.g. htcondor.claim_worklife_s)")])
        if any(a.name == name for a in axes):
            raise InputError([Problem(f"--param {name}", "given twice", "give each parameter once, values "
                                      "comma-separated")])
        items = tuple(v.strip() for v in values.split(","))
        axes.append(Axis(name, path, tuple(_convert(v, path, in_spec) for v in items), items, in_spec))
    if not axes:
        raise InputError([Problem("--param", "no parameter to sweep", "e.g. --param negotiator_interval=5,10,20,60")])
    return axes


def _broker_path(name: str) -> tuple[str, ...]:
    field = name.removeprefix(SPEC_PREFIX)
    if field not in BrokerPolicy.model_fields:
        raise InputError([Problem(f"--param {name}", f"the spec's broker has no setting '{field}'",
                                  f"use one of: {', '.join(BrokerPolicy.model_fields)}")])
    return ("broker", field)


def _row(metrics: dict[str, Any]) -> dict[str, Any]:
    prompt = metrics.get("prompt") or {}
    latency = prompt.get("visit_latency_s") or {}
    drp = metrics.get("drp") or {}
    moves = metrics.get("moves") or {}
    return {"visits_within_deadline": prompt.get("visits_within_deadline"),
            "visit_p50_s": latency.get("p50"), "visit_p95_s": latency.get("p95"),
            "drp_jobs_per_hour": drp.get("jobs_per_hour"),
            "batch_dominant_util": (metrics.get("utilization") or {}).get("batch_dominant"),
            "notebooks_refused": (metrics.get("notebooks") or {}).get("refused"),
            "moves": moves.get("total"), "moves_per_night": moves.get("per_night"),
            "evicted_core_hours": moves.get("wasted_core_hours"),
            "user_wait_p50_s": ((metrics.get("pools") or {}).get("user", {}).get("wait_s") or {}).get("p50")}


def _one(job: tuple[Loaded, str]) -> dict[str, Any]:
    loaded, policy = job
    _, metrics = simulate(loaded, policy)
    return _row(metrics)


@dataclass(frozen=True)
class SweepResult:
    scenario: str
    params: list[str]
    policies: list[str]
    rows: list[dict[str, Any]]
    """One per grid point: each parameter's value (as given), ``policy``, then ``COLUMNS``."""
    files: list[str]


def run(scenario: str | Loaded, params: Sequence[str], policies: Sequence[str], out_dir: Path, *,
        spec: EnclaveSpec | None = None, seed: int | None = None, jobs: int = 1,
        progress: Callable[[int, int], None] | None = None) -> SweepResult:
    """Run the grid (every combination of the parameters' values, under every policy) and write its table and plot."""
    if not policies:
        raise InputError([Problem("--policy", "no policy given", "repeat --policy, e.g. -p static -p broker")])
    if jobs < 1:
        raise InputError([Problem("--jobs", f"{jobs} is not a number of processes", "give 1 or more")])
    loaded = load_scenario(scenario, spec=spec) if isinstance(scenario, str) else scenario
    axes = parse_params([*params, *([f"seed={seed}"] if seed is not None else [])])
    points = list(itertools.product(*(range(len(a.values)) for a in axes)))
    grid = [(apply(loaded, list(zip(axes, p, strict=True))), policy) for p in points for policy in policies]
    results: list[dict[str, Any]] = []
    if jobs == 1:
        for i, item in enumerate(grid):
            results.append(_one(item))
            if progress is not None:
                progress(i + 1, len(grid))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for i, result in enumerate(pool.map(_one, grid)):
                results.append(result)
                if progress is not None:
                    progress(i + 1, len(grid))
    rows = []
    for (p, policy), result in zip(((p, q) for p in points for q in policies), results, strict=True):
        rows.append({**{a.name: a.texts[i] for a, i in zip(axes, p, strict=True)}, "policy": policy, **result})
    names = [a.name for a in axes]
    files = write(out_dir, loaded.scenario.name, names, rows, deadline=_deadline(loaded))
    return SweepResult(loaded.scenario.name, names, list(policies), rows, files)


def _deadline(loaded: Loaded) -> float:
    return loaded.scenario.prompt.deadline_s if loaded.scenario.prompt is not None else 60.0


def _fmt(value: Any, column: str) -> str:
    if value is None:
        return "–"
    if column == "visits_within_deadline":  # two places: 99.99 % is not 100 %, and 98 % is the line (OTR1)
        return f"{100 * value:.2f} %"
    if column == "batch_dominant_util":
        return f"{100 * value:.2f} %"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


def markdown(scenario: str, names: Sequence[str], rows: Sequence[dict[str, Any]], deadline: float) -> str:
    header = [*names, "policy", f"visits ≤ {deadline:g} s", "visit p50 s", "visit p95 s", "DRP jobs/h",
              "dominant util", "notebooks refused", "moves", "moves/night", "evicted core-h", "user wait p50 s"]
    lines = [f"# Sweep of {scenario}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [str(r[n]) for n in names] + [r["policy"]] + [_fmt(r[c], c) for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_STYLE = ("<style>.tick{font:10px sans-serif;fill:#444}.chart-title{font:bold 12px sans-serif}"
          ".legend{font:11px sans-serif}</style>")


def plot(scenario: str, names: Sequence[str], rows: Sequence[dict[str, Any]], deadline: float) -> str:
    """Share of visits within the deadline over the first parameter; a line per policy × other parameters.
    A categorical first parameter (e.g. reschedule_on_submit) is spaced evenly in the order given."""
    first = names[0]
    xs_text = list(dict.fromkeys(r[first] for r in rows))
    numeric = all(isinstance(_convert(x, ("x",)), int | float) for x in xs_text)
    xs = [float(_convert(x, ("x",))) for x in xs_text] if numeric else [float(i) for i in range(len(xs_text))]
    series: dict[str, list[float | None]] = {}
    for r in rows:
        label = " · ".join([r["policy"], *(f"{n}={r[n]}" for n in names[1:])])
        line = series.setdefault(label, [None] * len(xs_text))
        share = r["visits_within_deadline"]
        line[xs_text.index(r[first])] = None if share is None else 100 * share
    svg = value_chart(f"{scenario}: visits within {deadline:g} s", xs, series, x_label=first, x_ticks=xs_text,
                      unit="%", top=100.0, objective=(98.0, "98 % (OTR1)"))
    return svg.replace(">", ">" + _STYLE, 1)


def write(out_dir: Path, scenario: str, names: Sequence[str], rows: Sequence[dict[str, Any]], *,
          deadline: float) -> list[str]:
    output_dir(out_dir)
    paths = {name: out_dir / f"sweep.{name}" for name in ("md", "csv", "json", "svg")}
    paths["md"].write_text(markdown(scenario, names, rows, deadline), encoding="utf-8")
    with paths["csv"].open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=[*names, "policy", *COLUMNS])
        w.writeheader()
        w.writerows(rows)
    paths["json"].write_text(json.dumps({"scenario": scenario, "params": list(names), "deadline_s": deadline,
                                         "rows": list(rows)}, indent=1), encoding="utf-8")
    paths["svg"].write_text(plot(scenario, names, rows, deadline), encoding="utf-8")
    return [str(p) for p in paths.values()]
