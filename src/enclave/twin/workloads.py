"""Workload generators: pure functions from a scenario and a seed to arrival schedules.

Each workload draws from its own random stream (spawned from the scenario seed), so switching one
workload on or off never changes the draws of another, and the same seed gives the same schedule.
Arrivals are batched: one block per visit (all its detectors), per DRP submit interval, per user burst.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from enclave.spec.models import EnclaveSpec, NodeRole
from enclave.twin.scenario import Runtime, Scenario

DAY = 86_400.0


@dataclass(frozen=True)
class AutoCluster:
    """Jobs that are alike for matchmaking (HTCondor autocluster): same pool, request and kind."""

    index: int
    pool: str
    cpus: int
    memory_mib: int
    kind: str


@dataclass(frozen=True)
class Arrival:
    t: float
    ac: int
    runtimes: list[float]
    visit: int = -1
    """Visit number for prompt jobs (all detectors of a visit arrive together at readout)."""


@dataclass(frozen=True)
class Sessions:
    """Notebook spawn requests, sorted by time; sizes already capped by the spec's bounds."""

    t: list[float]
    cpu: list[float]
    memory_mib: list[int]
    duration: list[float]
    capped: int
    """How many requests asked for more than the spec's bounds allow and were capped to them."""


@dataclass(frozen=True)
class Failure:
    t: float
    node: str
    repair_s: float


@dataclass(frozen=True)
class Workload:
    acs: list[AutoCluster]
    arrivals: list[Arrival]
    sessions: Sessions
    failures: list[Failure]
    visit_readout: list[float]

    @property
    def jobs(self) -> int:
        return sum(len(a.runtimes) for a in self.arrivals)


def draw(rng: np.random.Generator, rt: Runtime, n: int) -> np.ndarray:
    if rt.dist == "fixed":
        return np.full(n, rt.mean)
    if rt.dist == "triangular":
        if rt.low == rt.high:
            return np.full(n, rt.low)
        return rng.triangular(rt.low, rt.mode, rt.high, n)
    # Lognormal with the given arithmetic mean: mu = ln(mean) - sigma^2 / 2.
    mu = np.log(rt.mean) - rt.sigma**2 / 2
    return np.maximum(1.0, rng.lognormal(mu, rt.sigma, n))


def build(sc: Scenario, spec: EnclaveSpec) -> Workload:
    seeds = np.random.SeedSequence(sc.seed).spawn(6)
    r_prompt, r_drp, r_user, r_nb, r_fail, _ = (np.random.Generator(np.random.PCG64(s)) for s in seeds)
    acs: list[AutoCluster] = []
    arrivals: list[Arrival] = []
    readout: list[float] = []
    horizon = sc.duration_s

    def ac(pool: str, cpus: int, mem_gib: float, kind: str) -> int:
        acs.append(AutoCluster(len(acs), pool, cpus, int(mem_gib * 1024), kind))
        return len(acs) - 1

    if sc.prompt is not None and sc.prompt.visits_per_night > 0:
        p = sc.prompt
        a = ac("prompt", p.cpus, p.memory_gib, "prompt")
        for night in range(p.nights):
            start = night * DAY + p.night_start_h * 3600.0
            end = start + p.night_hours * 3600.0
            gaps = r_prompt.uniform(p.visit_gap_s[0], p.visit_gap_s[1], p.visits_per_night)
            # Readout ends one gap after the night starts (the first exposure), then one gap per visit.
            times = start + np.cumsum(gaps)
            times = times[(times <= end) & (times < horizon)]
            rts = draw(r_prompt, p.runtime, len(times) * p.detectors).reshape(len(times), p.detectors)
            for t, row in zip(times.tolist(), rts.tolist(), strict=True):
                arrivals.append(Arrival(t, a, row, visit=len(readout)))
                readout.append(t)

    if sc.drp is not None:
        d = sc.drp
        weights = np.array([task.weight for task in d.mix])
        weights = weights / weights.sum()
        task_acs = [ac("drp", 1, task.memory_gib, f"drp:{task.name}") for task in d.mix]
        blocks: list[tuple[float, int]] = []
        if d.backlog_jobs:
            blocks.append((0.0, d.backlog_jobs))
        if d.jobs_per_hour > 0:
            n_blocks = int(horizon // d.block_s)
            counts = r_drp.poisson(d.jobs_per_hour * d.block_s / 3600.0, n_blocks)
            blocks += [((i + 1) * d.block_s, int(c)) for i, c in enumerate(counts) if c > 0]
        for t, n in blocks:
            split = r_drp.multinomial(n, weights)
            for task, a_idx, k in zip(d.mix, task_acs, split.tolist(), strict=True):
                if k:
                    arrivals.append(Arrival(t, a_idx, draw(r_drp, task.runtime, k).tolist()))

    if sc.user_batch is not None and sc.user_batch.bursts_per_day > 0 and sc.user_batch.jobs_per_burst > 0:
        u = sc.user_batch
        a = ac("user", u.cpus, u.memory_gib, "user")
        n = int(r_user.poisson(u.bursts_per_day * horizon / DAY))
        for t in sorted(r_user.uniform(0, horizon, n).tolist()):
            k = max(1, int(r_user.poisson(u.jobs_per_burst)))
            arrivals.append(Arrival(t, a, draw(r_user, u.runtime, k).tolist()))

    arrivals.sort(key=lambda x: (x.t, x.ac))
    return Workload(acs, arrivals, _sessions(sc, spec, r_nb), _failures(sc, spec, r_fail), readout)


def _sessions(sc: Scenario, spec: EnclaveSpec, rng: np.random.Generator) -> Sessions:
    nb = sc.notebooks
    if nb is None or nb.peak_concurrent == 0:
        return Sessions([], [], [], [], 0)
    # Non-homogeneous Poisson arrivals by thinning: the rate follows a daily cosine between the trough and
    # the peak; at the peak, arrivals x mean session length = peak concurrent sessions (Little's law).
    peak_rate = nb.peak_concurrent / nb.session_mean_s
    horizon = sc.duration_s
    n = int(rng.poisson(peak_rate * horizon))
    t = np.sort(rng.uniform(0, horizon, n))
    phase = 2 * np.pi * ((t / 3600.0 - nb.peak_hour) % 24.0) / 24.0
    level = nb.trough_fraction + (1 - nb.trough_fraction) * (1 + np.cos(phase)) / 2
    keep = rng.uniform(0, 1, n) < level
    t = t[keep]
    weights = np.array([c.weight for c in nb.sizes])
    choice = rng.choice(len(nb.sizes), size=len(t), p=weights / weights.sum())
    duration = np.maximum(60.0, rng.exponential(nb.session_mean_s, len(t)))
    b = spec.notebooks.bounds
    cpu_raw = np.array([c.cpu for c in nb.sizes])[choice]
    mem_raw = np.array([c.memory_gib * 1024 for c in nb.sizes])[choice]
    # The spec's bounds (seed §13.2–13.3) cap what a spawner may grant, whatever users would pick.
    cpu = np.clip(cpu_raw, b.min_cpu, b.max_cpu)
    mem = np.clip(mem_raw, b.min_memory_mib, b.max_memory_mib)
    capped = int(np.count_nonzero((cpu != cpu_raw) | (mem != mem_raw)))
    return Sessions(t.tolist(), cpu.tolist(), [int(m) for m in mem.tolist()], duration.tolist(), capped)


def _failures(sc: Scenario, spec: EnclaveSpec, rng: np.random.Generator) -> list[Failure]:
    f = sc.failures
    nodes = [n for n in spec.node_names() if spec.node_names(NodeRole.CONTROL_PLANE).count(n) == 0]
    out: list[Failure] = []
    if f.node_mtbf_days > 0 and nodes:
        rate = len(nodes) / (f.node_mtbf_days * DAY)
        k = int(rng.poisson(rate * sc.duration_s))
        for t in sorted(rng.uniform(0, sc.duration_s, k).tolist()):
            out.append(Failure(t, nodes[int(rng.integers(len(nodes)))], float(rng.exponential(f.repair_mean_h * 3600))))
    for storm in f.storms:
        pool = [n for n in nodes if storm.group is None or n.rsplit("-", 1)[0] == storm.group]
        picked = rng.choice(len(pool), size=min(storm.nodes, len(pool)), replace=False)
        for i in sorted(picked.tolist()):
            out.append(Failure(storm.at_h * 3600.0, pool[i], storm.repair_h * 3600.0))
    out.sort(key=lambda x: (x.t, x.node))
    return out
