"""Metrics of a twin run, and the clairvoyant bounds of its scenario.

Everything here is computed from the simulator's records after the run, so the hot loop only keeps
counters. ``metrics.json`` holds only simulated quantities (never wall time), so the same scenario and
seed give byte-identical files.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from enclave.spec.models import NodeRole
from enclave.twin.scenario import Matching
from enclave.twin.sim import DONE, ENDED, HELD, RUNNING, Sim
from enclave.twin.timing_bound import Timing, visit_latency_bounds
from enclave.twin.workloads import AutoCluster


def _pct(values: list[float] | np.ndarray, qs: tuple[int, ...] = (50, 95, 99)) -> dict[str, float | None]:
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return {f"p{q}": None for q in qs}
    return {f"p{q}": round(float(np.percentile(arr, q)), 3) for q in qs}


def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd)


def compute(sim: Sim) -> dict[str, Any]:
    sc = sim.sc
    horizon = sim.horizon
    running_core_s = sim.running_core_s()
    out: dict[str, Any] = {"scenario": sc.name, "policy": sim.policy.name, "seed": sc.seed,
                           "layout": {"batch": sc.layout.batch.value, "pod_cores": sc.layout.pod_cores},
                           "simulated_hours": _r(horizon / 3600, 3), "events": sim.q.processed}

    deadline = sc.prompt.deadline_s if sc.prompt is not None else 60.0
    visits = np.asarray(sim.visit_latency, dtype=float)
    jobs = np.asarray(sim.prompt_latency, dtype=float)
    waits = sim.waits.get("prompt", [])
    n_prompt = sim.submitted.get("prompt", 0)
    if sim.divert is not None:  # prompt served outside HTCondor (service_prompt): one request per detector
        n_prompt = len(visits) * sim.spec_detectors()
    finished_visits = int(np.count_nonzero(~np.isnan(visits)))
    out["prompt"] = {
        "visits": len(visits),
        "visits_finished": finished_visits,
        "wait_s": _pct(waits),
        "visit_latency_s": _pct(visits),
        "job_latency_s": _pct(jobs),
        "deadline_s": deadline,
        # A visit that never finished missed its deadline.
        "visits_within_deadline": _r(float(np.count_nonzero(visits <= deadline)) / len(visits))
        if len(visits) else None,
        # Per detector job (OTR1 counts alerts): jobs not yet finished count as late.
        "jobs_within_deadline": _r(float(np.count_nonzero(jobs <= deadline)) / n_prompt) if n_prompt else None,
    }

    pools: dict[str, Any] = {}
    total_busy = 0.0
    n_running = sim.run_jobs
    dom_pool = sim.dominant_pool_core_s()
    for p in sim.pools:
        busy = sim.core_s[p] + running_core_s[p]
        total_busy += busy
        cap = sim.cap_core_s.get(p, 0.0)
        dom = dom_pool.get(p, 0.0)
        pools[p] = {
            "submitted": sim.submitted[p], "finished": sim.done[p], "running": n_running.get(p, 0),
            "queued": sim.idle[p],
            "busy_core_hours": _r(busy / 3600, 2), "mean_busy_cores": _r(busy / horizon, 2),
            "labelled_core_hours": _r(cap / 3600, 2),
            "utilization": _r(busy / cap) if cap > 0 else None,
            # Of the slots labelled for this pool (none where one pool is shared): what a dedicated pool leaves
            # idle is where a policy's dominant-resource share goes (docs/twin.md, "Where the idle cores are").
            "dominant": _r(dom / cap) if cap > 0 else None,
            "dominant_idle_mean_cores": _r((cap - dom) / horizon, 2) if cap > 0 else None,
            "wait_s": _pct(sim.waits[p]),
        }
    out["pools"] = pools
    batch_cap = sum(sim.cap_core_s.values()) + sim.shared_cap_core_s
    all_cores = sum(n.cores for n in sim.nodes.values())
    nb_core_s = _notebook_core_s(sim)
    dom_s = sim.dominant_core_s()
    out["utilization"] = {
        "batch": _r(total_busy / batch_cap) if batch_cap > 0 else None,
        # No policy could keep the capacity it offered busier than all the work submitted would.
        "batch_upper": _r(min(1.0, sim.demand_core_s / batch_cap)) if batch_cap > 0 else None,
        "batch_capacity_mean_cores": _r(batch_cap / horizon, 2),
        # Memory held by running jobs over slot memory: DRP is memory-bound (8-32 GiB per core), so its
        # slots can be full while cores sit idle. A job on a reused, larger claim holds the claim's memory.
        "batch_memory": _r((sum(sim.mem_s.values()) + sum(sim.running_core_s(memory=True).values())
                            + _larger_claims(sim, lambda a: a.memory_mib)) / sim.mem_cap_s)
        if sim.mem_cap_s > 0 else None,
        "enclave": _r((total_busy + nb_core_s) / (all_cores * horizon)),
        # As HTCondor sees a partitionable slot: used up once ANY resource is claimed (docs/twin.md).
        "batch_dominant": _r(dom_s / batch_cap) if batch_cap > 0 else None,
        # The work itself, apart from the capacity it is divided by: a policy that borrows capacity can keep more
        # of the batch busy at a lower share of a larger capacity (issue 15's one-week comparison).
        "batch_dominant_busy_mean_cores": _r(dom_s / horizon, 2),
        "batch_dominant_idle_mean_cores": _r((batch_cap - dom_s) / horizon, 2),
        "batch_dominant_upper": _r(min(1.0, dominant_demand_core_s(sim) / batch_cap)) if batch_cap > 0 else None,
        "enclave_dominant": _r((dom_s + sim.nb_dom_s) / (all_cores * horizon)),
        "notebook_mean_cores": _r(nb_core_s / horizon, 2),
    }
    drp_hours = horizon / 3600
    out["drp"] = {"jobs_finished": sim.done.get("drp", 0),
                  "jobs_per_hour": _r(sim.done.get("drp", 0) / drp_hours, 2),
                  "core_hours": _r((sim.core_s.get("drp", 0.0)) / 3600, 2)}
    c = sim.counters
    out["notebooks"] = {"requested": c.nb_requested, "placed": c.nb_placed, "refused": c.nb_refused,
                        "pending_at_end": len(sim.nb_pending), "evicted": c.nb_evicted,
                        "refused_share": _r(c.nb_refused / c.nb_requested) if c.nb_requested else 0.0,
                        "spawn_wait_s": _pct(c.nb_waits),
                        "peak_concurrent": sim.nb_peak,
                        "sizes_capped_by_spec": sim.wl.sessions.capped}
    # Churn (issue 15): actions per 24 h of simulated time, one night each, so a week compares with a night.
    out["moves"] = {"actions": dict(sorted(c.moves.items())), "total": sum(c.moves.values()),
                    "per_night": _r(sum(c.moves.values()) / max(1.0, horizon / 86400), 1),
                    "downtime_node_hours": _r(c.downtime_node_s / 3600, 3),
                    "failed_node_hours": _r(c.failed_node_s / 3600, 3), "failures": c.failures,
                    "evicted_jobs": c.evicted_jobs, "wasted_core_hours": _r(c.wasted_core_s / 3600, 3),
                    "pods_unschedulable": c.pods_unschedulable, "preempted_jobs": c.preempted_jobs,
                    "preempted_core_hours": _r(c.preempted_core_s / 3600, 3)}
    extra = getattr(sim.policy, "metrics", None)
    if extra is not None:  # a policy's own figures (service_prompt: its Knative workers)
        out.update(extra(sim))
    rejected = sim.policy.rejected
    if rejected is not None:
        out["moves"]["rejected_actions"] = len(rejected)
    out["memory"] = {"policy": sim.sc.memory.policy.value, "oom_kills": c.oom_kills, "retries": c.oom_retries,
                     "held": c.oom_held, "wasted_core_hours": _r(c.oom_wasted_core_s / 3600, 3),
                     "limit_mib": sim.mem_limit, "by_kind": _oom_by_kind(sim)}
    out["jobs"] = conservation(sim)
    if c.jobs_removed or c.jobs_held or c.nb_stopped:  # an account transition reached the twin (issue 21)
        out["account_transitions"] = {"jobs_removed": c.jobs_removed, "jobs_held": c.jobs_held,
                                      "notebooks_stopped": c.nb_stopped}
    out["unrunnable_queued"] = unrunnable(sim)
    out["bounds"] = bounds(sim)
    out["matchmaking"] = {"classad_evaluations": sim.matcher.evaluations, "ads_from": sim.matcher.source,
                          "autoclusters": len(sim.acs), "model": sim.htc.matching.value,
                          "negotiation_cycles": sim.cycles,
                          "mean_cycle_s": _r(sim.cycle_s / sim.cycles, 3) if sim.cycles else None,
                          "claims_reused": sim.reuses, "schedd_reschedules": sim.schedd_reschedules}
    return out


def _mib_core_worker(sim: Sim) -> float:
    """Cores per MiB of the leanest worker group: a notebook's memory counted in cores at most that dearly."""
    ratios = [g.cores / (g.memory_gib * 1024) for g in sim.spec.cluster.node_groups
              if g.role == NodeRole.WORKER and g.memory_gib > 0]
    return max(ratios, default=0.0)


def _notebook_core_s(sim: Sim) -> float:
    sim.nb_integrate()
    return sim.nb_core_s


def min_mib_per_core(sim: Sim) -> float:
    """The least memory per core of any slot shape the spec and scenario allow (nodes, pods of the static
    layout, the broker's pods): the shape on which a memory-heavy job claims the largest share of a slot."""
    shapes: list[float] = []
    lay = sim.sc.layout
    for g in sim.spec.cluster.node_groups:
        if g.role == NodeRole.CONTROL_PLANE or g.cores <= 0:
            continue
        shapes.append(g.memory_gib * 1024 / g.cores)
        if g.role == NodeRole.WORKER and g.cores > lay.services_cpu_per_node:
            shapes.append((g.memory_gib - lay.services_memory_gib_per_node) * 1024
                          / (g.cores - lay.services_cpu_per_node))
    b = sim.spec.broker
    shapes.append(b.pod_memory_mib / b.pod_cores)
    return min(shapes)


def dominant_demand_core_s(sim: Sim) -> float:
    """All work submitted (clipped to the horizon) in dominant-resource cores on the leanest slot shape, plus
    what reused claims held beyond their jobs' requests.

    A job of c cores and m MiB on a slot of C cores and M MiB raises that slot's max(cores share, memory
    share) x C by at most max(c, m x C / M) <= max(c, m / min(M / C)); summing over jobs bounds the slots'
    dominant-resource core-seconds of running jobs from above, whatever the policy (not the start-up each start
    holds a slot for, nor work lost to evictions and run again). A job that takes over a larger claim holds the
    claim's dynamic slot, not its own request (schedd.cpp ``FindRunnableJobForClaim``; ``Sim._successor``): that
    difference, which the schedd's choices and not the work decide, is added over the running time the run
    measured."""
    r = min_mib_per_core(sim)

    def weight(a: AutoCluster) -> float:
        return a.cpus * max(1.0, a.memory_mib / (a.cpus * r))

    work = sum(work * weight(a) / a.cpus for a, work in zip(sim.acs, sim.demand_core_s_ac, strict=True))
    return work + _larger_claims(sim, weight)


def _larger_claims(sim: Sim, size: Callable[[AutoCluster], float]) -> float:
    """Σ (size of the claim's dynamic slot − size of the job's request) x seconds, over jobs on larger claims."""
    acs = sim.acs
    return sum((size(acs[slot]) - size(acs[ac])) * secs for (slot, ac), secs in sim.larger_claim_s().items())


def unrunnable(sim: Sim) -> dict[str, int]:
    """Queued jobs, by kind, that no slot existing at the end could ever run (START, cores or memory)."""
    sigs = {s.sig for s in sim.startds.values()}
    out: dict[str, int] = {}
    for ac, q in enumerate(sim.queues):
        if not q:
            continue
        a = sim.acs[ac]
        if not any(sig[2] >= a.cpus and sig[3] >= a.memory_mib and sim.matcher.matches(ac, sig) for sig in sigs):
            out[a.kind] = out.get(a.kind, 0) + sum(b.n - b.pos for b in q)
    return dict(sorted(out.items()))


def conservation(sim: Sim) -> dict[str, int]:
    """submitted = finished + running + queued + held + ended (held: killed over their memory limit, awaiting a
    release or held for good; ended: removed or held by their owner's account transition, ``Sim.end_jobs``)."""
    queued = sum(b.n - b.pos for q in sim.queues for b in q)
    state = sim.state
    return {"submitted": len(state), "finished": state.count(DONE), "running": state.count(RUNNING),
            "queued": queued, "held": state.count(HELD), "ended": state.count(ENDED)}


def _oom_by_kind(sim: Sim) -> dict[str, dict[str, int]]:
    """Per job kind: jobs killed at least once over their memory limit, and those held for good."""
    out: dict[str, dict[str, int]] = {}
    for jid, (first_ac, kills) in sorted(sim.kills.items()):
        row = out.setdefault(sim.acs[first_ac].kind, {"jobs_killed": 0, "kills": 0, "held": 0})
        row["jobs_killed"] += 1
        row["kills"] += kills
        row["held"] += int(jid in sim.held_jobs)
    return out


def bounds(sim: Sim) -> dict[str, Any]:
    """Clairvoyant bounds: no policy can beat them on this scenario and seed, but for the bound under HTCondor
    timing, which a visit may beat when the twin's cycles run at other times than the bound's (docs/twin.md).

    - Prompt latency: a visit cannot finish before its slowest detector job, even if every job starts
      at readout (zero wait, unlimited cores) — so these percentiles bound every policy's from below.
    - Utilization: the enclave can at most run all work submitted (each job clipped to the horizon) on
      every non-control-plane core, so busy / (cores x horizon) bounds batch utilization from above.
    """
    deadline = sim.sc.prompt.deadline_s if sim.sc.prompt is not None else 60.0
    lat = np.asarray(sim.visit_min_latency, dtype=float)
    cores = sum(n.cores for n in sim.nodes.values())
    batch_cores = sum(n.cores for n in sim.nodes.values() if n.role == NodeRole.BATCH_ONLY)
    sess = sim.wl.sessions
    nb_demand = sum(c * min(d, sim.horizon - t) for t, c, d in zip(sess.t, sess.cpu, sess.duration, strict=True))
    ub_all = min(1.0, (sim.demand_core_s + nb_demand) / (cores * sim.horizon)) if cores else 0.0
    ub_batch = min(1.0, sim.demand_core_s / (batch_cores * sim.horizon)) if batch_cores else None
    dom = dominant_demand_core_s(sim)
    nb_dom = sum(max(c, m * _mib_core_worker(sim)) * min(d, sim.horizon - t)
                 for t, c, m, d in zip(sess.t, sess.cpu, sess.memory_mib, sess.duration, strict=True))
    timed = timing_lower(sim)
    return {
        "prompt_visit_latency_lower_s": _pct(lat),
        "prompt_visits_within_deadline_upper": _r(float(np.count_nonzero(lat <= deadline)) / len(lat))
        if len(lat) else None,
        # The same with the negotiator's cycles, claims, start throttle and start-up (twin.timing_bound).
        "prompt_visit_latency_timing_lower_s": _pct(timed) if timed is not None else None,
        "prompt_visits_within_deadline_timing_upper": _r(float(np.count_nonzero(timed <= deadline)) / len(timed))
        if timed is not None and len(timed) else None,
        "batch_work_core_hours": _r(sim.demand_core_s / 3600, 2),
        "notebook_work_core_hours": _r(nb_demand / 3600, 2),
        "utilization_upper_all_cores": _r(ub_all),
        "utilization_upper_batch_only_cores": None if ub_batch is None or math.isnan(ub_batch) else _r(ub_batch),
        "dominant_work_core_hours": _r(dom / 3600, 2),
        "dominant_upper_all_cores": _r(min(1.0, (dom + nb_dom) / (cores * sim.horizon))) if cores else None,
        "dominant_upper_batch_only_cores": _r(min(1.0, dom / (batch_cores * sim.horizon))) if batch_cores
        else None,
    }


def timing_lower(sim: Sim) -> np.ndarray | None:
    """Each visit's latency bound under the scenario's HTCondor timing (``twin.timing_bound``), by visit number;
    none when no negotiator paces prompt (``matching: instant``, or prompt served outside HTCondor)."""
    if sim.htc.matching != Matching.NEGOTIATOR or sim.divert is not None:
        return None
    # Each visit's runtimes in its jobs' id order, the schedd's queue order (``Sim._arrive``): the bound gives
    # freed claims to the first of them, as the schedd does (``timing_bound``).
    visits = sorted((a.t, a.visit, a.runtimes) for a in sim.wl.arrivals if a.visit >= 0)
    lat = visit_latency_bounds([(t, rts) for t, _, rts in visits], Timing.of(sim.htc))
    out = np.full(len(sim.visit_min_latency), np.nan)
    for (_, v, _), x in zip(visits, lat, strict=True):
        out[v] = x
    return out
