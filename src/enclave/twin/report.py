"""The run report: ``metrics.json`` and ``report.html`` with matplotlib plots embedded as PNG.

Plots: capacity and busy cores per pool over time, queue depth per pool, the prompt latency
distribution against the deadline, and notebooks running/pending. One report may hold several runs
(``enclave twin compare``): one section of plots per run and a side-by-side table first.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from enclave.outdir import output_dir
from enclave.twin.sim import Sim  # noqa: E402

ROWS: list[tuple[str, tuple[str, ...], str]] = [
    ("prompt visits within deadline", ("prompt", "visits_within_deadline"), "share"),
    ("prompt jobs within deadline", ("prompt", "jobs_within_deadline"), "share"),
    ("prompt visit latency p50 s", ("prompt", "visit_latency_s", "p50"), "s"),
    ("prompt visit latency p95 s", ("prompt", "visit_latency_s", "p95"), "s"),
    ("prompt visit latency p99 s", ("prompt", "visit_latency_s", "p99"), "s"),
    ("prompt wait p95 s", ("prompt", "wait_s", "p95"), "s"),
    ("prompt wait p99 s", ("prompt", "wait_s", "p99"), "s"),
    ("batch utilization", ("utilization", "batch"), "share"),
    ("batch memory utilization", ("utilization", "batch_memory"), "share"),
    ("enclave utilization", ("utilization", "enclave"), "share"),
    ("batch dominant-resource utilization", ("utilization", "batch_dominant"), "share"),
    ("enclave dominant-resource utilization", ("utilization", "enclave_dominant"), "share"),
    ("batch capacity, mean cores", ("utilization", "batch_capacity_mean_cores"), "n"),
    ("batch dominant-resource busy, mean cores", ("utilization", "batch_dominant_busy_mean_cores"), "n"),
    ("batch dominant-resource idle, mean cores", ("utilization", "batch_dominant_idle_mean_cores"), "n"),
    ("  of it on prompt's own slots", ("pools", "prompt", "dominant_idle_mean_cores"), "n"),
    ("  of it on DRP's own slots", ("pools", "drp", "dominant_idle_mean_cores"), "n"),
    ("DRP jobs per hour", ("drp", "jobs_per_hour"), "n"),
    ("DRP core-hours", ("drp", "core_hours"), "n"),
    ("user jobs finished", ("pools", "user", "finished"), "n"),
    ("notebook spawns refused", ("notebooks", "refused"), "n"),
    ("notebook spawn wait p95 s", ("notebooks", "spawn_wait_s", "p95"), "s"),
    ("notebooks evicted", ("notebooks", "evicted"), "n"),
    ("node moves (actions)", ("moves", "total"), "n"),
    ("node downtime, node-hours", ("moves", "downtime_node_hours"), "n"),
    ("node moves per night", ("moves", "per_night"), "n"),
    ("jobs evicted", ("moves", "evicted_jobs"), "n"),
    # Every eviction's lost work, preemption and the broker's relabels and drains alike (issue 15's churn).
    ("evicted core-hours", ("moves", "wasted_core_hours"), "n"),
    ("user wait p50 s", ("pools", "user", "wait_s", "p50"), "s"),
    ("memory kills (over the request)", ("memory", "oom_kills"), "n"),
    ("memory retries, larger request", ("memory", "retries"), "n"),
    ("jobs held for memory", ("memory", "held"), "n"),
    ("core-hours lost to memory kills", ("memory", "wasted_core_hours"), "n"),
]


def get(m: dict[str, Any], path: tuple[str, ...]) -> Any:
    cur: Any = m
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


def fmt(value: Any, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "share":
        return f"{100 * float(value):.2f}%"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def bounds_row(metrics: dict[str, Any]) -> dict[str, str]:
    """The clairvoyant column: the bound where one exists for a row."""
    b = metrics["bounds"]
    lat = b["prompt_visit_latency_lower_s"]
    return {
        "prompt visits within deadline": fmt(b["prompt_visits_within_deadline_upper"], "share") + " (upper)",
        "prompt visit latency p50 s": fmt(lat["p50"], "s") + " (lower)",
        "prompt visit latency p95 s": fmt(lat["p95"], "s") + " (lower)",
        "prompt visit latency p99 s": fmt(lat["p99"], "s") + " (lower)",
        "prompt wait p95 s": "0 (lower)", "prompt wait p99 s": "0 (lower)",
        "enclave utilization": fmt(b["utilization_upper_all_cores"], "share") + " (upper)",
        "batch utilization": fmt(metrics["utilization"]["batch_upper"], "share") + " (upper, first run's capacity)",
        "batch dominant-resource utilization": fmt(metrics["utilization"].get("batch_dominant_upper"), "share")
        + " (upper, first run's capacity and reused claims)",
        "enclave dominant-resource utilization": fmt(b.get("dominant_upper_all_cores"), "share") + " (upper)",
    }


def timing_row(metrics: dict[str, Any]) -> dict[str, str]:
    """The clairvoyant bound under the scenario's HTCondor timing (``twin.timing_bound``): negotiation cycles,
    claim reuse, the start throttle and start-up, with unlimited slots."""
    b = metrics["bounds"]
    lat = b.get("prompt_visit_latency_timing_lower_s")
    if lat is None:
        return {}
    return {"prompt visits within deadline": fmt(b["prompt_visits_within_deadline_timing_upper"], "share"),
            **{f"prompt visit latency {q} s": fmt(lat[q], "s") for q in ("p50", "p95", "p99")}}


def table(runs: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["metric"] + [f"{m['policy']} · {m['layout']['batch']}" + (
        f"/{m['layout']['pod_cores'] or 'node'}" if m["layout"]["batch"] == "pods" else "") for m in runs]
    header += ["clairvoyant bound", "bound under HTCondor timing"]
    bound = bounds_row(runs[0])
    timed = timing_row(runs[0])
    rows = [[label] + [fmt(get(m, path), unit) for m in runs] + [bound.get(label, ""), timed.get(label, "")]
            for label, path, unit in ROWS]
    return header, rows


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plots(sim: Sim) -> list[tuple[str, str]]:
    samples = sim.samples
    hours = np.array([s.t / 3600 for s in samples])
    out: list[tuple[str, str]] = []
    labels = sorted({k for s in samples for k in s.capacity})
    fig, ax = plt.subplots(figsize=(9, 3.4))
    for p in labels:
        cap = [s.capacity.get(p, 0) for s in samples]
        line = ax.step(hours, cap, where="post", label=f"{p} capacity")
        if p in sim.pools:
            ax.step(hours, [s.busy.get(p, 0) for s in samples], where="post", linestyle=":",
                    color=line[0].get_color(), label=f"{p} busy")
    if labels == ["shared"]:
        for p in sim.pools:
            ax.step(hours, [s.busy.get(p, 0) for s in samples], where="post", linestyle=":", label=f"{p} busy")
    ax.set_xlabel("hours since start")
    ax.set_ylabel("cores")
    ax.set_title("HTCondor capacity (solid) and busy cores (dotted) per pool")
    ax.legend(fontsize=7, ncol=4)
    out.append(("Capacity per pool", _png(fig)))

    fig, ax = plt.subplots(figsize=(9, 3.0))
    for p in sim.pools:
        ax.step(hours, [s.idle.get(p, 0) for s in samples], where="post", label=p)
    ax.set_yscale("symlog")
    ax.set_xlabel("hours since start")
    ax.set_ylabel("idle jobs")
    ax.set_title("Queue depth per pool")
    ax.legend(fontsize=7)
    out.append(("Queue depth", _png(fig)))

    lat = np.asarray(sim.visit_latency, dtype=float)
    lat = lat[~np.isnan(lat)]
    if lat.size:
        fig, ax = plt.subplots(figsize=(9, 3.0))
        ax.hist(lat, bins=60, color="#4c72b0", label="visit (last detector)")
        lb = np.asarray(sim.visit_min_latency, dtype=float)
        ax.hist(lb, bins=60, histtype="step", color="k", label="clairvoyant lower bound")
        deadline = sim.sc.prompt.deadline_s if sim.sc.prompt is not None else 60.0
        ax.axvline(deadline, color="r", linestyle="--", label=f"deadline {deadline:g} s")
        ax.set_xlabel("seconds after readout")
        ax.set_ylabel("visits")
        ax.set_title("Prompt processing: visit completion latency")
        ax.legend(fontsize=7)
        out.append(("Latency distribution", _png(fig)))

    fig, ax = plt.subplots(figsize=(9, 2.8))
    ax.plot(hours, [s.notebooks for s in samples], label="notebooks running")
    ax.plot(hours, [s.notebook_pending for s in samples], label="spawns pending")
    ax.set_xlabel("hours since start")
    ax.set_title("Notebooks")
    ax.legend(fontsize=7)
    out.append(("Notebooks", _png(fig)))
    return out


def write(out_dir: Path, sims: list[Sim], runs: list[dict[str, Any]]) -> Path:
    """Write metrics.json (one run: its metrics; several: a list) and report.html; return the HTML path."""
    output_dir(out_dir)
    payload: Any = runs[0] if len(runs) == 1 else runs
    (out_dir / "metrics.json").write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    header, rows = table(runs)
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>enclave twin — {esc(runs[0]['scenario'])}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%}</style></head><body>",
        f"<h1>Twin report: {esc(runs[0]['scenario'])}</h1>",
        f"<p>{esc(sims[0].sc.description)} Seed {runs[0]['seed']}, {runs[0]['simulated_hours']} simulated hours, "
        f"spec cluster <code>{esc(sims[0].spec.cluster.name)}</code>.</p>",
        "<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>",
    ]
    parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows]
    parts.append("</table>")
    for sim, m in zip(sims, runs, strict=True):
        parts.append(f"<h2>{esc(m['policy'])} · {esc(m['layout']['batch'])}</h2>")
        jobs = m["jobs"]
        parts.append(f"<p>Jobs: {jobs['submitted']:,} submitted = {jobs['finished']:,} finished + "
                     f"{jobs['running']:,} running + {jobs['queued']:,} queued + {jobs['held']:,} held + "
                     f"{jobs['ended']:,} ended by account transitions.</p>")
        for title, png in plots(sim):
            parts.append(f"<h3>{esc(title)}</h3><img alt='{esc(title)}' src='data:image/png;base64,{png}'>")
    parts.append("</body></html>")
    path = out_dir / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
