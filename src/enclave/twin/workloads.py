"""Workload generators: pure functions from a scenario and a seed to arrival schedules.

Each workload draws from its own random stream (spawned from the scenario seed), so switching one
workload on or off never changes the draws of another, and the same seed gives the same schedule.
Arrivals are batched: one block per visit (all its detectors), per DRP submit interval, per user burst.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from enclave.spec.models import EnclaveSpec, NodeRole
from enclave.twin.scenario import MemoryUse, Prompt, Scenario, Site

DAY = 86_400.0
QUANTUM_MIB = 128
"""A dynamic slot's memory is the request rounded up to 128 MiB (MODIFY_REQUEST_EXPR_REQUESTMEMORY,
htcondor/htcondor src/condor_utils/param_info.in: default=quantize(RequestMemory,{128}))."""


def quantize_mib(mib: float) -> int:
    """HTCondor's quantize(RequestMemory, {128}): the request rounded up to a multiple of 128 MiB."""
    return int(math.ceil(mib / QUANTUM_MIB - 1e-9)) * QUANTUM_MIB


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
    over: dict[int, float] = field(default_factory=dict)
    """Job index within the block → its peak memory use (MiB), for the jobs whose peak exceeds the request
    (only those can ever be killed: a retry only raises the request)."""


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


class Dist(Protocol):
    """A runtime (``scenario.Runtime``) or memory-use (``scenario.MemoryUse``) distribution."""

    @property
    def dist(self) -> str: ...
    @property
    def low(self) -> float: ...
    @property
    def mode(self) -> float: ...
    @property
    def high(self) -> float: ...
    @property
    def mean(self) -> float: ...
    @property
    def sigma(self) -> float: ...


def draw(rng: np.random.Generator, rt: Dist, n: int, floor: float = 1.0) -> np.ndarray:
    if rt.dist == "fixed":
        return np.full(n, rt.mean)
    if rt.dist == "uniform":
        return rng.uniform(rt.low, rt.high, n)
    if rt.dist == "triangular":
        if rt.low == rt.high:
            return np.full(n, rt.low)
        return rng.triangular(rt.low, rt.mode, rt.high, n)
    # Lognormal with the given arithmetic mean: mu = ln(mean) - sigma^2 / 2.
    mu = np.log(rt.mean) - rt.sigma**2 / 2
    return np.maximum(floor, rng.lognormal(mu, rt.sigma, n))


def over_request(rng: np.random.Generator | None, use: MemoryUse | None, n: int, request_mib: int) -> dict[int, float]:
    """Peak memory use (MiB) of ``n`` jobs, kept only for those above ``request_mib`` (the ones a hard limit kills)."""
    if use is None or rng is None or n == 0:
        return {}
    peaks = draw(rng, use, n, floor=0.0) * 1024.0
    idx = np.flatnonzero(peaks > request_mib)
    return dict(zip(idx.tolist(), peaks[idx].tolist(), strict=True))


def twilight_h(site: Site, day_epoch: float, altitude_deg: float = -12.0) -> float:
    """Hours after ``day_epoch`` (a UTC instant) of the evening twilight at ``altitude_deg`` on that UTC day:
    the NOAA solar-position approximation (declination and equation of time from the fractional year,
    https://gml.noaa.gov/grad/solcalc/solareqns.PDF), good to a minute or two."""
    t = dt.datetime.fromtimestamp(day_epoch, tz=dt.UTC)
    g = 2 * math.pi / 365.0 * (t.timetuple().tm_yday - 1 + (t.hour - 12) / 24.0)
    eqtime = 229.18 * (0.000075 + 0.001868 * math.cos(g) - 0.032077 * math.sin(g) - 0.014615 * math.cos(2 * g)
                       - 0.040849 * math.sin(2 * g))
    decl = (0.006918 - 0.399912 * math.cos(g) + 0.070257 * math.sin(g) - 0.006758 * math.cos(2 * g)
            + 0.000907 * math.sin(2 * g) - 0.002697 * math.cos(3 * g) + 0.00148 * math.sin(3 * g))
    lat = math.radians(site.latitude)
    cos_h = (math.sin(math.radians(altitude_deg)) - math.sin(lat) * math.sin(decl)) / (math.cos(lat) * math.cos(decl))
    hour_angle = math.degrees(math.acos(max(-1.0, min(1.0, cos_h))))
    noon_utc_min = 720.0 - 4.0 * site.longitude - eqtime
    evening_utc_h = (noon_utc_min + 4.0 * hour_angle) / 60.0
    midnight = t.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    return (midnight + evening_utc_h * 3600.0 - day_epoch) / 3600.0 % 24.0


def build(sc: Scenario, spec: EnclaveSpec) -> Workload:
    seeds = np.random.SeedSequence(sc.seed).spawn(6)
    r_prompt, r_drp, r_user, r_nb, r_fail = (np.random.Generator(np.random.PCG64(s)) for s in seeds[:5])
    # Memory use has streams of its own (spawned from the sixth, once unused), so the runtimes, arrivals and
    # sessions of a scenario do not change when it gains a memory-use distribution.
    m_prompt, m_drp, m_user = (np.random.Generator(np.random.PCG64(s)) for s in seeds[5].spawn(3))
    acs: list[AutoCluster] = []
    arrivals: list[Arrival] = []
    readout: list[float] = []

    def ac(pool: str, cpus: int, mem_gib: float, kind: str) -> int:
        acs.append(AutoCluster(len(acs), pool, cpus, quantize_mib(mem_gib * 1024), kind))
        return len(acs) - 1

    if sc.prompt is not None and (sc.prompt.visits_per_night > 0 or _explicit(sc.prompt)):
        p = sc.prompt
        a = ac("prompt", p.cpus, p.memory_gib, "prompt")
        for times in _readouts(sc, r_prompt):
            # Runtimes are drawn night by night, right after the night's cadence (the stream's order).
            rts = draw(r_prompt, p.runtime, len(times) * p.detectors).reshape(len(times), p.detectors)
            for t, row in zip(times.tolist(), rts.tolist(), strict=True):
                over = over_request(m_prompt, p.memory_use, p.detectors, acs[a].memory_mib)
                arrivals.append(Arrival(t, a, row, visit=len(readout), over=over))
                readout.append(t)
    if sc.drp is not None:
        arrivals += _drp(sc, r_drp, m_drp, ac, acs)
    if sc.user_batch is not None and sc.user_batch.bursts_per_day > 0 and sc.user_batch.jobs_per_burst > 0:
        u = sc.user_batch
        a = ac("user", u.cpus, u.memory_gib, "user")
        n = int(r_user.poisson(u.bursts_per_day * sc.duration_s / DAY))
        for t in sorted(r_user.uniform(0, sc.duration_s, n).tolist()):
            k = max(1, int(r_user.poisson(u.jobs_per_burst)))
            arrivals.append(Arrival(t, a, draw(r_user, u.runtime, k).tolist(),
                                    over=over_request(m_user, u.memory_use, k, acs[a].memory_mib)))

    arrivals.sort(key=lambda x: (x.t, x.ac))
    return Workload(acs, arrivals, _sessions(sc, spec, r_nb), _failures(sc, spec, r_fail), readout)


def _explicit(p: Prompt) -> bool:
    return p.visits is not None and p.visits.times is not None


def _readouts(sc: Scenario, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Readout times, night by night: the schedule's own (``prompt.visits.times``, one batch), or per night a
    cadence of uniform gaps from the night's start (``night_start_h``, or the site's -12° twilight) to its end;
    none inside a weather gap (``prompt.visits.gaps``)."""
    p = sc.prompt
    assert p is not None
    horizon = sc.duration_s
    gaps = [(g.at_h * 3600.0, g.at_h * 3600.0 + g.minutes * 60.0) for g in (p.visits.gaps if p.visits else [])]

    def clear(times: np.ndarray) -> np.ndarray:
        keep = times < horizon
        for lo, hi in gaps:
            keep &= ~((times >= lo) & (times < hi))
        return times[keep]

    if p.visits is not None and p.visits.times is not None:
        yield clear(np.asarray(p.visits.times, dtype=float))
        return
    for night in range(p.nights):
        offset = (twilight_h(sc.site, sc.start_epoch + night * DAY) if p.night_start_h == "twilight"
                  else float(p.night_start_h))
        start = night * DAY + offset * 3600.0
        end = start + p.night_hours * 3600.0
        cadence = rng.uniform(p.visit_gap_s[0], p.visit_gap_s[1], p.visits_per_night)
        # Readout ends one gap after the night starts (the first exposure), then one gap per visit.
        t = start + np.cumsum(cadence)
        yield clear(t[t <= end])


def _drp(sc: Scenario, rng: np.random.Generator, mem_rng: np.random.Generator,
         ac: Callable[[str, int, float, str], int], acs: list[AutoCluster]) -> list[Arrival]:
    """DRP: a backlog at t = 0 and Poisson submits per block, split over the task mix (multinomial)."""
    d = sc.drp
    assert d is not None
    weights = np.array([task.weight for task in d.mix])
    weights = weights / weights.sum()
    task_acs = [ac("drp", task.cpus, task.memory_gib, f"drp:{task.name}") for task in d.mix]
    blocks: list[tuple[float, int]] = []
    if d.backlog_jobs:
        blocks.append((0.0, d.backlog_jobs))
    if d.jobs_per_hour > 0:
        n_blocks = int(sc.duration_s // d.block_s)
        counts = rng.poisson(d.jobs_per_hour * d.block_s / 3600.0, n_blocks)
        blocks += [((i + 1) * d.block_s, int(c)) for i, c in enumerate(counts) if c > 0]
    out: list[Arrival] = []
    for t, n in blocks:
        split = rng.multinomial(n, weights)
        for task, a_idx, k in zip(d.mix, task_acs, split.tolist(), strict=True):
            if k:
                over = over_request(mem_rng, task.memory_use, k, acs[a_idx].memory_mib)
                out.append(Arrival(t, a_idx, draw(rng, task.runtime, k).tolist(), over=over))
    return out


def _sessions(sc: Scenario, spec: EnclaveSpec, rng: np.random.Generator) -> Sessions:
    nb = sc.notebooks
    if nb is None or (nb.peak_concurrent == 0 and not nb.surges):
        return Sessions([], [], [], [], 0)
    if nb.peak_concurrent == 0:
        return _with_surges(sc, spec, np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))
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
    cpu_raw = np.array([c.cpu for c in nb.sizes])[choice]
    mem_raw = np.array([c.memory_gib * 1024 for c in nb.sizes])[choice]
    return _with_surges(sc, spec, t, cpu_raw, mem_raw, duration)


def _with_surges(sc: Scenario, spec: EnclaveSpec, t: np.ndarray, cpu_raw: np.ndarray, mem_raw: np.ndarray,
                 duration: np.ndarray) -> Sessions:
    """Add each surge's ``count`` spawns at its time (no random draw), cap every size to the spec's bounds,
    and sort by time (stable: a surge's spawns come after the day's spawns of the same instant)."""
    nb = sc.notebooks
    assert nb is not None
    parts = [(t, cpu_raw, mem_raw, duration)]
    for sg in nb.surges:
        if sg.at_h * 3600.0 < sc.duration_s:
            parts.append((np.full(sg.count, sg.at_h * 3600.0), np.full(sg.count, sg.cpu),
                          np.full(sg.count, sg.memory_gib * 1024), np.full(sg.count, sg.session_h * 3600.0)))
    t, cpu_raw, mem_raw, duration = (np.concatenate([p[i] for p in parts]) for i in range(4))
    order = np.argsort(t, kind="stable")
    t, cpu_raw, mem_raw, duration = t[order], cpu_raw[order], mem_raw[order], duration[order]
    b = spec.notebooks.bounds
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
        if storm.names is not None:
            chosen = list(storm.names)
        else:
            pool = [n for n in nodes if storm.group is None or n.rsplit("-", 1)[0] == storm.group]
            k = storm.nodes if storm.nodes is not None else math.ceil((storm.fraction or 0.0) * len(pool) - 1e-9)
            chosen = [pool[i] for i in sorted(rng.choice(len(pool), size=min(k, len(pool)), replace=False).tolist())]
        out.extend(Failure(storm.at_h * 3600.0, name, storm.repair_h * 3600.0) for name in chosen)
    out.sort(key=lambda x: (x.t, x.node))
    return out
