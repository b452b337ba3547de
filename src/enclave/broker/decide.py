"""The broker's policy: ``decide(spec, observed) -> [Action]``, pure and deterministic.

How a decision is made (seed §7.1, BCS 1–5):

1. **Targets.** Shares are of the batch pool's own capacity ``B`` (cores of the standalone batch-only
   startds that are up). A pool with work (queued or running jobs, or the night's pre-warm) is promised
   ``G = floor(B·guaranteed_share)``; no pool ever holds more than ``M = ceil(B·max_share)`` cores, lent
   Kubernetes capacity included. Each pool's *need* is its running + idle cores (at least the pre-warm
   cores through the night for the pre-warmed pool; without a latency objective and with nothing queued, only
   the running ones its own startds hold: ``on_own_slots``), capped at ``M``. Targets ``T`` over the standalone
   capacity: first every pool with work gets its guarantee, then the rest goes to needs in priority order.
   ``T`` depends on the spec and demand only (and, for a pool with nothing queued, on where its jobs run:
   ``on_own_slots``), never on where startds are now, which is what makes deciding again on the result a
   no-op — but for a give-back that leaves the giver's jobs as guests (``on_own_slots``), and the make-up of
   a cover the commons did not lend (``make_up_for_pods``), last, which leaves what it moved to the pool's floor.
2. **Relabel (BCS 1, 2).** A pool below its guarantee takes startds at once (cooldown and hysteresis do not
   delay a promise). A pool short of its target by at least ``hysteresis`` of a startd takes one from a pool
   above its target — lowest priority first, the startds whose jobs would lose the least work first
   (``enclave.broker.victims``; idle ones cost nothing), none that moved within the cooldown. Relabelling
   lets running jobs of the old pool finish (``take_away: drain``) or evicts them after the old pool's grace
   period (``take_away: vacate``) — or sooner, at the deadline within it expected to lose the least work.
3. **Borrow from Kubernetes (BCS 4, 5).** What a lending pool (default: pools with a latency objective)
   still needs beyond its standalone target is borrowed from the commons: HTCondor worker pods on workers
   with free cores (BCS 4), or whole workers drained and given to HTCondor (BCS 5). Notebooks keep
   ``notebook_headroom_cores`` plus whatever spawns are waiting.
4. **Give back (BCS 3, reverse of 5).** Borrowed startds beyond the need, or needed by waiting notebook
   spawns, are drained first (``DrainStartd``) and deleted or returned once idle (or after the pool's grace
   period when it vacates).

At most ``max_moves_per_cycle`` actions are returned, the most urgent first (notebook reclaims and
surplus give-backs, guarantees, finishing drains, demand, then borrowing).
"""

from __future__ import annotations

import gc
import heapq
import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import repeat
from operator import attrgetter, sub
from typing import Any, Protocol, TypeVar

from enclave.broker import victims
from enclave.broker.census import Census, Holding, up_startds
from enclave.broker.naming import pod_names
from enclave.broker.schedule import Timing, prewarm_from_schedule
from enclave.clock import stamp
from enclave.domain.capacity import (
    Action,
    DeletePods,
    DeployPods,
    DrainNode,
    DrainStartd,
    Node,
    NodeState,
    Observed,
    PendingSpawn,
    PoolDemand,
    Relabel,
    ReturnNode,
    StartdKind,
    StartHTCondor,
)
from enclave.domain.capacity import Startd as StartdT
from enclave.domain.night import Night, night_at
from enclave.errors import Problem, SpecError
from enclave.spec.models import EnclaveSpec, LendMode, NodeRole, Reclaim, Surplus

BROKER_ACTOR = "enclave-broker"
"""The account the broker acts as; it must hold htcondor-admin and k8s-service-admin."""

_EPS = 1e-9
# Enum members the passes over every node and startd compare with, looked up once: reading a member off its
# class (``StartdKind.POD``) costs ~0.25 us in Python 3.11, ~10 ms per pass over 40,000 nodes.
_STANDALONE, _POD, _NODE = StartdKind.STANDALONE, StartdKind.POD, StartdKind.NODE
_READY, _DRAINING, _DOWN = NodeState.READY, NodeState.DRAINING, NodeState.DOWN
_WORKER = NodeRole.WORKER
_WAIT = Reclaim.WAIT
_T = TypeVar("_T")


class _Changed(Protocol):
    @property
    def since(self) -> float: ...  # when a node or startd last changed (``Cycle.cool``)


_S = TypeVar("_S", bound=_Changed)
_UNKNOWN_PRIORITY = -1
# Sort keys read off a node or a startd, in C: a sort calls its key once per item.
_NAME, _BUSY, _READY_STARTD = attrgetter("name"), attrgetter("busy_cores"), attrgetter("ready")
_CORES, _JOBS = attrgetter("cores"), attrgetter("jobs")
_K8S_CORES = attrgetter("k8s_cores_requested")


def _no_jobs(s: StartdT) -> bool:
    return not s.jobs  # no jobs reported: nothing to lose, its victim cost is 0.0 (``Cycle.victim_cost``)


@dataclass
class PoolState:
    """One pool as the broker sees it in a cycle (also what ``enclave broker plan`` prints)."""

    name: str
    priority: int
    guaranteed: int
    maximum: int
    has_work: bool
    need: int
    target: int
    """Standalone cores this pool should hold."""
    lend: int
    """Kubernetes cores it should borrow on top of ``target``."""
    standalone: int = 0
    lent: int = 0
    prewarm: bool = False
    latency: bool = False
    """The pool has a latency objective: what it needs must be running before anything it holds goes."""
    ready_lent: int = 0
    """Borrowed cores whose startds have joined the pool (``Startd.ready``): only these run its jobs now."""
    now_need: int = 0
    """What its jobs need this moment (``instant_need``): no window, no headroom, no pre-warm."""
    pod: tuple[int, int] | None = None
    """Cores and MiB of each worker pod it borrows (``pod_shape``); None: the spec's ``pod_cores`` and
    ``pod_memory_mib``."""
    occupied: int = 0
    """For a latency pool, cores of its standalone startds that other pools' jobs still hold (``occupied_cores``):
    a relabel lets the donor's jobs finish, so a node relabelled to it runs none of its jobs until they end."""

    def urgent(self) -> bool:
        """Whether a promise to this pool may bypass cooldown and hysteresis. Always for a pool without a
        latency objective (a guarantee is kept at once); for a latency pool only while its jobs need more
        than it holds ready now — jobs wait, or run on other pools' slots (overflow), where a rush of the other
        pools' jobs could leave the next ones waiting. Otherwise its guarantee, windowed need and headroom move
        it like any target, with cooldown and hysteresis (issue 15: every overlap of two visits pulled nodes in
        at once and gave them back after the cooldown). Counting only idle jobs as the risk was measured and
        not taken (prompt-slow 84.4 % / 90.3 %, prompt-8g 99.8 % / 91.2 %, one-week 99.99 % / 91.98 %).
        What it holds ready excludes the cores other pools' jobs still hold on its standalone startds
        (``occupied``): a node relabelled to it runs none of its jobs until they end (make before break). Counted
        as ready, the first busy node a promise took ended the promise, and the rest of the guarantee waited out
        the cooldown while the pool's jobs waited (a property found it, 2026-12-03)."""
        return not self.latency or self.standalone - self.occupied + self.ready_lent < self.now_need

    def floor(self, going: int = 0) -> int:
        """Standalone cores a latency pool keeps whatever its target says (make before break): its need less
        the borrowed cores already running (less ``going`` of them, a ready borrowed startd about to be given
        back: ``give_back_surplus``), plus the cores other pools' jobs still hold on its standalone startds
        (``occupied``), which run none of its jobs. A target may fall as soon as pods are deployed, but the nodes
        they replace go only once the pods' startds have joined, and the pods only once the nodes run the pool's
        jobs. 0 when the borrowed cores cover the need, and for other pools. The one rule of make before break:
        the standalone startds (``_most_given``) and the borrowed ones (``give_back_surplus``) both keep it."""
        if not self.latency:
            return 0
        short = self.need - self.ready_lent + going
        return short + self.occupied if short > 0 else 0


@dataclass
class Plan:
    actions: list[Action]
    pools: dict[str, PoolState]
    night: Night | None
    standalone_cores: int
    capped: bool = False
    """True when the move limit cut the decision short: deciding again will continue the work."""
    notes: list[str] = field(default_factory=list)


def decide(spec: EnclaveSpec, observed: Observed, actor: str = BROKER_ACTOR) -> list[Action]:
    """The actions to take now. Pure: same spec and observation, same actions."""
    return plan(spec, observed, actor).actions


def validate(spec: EnclaveSpec) -> None:
    """Refuse a broker section that names pools the spec does not define."""
    b = spec.broker
    problems = [
        Problem(where=f"broker.lend_to[{i}]", what=f"pool {p!r} is not defined",
                fix=f"use one of: {', '.join(spec.pools)}")
        for i, p in enumerate(b.lend_to or []) if p not in spec.pools
    ]
    if spec.cores(NodeRole.BATCH_ONLY) == 0:
        # Shares are of the batch-only cores: with none, every pool's maximum is 0 and each HTCondor worker pod
        # would be given back as surplus. Refuse rather than take the batch system apart.
        problems.append(Problem(where="cluster.node_groups", what="no batch-only node group: the broker shares out "
                                "batch-only capacity and would give back every HTCondor worker pod",
                                fix="add a batch-only node group, or run HTCondor in static pods without the broker"))
    if b.prewarm_pool is not None and b.prewarm_pool not in spec.pools:
        problems.append(Problem(where="broker.prewarm_pool", what=f"pool {b.prewarm_pool!r} is not defined",
                                fix=f"use one of: {', '.join(spec.pools)}"))
    if problems:
        raise SpecError(problems)


def lending_pools(spec: EnclaveSpec) -> list[str]:
    if spec.broker.lend_to is not None:
        return list(spec.broker.lend_to)
    return [n for n, p in spec.pools.items() if p.latency_objective is not None]


def prewarm_pool(spec: EnclaveSpec) -> str | None:
    return spec.prewarmed_pool()


def current_night(spec: EnclaveSpec, now: float) -> Night | None:
    site = spec.cluster.site
    if site is None or prewarm_pool(spec) is None:
        return None
    return night_at(site, now, spec.broker.twilight_altitude_deg)


def _live(observed: Observed) -> tuple[dict[str, Node], list[StartdT]]:
    return {n.name: n for n in observed.nodes}, up_startds(observed)


def pool_states(spec: EnclaveSpec, observed: Observed, night: Night | None,
                census: Census | None = None) -> tuple[dict[str, PoolState], int]:
    """Guarantees, maxima, needs and targets of every pool; the standalone capacity they are shares of.
    ``census``: the observation's (``Census.take``), when the caller has it already."""
    pools, base, _ = _pool_states(spec, observed, night, census or Census.take(observed),
                                  scheduled_prewarm(spec, observed))
    return pools, base


def _pool_states(spec: EnclaveSpec, observed: Observed, night: Night | None, census: Census,
                 by_schedule: bool | None) -> tuple[dict[str, PoolState], int, dict[str, int]]:
    """``pool_states``, with the schedule's verdict (``scheduled_prewarm``) asked once per decision, and what the
    commons cover (``prewarm_cover``), by which the targets were lowered."""
    base = census.base
    pools = pool_figures(spec, observed, night, base, by_schedule, census.holdings)
    add_holdings(pools, census.holdings)
    count_occupied(pools, census.holdings, observed.now, spec.broker.cooldown_seconds)
    lenders = set(lending_pools(spec))
    cover = prewarm_cover(spec, observed, pools, lenders, census, night=night)
    assign_targets(pools, base, cover, lenders, weighted=spec.broker.surplus == Surplus.WEIGHTED)
    return pools, base, cover


def pool_figures(spec: EnclaveSpec, observed: Observed, night: Night | None, base: int,
                 by_schedule: bool | None, holdings: dict[str, Holding] | None = None) -> dict[str, PoolState]:
    """Guarantee, maximum and need of every pool the spec defines, in the spec's order; targets come later.

    A pool is pre-warmed from the lead before evening twilight until morning twilight, or until its night's
    visits are over (``observing_done``); the observing schedule's verdict (``scheduled_prewarm``), when it
    has one, decides instead. ``holdings``: what each pool's startds hold (``Census.holdings``), from which
    a pool without a latency objective needs no capacity for its jobs running elsewhere (``on_own_slots``)."""
    warm = prewarm_pool(spec)
    warm_now = night is not None and night.contains(observed.now, spec.broker.prewarm_lead_seconds)
    pools: dict[str, PoolState] = {}
    # By twilight, tonight's visits are what came since evening twilight; by the schedule, what came at all.
    since = night.start if night is not None and by_schedule is None else None
    for name in spec.pools:
        d = observed.demand.get(name, PoolDemand())
        if name == warm and by_schedule is not None:
            prewarm = by_schedule
            if not by_schedule:
                # The schedule says no visit comes for longer than a release is worth: the need window's
                # hysteresis (kept for visits it cannot foresee) would only hold capacity through the gap.
                d = replace(d, peak_cores=None)
        else:
            prewarm = warm_now and name == warm and not observing_done(spec, d, night, observed.now)
        held = None if holdings is None else holdings.get(name) or Holding()
        pools[name] = pool_figure(spec, name, d, base, prewarm, held, tonight_since=since)
    return pools


def scheduled_prewarm(spec: EnclaveSpec, observed: Observed) -> bool | None:
    """Whether the observing schedule (``Observed.schedule``) pre-warms the pre-warmed pool now; None when no
    schedule covers now, and twilight decides as before (``enclave.broker.schedule``)."""
    warm = prewarm_pool(spec)
    if observed.schedule is None or warm is None:
        return None
    return prewarm_from_schedule(observed.schedule, observed.now,
                                 Timing.of(spec, warm, lender=warm in lending_pools(spec)))


def pool_figure(spec: EnclaveSpec, name: str, d: PoolDemand, base: int, prewarm: bool,
                held: Holding | None = None, *, tonight_since: float | None = None) -> PoolState:
    """One pool's figures: guarantee ``floor(B·guaranteed_share)``, maximum ``ceil(B·max_share)`` (never below
    the guarantee), need = running + idle cores capped at the maximum. A pool has work when jobs are queued
    or running, or it needs cores (the pre-warm). ``held``: what its startds hold (``Census.holdings``), from
    which a pool without a latency objective counts only its jobs running there (``on_own_slots``).
    ``tonight_since``: evening twilight, before which the pool's jobs are not tonight's visits
    (``measured_tonight``); None: any job is."""
    p = spec.pools[name]
    g = math.floor(base * p.guaranteed_share + _EPS)
    m = max(g, math.ceil(base * p.max_share - _EPS))
    if p.latency_objective is None and d.idle_jobs == 0:
        d = on_own_slots(d, name, held)
    need = now_need = instant_need(spec, name, d)
    if p.latency_objective is not None and need + (d.peak_cores or 0) > 0:
        # A latency pool needs what the window learned (``broker.window``: a percentile of its recent needs, the
        # median by default) plus a margin, so capacity an overlap of visits pulled in stays until the window has
        # passed. The window holds this observation too; a need above the learned one overflows onto the slots
        # other pools free (``batch.policy.overflow_pools``), is met by claim reuse and, while the pool holds
        # less than its jobs need, by ``urgent`` promises, not by pods for every overlap.
        learned = need if d.peak_cores is None else d.peak_cores
        need = math.ceil(learned * (1 + spec.broker.latency_headroom) - _EPS)
    if prewarm:
        # The night's visits do not shrink when batch nodes fail: the default is the guarantee on the spec's
        # whole batch capacity, not on what is up now, and so is the cap, so that with batch nodes down
        # (or not yet reporting) the pool borrows what it lost instead of giving its pods back.
        # What recent nights needed replaces the default until tonight's visits have filled a window
        # (``window.Nights``: it knows the night's overlaps before tonight's have happened); without such nights,
        # the default holds until tonight's visits have been measured at all (the window's learned need). What
        # the pool needs is then known, and the cap below still covers failed nodes. An operator's
        # prewarm_cores stays a floor all night.
        full = spec.cores(NodeRole.BATCH_ONLY)
        g_full = math.floor(full * p.guaranteed_share + _EPS)
        if spec.broker.prewarm_cores is not None:
            need = max(need, spec.broker.prewarm_cores)
        elif d.nights_cores is not None:  # with the margin the window's figure gets above
            need = max(need, math.ceil(d.nights_cores * (1 + spec.broker.latency_headroom) - _EPS))
        elif not measured_tonight(d, tonight_since):
            need = max(need, g_full)
        m = max(m, math.ceil(full * p.max_share - _EPS))
    has_work = d.idle_jobs + d.running_jobs > 0 or need > 0
    return PoolState(name=name, priority=p.priority, guaranteed=g, maximum=m, has_work=has_work,
                     need=min(need, m), target=0, lend=0, prewarm=prewarm, latency=p.latency_objective is not None,
                     now_need=min(now_need, m), pod=pod_shape(spec, d))


def measured_tonight(d: PoolDemand, since: float | None) -> bool:
    """Whether the window's figure has seen tonight's visits: it holds a need with work, and the pool had a job
    submitted since ``since`` (evening twilight; None: any time), where the observation tells when its newest was.
    As for ``observing_done``, a test job in the pre-warm's lead is not the night's first visit: it would replace
    the guarantee with its own few cores (review, stop 48: 72 → 1 → 72 cores around twilight)."""
    if not d.peak_cores:
        return False
    return since is None or d.newest_submit is None or d.newest_submit >= since


def on_own_slots(d: PoolDemand, pool: str, held: Holding | None) -> PoolDemand:
    """``d`` with its running jobs counted only where they run on the pool's own startds (up, not draining).

    For a pool with nothing queued (``pool_figure``): jobs of the pool that run on another pool's startds —
    left there by a relabel, which lets them finish (``take_away: drain``, ``reclaim: wait``) — or on its
    startds that are leaving need none of its capacity: they run where they are, and a slot of its own would
    free no core for them. Counting them held a user node with a few cores busy for hours after a burst while
    its last jobs ran on DRP's (twin one-week: the user pool's idle dominant-resource cores 9.5 → 4.8 by day).
    Why only with nothing queued: such a pool is never short of its need (its need is at most what its startds
    run), so only its promise brings it a startd — and a pool with jobs queued wants capacity anyway. Two
    exceptions to "deciding again on the result changes nothing" follow. A startd it gives where its own jobs
    run turns them into guests, so the next decision may give one more while what it holds above its need
    reaches a startd (bounded: each give lowers that by the startd's idle cores). And a standalone startd its
    promise brings it (its guarantee is of standalone cores; its borrowed ones may run all its jobs) where its
    own jobs run as guests makes them its own, so its need rises by them and the surplus left to the pools
    after it falls (bounded: once on its own slots, they count until they end). Counting
    them until a cooldown after the move was tried: it then counted a third pool's guests on a startd moved
    between two others, the same exception the other way. Read from the jobs each startd reports
    (``Startd.jobs``, their pool by ``victims.pool_of``); their memory is taken in the proportion of their
    cores (a job reports none). When a busy startd of the pool reports no jobs, whose they are is unknown
    (a relabel leaves the old pool's on it) and ``d`` is kept whole. Only for pools without a latency
    objective: a latency pool's jobs on other startds are the overflow its own capacity did not hold, which
    its need must count (``PoolState.urgent``)."""
    if d.running_cores <= 0 or held is None:
        return d
    own = 0
    for listed in (held.standalone_startds, held.lent_startds):
        for s in listed:
            if s.jobs:
                own += sum(j.cores for j in s.jobs if victims.pool_of(s, j) == pool)
            elif s.busy_cores:
                return d
    if own >= d.running_cores:
        return d
    return replace(d, running_cores=own, running_memory_mib=d.running_memory_mib * own // d.running_cores)


def instant_need(spec: EnclaveSpec, name: str, d: PoolDemand) -> int:
    """What the pool's jobs need now, in cores: running + idle cores, or their memory sized in cores of the
    thinnest shape the pool may run on (``memory_cores``), whichever is larger."""
    return max(d.running_cores + d.idle_cores, memory_cores(spec, d, name in lending_pools(spec)))


def memory_cores(spec: EnclaveSpec, d: PoolDemand, lender: bool) -> int:
    """The pool's jobs' memory (running + idle requests) in cores of the thinnest shape it may run on: MiB per
    core of the batch-only nodes, and of the worker pods for a pool that borrows them. A pod of 8 cores /
    32 GiB runs 4 jobs of 8 GiB, so 32 such jobs need 64 of its cores, not 32. The need is the larger of this
    and the cores requested (HTCondor matches a job only where both fit: ``TARGET.Cpus >= MY.RequestCpus``
    and ``TARGET.Memory >= MY.RequestMemory``, HTCondor manual, "Submitting a job: requirements")."""
    mem = d.running_memory_mib + d.idle_memory_mib
    if mem <= 0:
        return 0
    b = spec.broker
    ratios = [g.memory_gib * 1024 / g.cores for g in spec.groups(NodeRole.BATCH_ONLY) if g.cores > 0]
    if lender and b.lend_mode == LendMode.PODS and b.pod_cores > 0:
        cores, mib = pod_shape(spec, d)
        ratios.append(mib / cores)
    elif lender:
        ratios += [g.memory_gib * 1024 / g.cores for g in spec.groups(NodeRole.WORKER) if g.cores > 0]
    if not ratios:
        return 0
    return math.ceil(mem / min(ratios) - _EPS)


def job_mib_per_core(d: PoolDemand) -> float | None:
    """Memory per core the pool's jobs request now (running and idle), or as the loop last saw it; None when
    unknown."""
    cores = d.running_cores + d.idle_cores
    mem = d.running_memory_mib + d.idle_memory_mib
    if cores > 0 and mem > 0:
        return mem / cores
    return d.job_mib_per_core


def pod_shape(spec: EnclaveSpec, d: PoolDemand) -> tuple[int, int]:
    """The shape (cores, MiB) of the worker pods a pool borrows, fitted to its jobs (issue 15, item 2).

    ``broker.pod_cores`` / ``pod_memory_mib`` is the shape for jobs of that memory per core. Thinner jobs get
    more cores on the same memory (1-core / 2 GiB prompt jobs: 16 cores on 32 GiB), so no memory sits in a pod
    with no core to use it and half as many pods come and go each night; fatter jobs get more memory on the
    same cores (8 GiB jobs: 8 cores on 64 GiB), so a pod runs one job per core instead of four. HTCondor
    starts a job only where both its cores and its memory fit (``memory_cores``). Never wider than the widest
    worker, nor larger than its memory."""
    b = spec.broker
    cores, mib = b.pod_cores, b.pod_memory_mib
    per_core = job_mib_per_core(d)
    workers = spec.groups(NodeRole.WORKER)
    if per_core is None or per_core <= 0 or not workers:
        return cores, mib
    if per_core < mib / cores:
        widest = max(g.cores for g in workers)
        return max(cores, min(widest, int(mib // per_core))), mib
    largest = max(int(g.memory_gib * 1024) for g in workers)
    return cores, max(mib, min(largest, math.ceil(cores * per_core)))


def count_holdings(pools: dict[str, PoolState], startds: Iterable[StartdT]) -> None:
    """Add to each pool the cores ``startds`` hold (``add_holdings``)."""
    add_holdings(pools, Census.of(startds).holdings)


def add_holdings(pools: dict[str, PoolState], holdings: dict[str, Holding]) -> None:
    """Add to each pool the cores it holds now, standalone and borrowed (``Census.holdings``); startds on their
    way out (draining) hold nothing. A pool the spec no longer defines (a label left behind) is added with no
    guarantee, no maximum and no priority, in the order its startds were first seen: they are free to take."""
    for pool, held in holdings.items():
        ps = pools.get(pool)
        if ps is None:
            ps = pools[pool] = PoolState(name=pool, priority=_UNKNOWN_PRIORITY, guaranteed=0, maximum=0,
                                         has_work=False, need=0, target=0, lend=0)
        ps.standalone += held.standalone
        ps.lent += held.lent
        ps.ready_lent += held.ready_lent


def occupied_cores(s: StartdT, pool: str, now: float, cooldown: float) -> int:
    """Cores of standalone startd ``s`` that jobs of pools other than ``pool`` hold, for ``pool`` holding it (make
    before break, ``PoolState.floor``). Its reported jobs (``Startd.jobs``: the live collector's dynamic slots and
    the twin report each job's pool) of another pool; a job of unknown pool counts as the startd's, and after a
    relabel as its new pool's (``victims.pool_of``, which the projection follows). Without reported jobs whose
    they are cannot be told: a startd relabelled within the cooldown (``s.since``; a relabel this decision makes,
    when ``pool`` is not its label, is one) counts its busy cores as the donor's — a relabel lets them run to
    their end or to the donor's grace period — and any other startd its busy cores as its own pool's."""
    if s.jobs:
        return min(s.cores, sum([j.cores for j in s.jobs if j.pool is not None and j.pool != pool]))
    since = s.since if s.pool == pool else now
    return s.busy_cores if now - since < cooldown else 0


def count_occupied(pools: dict[str, PoolState], holdings: dict[str, Holding], now: float, cooldown: float) -> None:
    """Set each latency pool's ``occupied``: cores of its standalone startds other pools' jobs hold
    (``occupied_cores``); the other pools' are never asked (a pass over their jobs would cost every decision for
    nothing)."""
    for pool, held in holdings.items():
        ps = pools.get(pool)
        if ps is not None and ps.latency:
            ps.occupied = sum([occupied_cores(s, pool, now, cooldown) for s in held.standalone_startds])


def prewarm_cover(spec: EnclaveSpec, observed: Observed, pools: dict[str, PoolState], lenders: set[str],
                  census: Census | None = None, *, night: Night | None = None) -> dict[str, int]:
    """Cores of the pre-warmed pool's need that idle commons capacity covers (seed §7.1, BCS 4): through the
    night it takes what it needs from the commons first (notebook load is low at night), so the batch-only
    nodes keep running the backlog. Only in pods mode, and only for a pool that may borrow.

    While pre-warmed, and through the rest of ``night`` (the pre-warm lead included) while it still needs
    something: after its last visit the pre-warm ends (``observing_done``) but the window's learned need
    holds for ``need_window_seconds``; covering it from the commons keeps the pods it has instead of swapping
    them for batch nodes taken from the backlog and given back when the window empties. After the pre-warm
    only the pods that run (``ready_lent``) cover it: a latency pool whose jobs wait takes a batch node at once
    rather than waiting for a pod to start (its whole guarantee is promised, as by day)."""
    warm = prewarm_pool(spec)
    if warm is None or warm not in pools or warm not in lenders or spec.broker.lend_mode != LendMode.PODS:
        return {}
    ps = pools[warm]
    if ps.prewarm:
        return {warm: min(ps.need, lendable_pod_cores(spec, observed, warm, census, at_most=ps.need))}
    if night is None or ps.need <= 0 or not night.contains(observed.now, spec.broker.prewarm_lead_seconds):
        return {}
    # After the pre-warm: keep the pods that run, never wait for new ones while a batch node could serve now.
    held = min(ps.need, ps.ready_lent)
    return {warm: min(held, lendable_pod_cores(spec, observed, warm, census, at_most=held))} if held else {}


def assign_targets(pools: dict[str, PoolState], base: int, cover: dict[str, int], lenders: set[str], *,
                   weighted: bool = False) -> None:
    """Set each pool's standalone ``target`` and what it should borrow (``lend``).

    Out of the ``base`` standalone cores, highest priority first: every pool with work gets its guarantee,
    then the rest goes to needs, less what the commons cover (``cover``). A lending pool borrows the part of
    its need its target does not hold. Targets depend on the spec and demand only, never on where startds are
    now, which is what makes deciding again on the result a no-op. ``weighted``: see ``share_weighted``."""
    free = base
    order = sorted(pools.values(), key=lambda ps: (-ps.priority, ps.name))
    for ps in order:
        if ps.has_work:
            # A pool the commons covers tonight (``prewarm_cover``) is promised its need, at most its guarantee,
            # between the two: holding standalone cores for a guarantee above its need would hand back pods each
            # time the commons' room moved by one.
            covered = cover.get(ps.name, 0)
            ps.target = min(max(0, promised(ps, covered) - covered), free)
            free -= ps.target
    if weighted:
        free = share_weighted(order, free, cover)
    for ps in order:
        extra = max(0, min(ps.need - cover.get(ps.name, 0) - ps.target, free))
        ps.target += extra
        free -= extra
    for ps in order:
        if ps.name in lenders:
            ps.lend = max(0, ps.need - ps.target)


def promised(ps: PoolState, covered: int) -> int:
    """What a pool with work is promised (``assign_targets``): a latency pool its whole guarantee, unless the commons
    cover ``covered`` cores of its need tonight; then, as any other pool, its guarantee up to its need."""
    return min(ps.guaranteed, ps.need) if covered or not ps.latency else ps.guaranteed


def share_weighted(order: list[PoolState], free: int, cover: dict[str, int]) -> int:
    """``broker.surplus: weighted``: after the guarantees, latency pools' needs first (their objective), in
    priority order; then what is left is shared among the other pools still short of their need in proportion
    to their guarantees, each capped at its need, until nothing more fits (water-filling). HTCondor shares a
    group quota's surplus among groups that accept it in proportion to their quotas (HTCondor manual,
    "Hierarchical Group Quotas", GROUP_ACCEPT_SURPLUS); Kueue's fair sharing does so by weight
    (https://kueue.sigs.k8s.io/docs/concepts/fair_sharing/). Rounding leftovers go in priority order
    afterwards (``assign_targets``). Returns the cores still free."""
    def short(ps: PoolState) -> int:
        return max(0, ps.need - cover.get(ps.name, 0) - ps.target)

    for ps in order:
        if ps.latency:
            extra = min(short(ps), free)
            ps.target += extra
            free -= extra
    rest = [ps for ps in order if not ps.latency and ps.guaranteed > 0 and short(ps) > 0]
    while free > 0 and rest:
        weight = sum(ps.guaranteed for ps in rest)
        given = 0
        for ps in rest:
            extra = min(short(ps), free * ps.guaranteed // weight)
            ps.target += extra
            given += extra
        if given == 0:
            break
        free -= given
        rest = [ps for ps in rest if short(ps) > 0]
    return free


def pending_notebook_cores(observed: Observed, workers: list[Node] | None = None) -> float:
    """Cores waiting notebook spawns need across the commons. Told spawn by spawn, one larger than every worker is
    left out: no pod the broker gives back would place it, so it must not pull capacity back cycle after cycle. So
    is one pinned to some workers (``PendingSpawn.nodes``): room made anywhere else would not place it either, and
    its room is made on those workers alone (``hold_room_for_spawns``). ``workers``: the observation's workers,
    when the caller has them already."""
    if not observed.notebook_spawns:
        return observed.notebook_pending_cores
    if workers is None:
        workers = [n for n in observed.nodes if n.role == _WORKER]
    return sum(sp.cpu for sp in observed.notebook_spawns if sp.nodes is None and _fits_some(sp, workers))


def _fits_some(sp: PendingSpawn, workers: Iterable[Node]) -> bool:
    """Whether a worker that is up and that ``sp`` may go to is large enough for it, empty: else no room the broker
    makes places it."""
    return any(n.state != _DOWN and n.cores >= sp.cpu - _EPS and n.memory_mib >= sp.memory_mib and sp.admits(n.name)
               for n in workers)


def observing_done(spec: EnclaveSpec, d: PoolDemand, night: Night | None, now: float) -> bool:
    """Whether tonight's visits are over: the pool had work submitted since evening twilight, none is left,
    and nothing new came for ``prewarm_quiet_seconds``. Capacity then goes back after the last visit instead of
    at morning twilight; a new submission (clouds clearing) makes the pool pre-warmed again."""
    b = spec.broker
    if night is None or d.newest_submit is None or d.idle_jobs + d.running_jobs > 0:
        return False
    # Since evening twilight: a test job in the lead window is not the night's first visit.
    return d.newest_submit >= night.start and now - d.newest_submit >= b.prewarm_quiet_seconds


def lendable_pod_cores(spec: EnclaveSpec, observed: Observed, pool: str, census: Census | None = None, *,
                       at_most: int | None = None) -> int:
    """Cores of HTCondor worker pods ``pool`` could hold in the commons now: what its own pods hold plus what
    still fits next to notebooks, services and other pools' pods, keeping the notebook reserve and the
    lending cap. Its own pods count as lendable, so the figure does not change as the broker deploys or drains
    them (deciding again on the result stays a no-op). ``census`` as for ``pool_states``. ``at_most``: the
    figure is wanted up to there only (``prewarm_cover`` takes no more than the pool's need), so the workers
    are counted only until it is reached; the answer is then ``min(at_most, figure)``."""
    b = spec.broker
    if census is None:
        census = Census.take(observed)
    cores_on, mem_on, other_lent = _other_pods(spec, census, pool, observed.now)
    left = _cores_left(census, cores_on)  # per ready worker: what _free_cores sums and pods are fitted into below
    free = _free_cores(census, left)
    reserve = b.notebook_headroom_cores + pending_notebook_cores(observed, census.workers)
    pc, pm = pod_shape(spec, observed.demand.get(pool, PoolDemand()))
    room = b.max_lend_share * census.worker_cores - other_lent
    cap = min(math.floor((free - reserve + _EPS) / pc), math.floor((room + _EPS) / pc))
    if at_most is not None:
        cap = min(cap, -(-at_most // pc))  # pods enough for at_most cores
    fit = 0  # pods that fit next to the others, counted only until the cap binds: min(fit, cap) is the same
    for n, cpu_left in zip(census.ready_workers, left, strict=True):
        if fit >= cap:
            break
        fit += _pods_that_fit(n, cpu_left, mem_on.get(n.name, 0), pc, pm)
    lendable = max(0, min(fit, cap)) * pc
    return lendable if at_most is None else min(at_most, lendable)


def _other_pods(spec: EnclaveSpec, census: Census, pool: str,
                now: float) -> tuple[dict[str, int], dict[str, int], int]:
    """For ``lendable_pod_cores``: the cores and MiB of other pools' worker pods on each worker that stay after
    this decision, and the borrowed cores of other pools that still count against the lending cap. ``census``:
    the decision's (its borrowed startds that are up, per pool, and the pods on each worker).

    Its own pods count as lendable even while draining: a pod this decision drains as surplus must not shrink
    the figure for the next decision (the drain's jobs finish within the cycle or two). Pods this decision
    removes anyway (idle drained ones, ``_drained_now``; those of pools that may not borrow, ``_not_lending``)
    leave room for this pool now, so the figure is the same before and after removing them. A pool that may
    not borrow gives back every pod out of cooldown this decision (drained if busy): it no longer counts
    against the lending cap, though it still takes room on its worker."""
    cooldown = spec.broker.cooldown_seconds
    lenders = set(lending_pools(spec))
    leaving: list[StartdT] = []
    other_lent = 0
    # Pool by pool (the census's holdings): what is said of a pool is said once, not for each of its startds.
    for owner, held in census.holdings.items():
        if owner == pool:
            leaving += held.lent_startds
        elif owner in lenders:
            other_lent += held.lent  # it keeps what it borrows: nothing of it is removed now but drained pods
        else:
            counted, removed = _not_lending(held, now, _vacate_grace(spec, owner), cooldown)
            other_lent += counted
            leaving += removed
    for s in census.draining:  # on their way out: they count against no cap, and leave when done
        if s.pool == pool or _drained_now(s, now, _vacate_grace(spec, s.pool)):
            leaving.append(s)
    # Every pod on each worker (the census's) less those that do not stay: most of them stay, and whole cores
    # and MiB add up to the same in any order.
    cores_on, mem_on = dict(census.pod_cores), dict(census.pod_memory)
    for s in leaving:
        if s.kind == _POD:
            node = s.node
            cores_on[node] -= s.cores
            mem_on[node] -= s.memory_mib
    return cores_on, mem_on, other_lent


def _not_lending(held: Holding, now: float, grace: float | None, cooldown: float) -> tuple[int, list[StartdT]]:
    """For ``_other_pods``, a pool that may not borrow: of its borrowed startds that are not draining (``held``), the
    cores of those in cooldown (they stay, and count against the lending cap) and the pods this decision
    removes whatever else happens (the move limit aside): out of cooldown, idle or of a pool that vacates at
    once (``give_back_surplus``). ``grace``: the pool's (``_vacate_grace``)."""
    # None in cooldown (a NaN since is not told so: the loop below decides then): its idle pods go, as the census
    # found them, without a pass of its own.
    if grace != 0 and held.lent_all_cool(lambda since: now - since >= cooldown):
        return 0, held.idle_pods
    # One pass: a second pass over thousands of startds costs more than the steps it saves (fetching each again).
    counted = 0
    removed: list[StartdT] = []
    for s in held.lent_startds:
        if now - s.since < cooldown:
            counted += s.cores
        elif s.kind == _POD and (s.busy_cores == 0 or grace == 0):
            removed.append(s)
    return counted, removed


def _cores_left(census: Census, pod_cores_on: dict[str, int]) -> list[float]:
    """What each ready worker has beside its requests and the worker pods (``pod_cores_on``), in the census's
    order: what ``_free_cores`` sums and ``lendable_pod_cores`` fits pods in (one subtraction, not two per worker)."""
    # In C, from what the census read off the nodes once (``Census.ready_room``, ``ready_names``): a comprehension
    # fetched each of 16,000 workers from memory again, twice a decision. The same figures: (cores - requests) - pods.
    return list(map(sub, census.ready_room, map(pod_cores_on.get, census.ready_names, repeat(0))))


def _free_cores(census: Census, left: list[float]) -> float:
    """Free commons cores: what ready workers have left (``_cores_left``, summed in the observation's order), less
    what pods on draining workers still need elsewhere once evicted (not those a drain leaves there:
    ``Node.k8s_cores_daemons``)."""
    return sum(left) - sum([n.k8s_cores_to_move for n in census.draining_workers])


def _drained_now(s: StartdT, now: float, grace: float | None) -> bool:
    """Whether ``plan`` removes this draining startd in this very decision (``finish_drains``; the move limit
    aside): idle, or past its pool's grace period when it vacates. ``grace``: its pool's (``_vacate_grace``)."""
    return s.busy_cores == 0 or (grace is not None and now - s.since >= grace)


def _vacate_grace(spec: EnclaveSpec, pool: str) -> float | None:
    """The grace period after which a pool that vacates evicts its jobs; None for a pool that drains (and for a
    pool the spec does not define)."""
    p = spec.pools.get(pool)
    return p.vacate_grace if p is not None else None


class _Budget:
    def __init__(self, limit: int) -> None:
        self.left = limit
        self.capped = False

    def take(self) -> bool:
        if self.left <= 0:
            self.capped = True
            return False
        self.left -= 1
        return True


@dataclass
class Cycle:
    """The working state of one decision: the pools' figures as this decision's moves change them, the actions
    so far, what they touched (nothing is touched twice in a cycle) and the moves left under the limit."""

    spec: EnclaveSpec
    now: float
    actor: str
    pools: dict[str, PoolState]
    budget: _Budget
    actions: list[Action] = field(default_factory=list)
    moved: set[str] = field(default_factory=set)
    receivers: list[PoolState] = field(default_factory=list)
    """Pools highest priority first: the order in which they are served."""
    runtimes: dict[str, tuple[float, ...]] = field(default_factory=dict)
    """Each pool's recently finished runtimes (``PoolDemand.runtimes``): whether a job ends within its grace."""
    cover: dict[str, int] = field(default_factory=dict)
    """What the commons cover of a pool's need (``prewarm_cover``): the cores its targets were lowered by."""
    cooldown: float = field(init=False)
    """``broker.cooldown_seconds``, read once: ``cool`` runs for every startd that may move."""
    grace: dict[str, float | None] = field(init=False, default_factory=dict)
    """Each pool's ``vacate_after``, read once per decision; ``release`` reads it without a call per startd."""
    _deadlines: dict[tuple[str, str], tuple[float | None, float]] = field(init=False, default_factory=dict)
    waits: set[str] = field(init=False, default_factory=set)
    """The pools that reclaim without eviction (``reclaim: wait``), read once: every relabel asks
    (``_reclaim_deadline``)."""
    toward_targets: list[tuple[int, StartdT, PoolState, PoolState]] = field(init=False, default_factory=list)
    """The relabels made by a promise (phase 4) or toward a target (phase 6): where each is in ``actions``, its
    startd, from and to which pool; a larger startd the pool takes later may redirect them (``_redirect_surplus``),
    and so may the make-up (``_redirect_for``)."""

    def __post_init__(self) -> None:
        self.cooldown = self.spec.broker.cooldown_seconds
        self.grace = {name: _vacate_grace(self.spec, name) for name in self.spec.pools}
        self.waits = {name for name, p in self.spec.pools.items() if p.reclaim == _WAIT}

    @classmethod
    def start(cls, spec: EnclaveSpec, now: float, actor: str, pools: dict[str, PoolState]) -> Cycle:
        return cls(spec=spec, now=now, actor=actor, pools=pools, budget=_Budget(spec.broker.max_moves_per_cycle),
                   receivers=sorted(pools.values(), key=lambda ps: (-ps.priority, ps.name)))

    def cool(self, since: float) -> bool:
        """Out of the cooldown: what changed less than ``cooldown_seconds`` ago is not moved again yet."""
        return self.now - since >= self.cooldown

    def cool_ones(self, items: Iterable[_S]) -> list[_S]:
        """The nodes or startds among ``items`` out of the cooldown (``cool``), in their order: the same test,
        without a call per item (a pass over thousands of startds a third cheaper)."""
        now, cooldown = self.now, self.cooldown
        return [x for x in items if now - x.since >= cooldown]

    def vacate_after(self, pool: str) -> float | None:
        """The grace period after which a pool that vacates evicts its jobs; None for a pool that drains (and
        for a pool the spec does not define). Looked up once per pool and decision (it is asked for every
        startd released)."""
        return self.grace.get(pool)

    def victim_cost(self, s: StartdT, pool: str) -> float:
        """Work taking ``s`` from ``pool`` loses (core-seconds, ``enclave.broker.victims``): the order in which a
        pool's startds go, cheapest first. 0 for an idle startd or a pool that drains."""
        return self._deadline(s, pool)[1] if s.jobs else 0.0

    def vacate_for(self, s: StartdT, pool: str) -> float | None:
        """The vacate deadline for taking ``s`` from ``pool``: None for a pool that drains; else the deadline within
        its grace expected to lose the least work (``enclave.broker.victims.deadline``), the grace itself when
        its jobs end within it or the history cannot tell."""
        return self._deadline(s, pool)[0] if s.jobs else self.vacate_after(pool)

    def _deadline(self, s: StartdT, pool: str) -> tuple[float | None, float]:
        """``victims.deadline`` for ``s`` in ``pool`` (which also answers a pool that drains and a startd without
        jobs), once per decision: the sort that orders a pool's startds and the move that takes one ask for the
        same figure."""
        key = (s.name, pool)
        found = self._deadlines.get(key)
        if found is None:
            found = self._deadlines[key] = victims.deadline(s, pool, self.now, self.vacate_after(pool),
                                                            self.runtimes.get(pool, ()))
        return found


@dataclass
class Commons:
    """The Kubernetes commons as this decision changes it: borrowed startds, worker pods' cores and memory per
    worker, free cores, and the room notebooks need (``reserve``)."""

    workers: list[Node]
    lent: list[StartdT]
    """Borrowed startds (worker pods and whole workers) that are up, as observed."""
    borrowed: dict[str, list[StartdT]]
    """Those not draining, per pool (``Census.borrowed``)."""
    census: Census
    """The decision's census, whole; read here for its ready workers (``ready_by_name``, ``ready``)."""
    not_ready_by_name: list[Node]
    """The others (draining, given to HTCondor, down), in name order: the few where workers on their way to
    HTCondor are looked for, without a pass over every worker."""
    cores: int
    """Cores of all the workers: ``max_lend_share`` is of these."""
    draining: list[StartdT]
    """The borrowed startds already draining, in name order (``finish_drains``)."""
    pod_cores_on: dict[str, int]
    pod_mem_on: dict[str, int]
    free: float
    """Free commons cores: what ready workers have left, less what pods on draining workers still need
    elsewhere once evicted. Kept up to date as actions are planned instead of recounted."""
    returning: int
    """Cores of borrowed startds already draining: they come back to the commons soon."""
    pending: float
    reserve: float

    @classmethod
    def observe(cls, spec: EnclaveSpec, observed: Observed, startds: Iterable[StartdT]) -> Commons:
        """The commons of ``observed`` whose ``startds`` are up."""
        return cls.of(spec, observed, Census.of(startds, (n for n in observed.nodes if n.role == _WORKER)))

    @classmethod
    def of(cls, spec: EnclaveSpec, observed: Observed, census: Census) -> Commons:
        """The commons of ``observed``, whose census is taken."""
        lent, workers = census.lent, census.workers
        # Copies: this decision's moves change them, the census stays what was observed.
        pod_cores_on, pod_mem_on = dict(census.pod_cores), dict(census.pod_memory)
        pending = pending_notebook_cores(observed, workers)
        return cls(workers=workers, lent=lent, borrowed=census.borrowed(), census=census,
                   not_ready_by_name=sorted(census.other_workers, key=_NAME), cores=census.worker_cores,
                   draining=sorted(census.draining, key=_NAME), pod_cores_on=pod_cores_on,
                   pod_mem_on=pod_mem_on, free=_free_cores(census, _cores_left(census, pod_cores_on)),
                   returning=sum(map(_CORES, census.draining)),
                   pending=pending, reserve=spec.broker.notebook_headroom_cores + pending)

    # The ready workers in name order and their names, made when first asked for: a decision the move limit ends
    # while giving back (the bench's cases with a limit) never asks for the order, and asks for the names only
    # when a pod goes (sorting and naming 16,000 workers were a third of those decisions' commons).
    @cached_property
    def ready_by_name(self) -> list[Node]:
        """The ready workers (where pods and spawns may go) in name order, sorted once: every order on workers
        breaks ties by name (``_ordered``)."""
        return sorted(self.census.ready_workers, key=_NAME)

    @cached_property
    def ready(self) -> set[str]:
        """Their names."""
        return set(self.census.ready_names)

    def short(self) -> float:
        """Cores waiting notebooks (and the headroom) lack once what is on its way back has come back."""
        return self.reserve - self.free - self.returning


@dataclass
class RelabelQueue:
    """Standalone startds each pool could give up, those whose jobs would lose the least work first (idle ones
    cost nothing; ``Cycle.victim_cost``), then the least busy; a second list per pool holds only those out
    of cooldown (a promise ignores the cooldown). A list is made the first time it is asked for: most pools
    never give a startd, and sorting every standalone startd cost most of a small decision. Cursors skip the
    moved prefix, so a cycle with thousands of moves stays linear."""

    by_pool: dict[tuple[str, bool], list[StartdT]]
    donors: list[PoolState]
    """Pools lowest priority first: the order in which they give."""
    cursor: dict[tuple[str, bool], int] = field(default_factory=dict)
    unsorted: dict[str, list[StartdT]] = field(default_factory=dict)
    """Each pool's startds, in no order: their sizes are known without ordering them (``cores_of``). A pool's list
    is sorted in place when it is first asked for (``_listed``)."""
    cool_ones: Callable[[Iterable[StartdT]], list[StartdT]] = list
    """``Cycle.cool_ones``: those out of cooldown (by default all)."""
    cost: Callable[[StartdT, str], float] = lambda s, pool: 0.0
    """``Cycle.victim_cost``: the order in which a pool's startds go."""
    sizes: dict[tuple[str, bool], set[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, cycle: Cycle, startds: Iterable[StartdT]) -> RelabelQueue:
        """The queue of ``startds`` (those that are up)."""
        return cls.start(cycle, Census.of(startds))

    @classmethod
    def start(cls, cycle: Cycle, census: Census) -> RelabelQueue:
        """The queue of each pool's standalone startds that are up and not draining (``Census.standalone``), whose
        lists it takes over, and of their sizes (``Holding.standalone_sizes``)."""
        sizes = {(pool, True): h.standalone_sizes for pool, h in census.holdings.items() if h.standalone_startds}
        return cls(by_pool={}, donors=sorted(cycle.pools.values(), key=lambda ps: (ps.priority, ps.name)),
                   unsorted=census.standalone(), cool_ones=cycle.cool_ones, cost=cycle.victim_cost, sizes=sizes)

    def _listed(self, pool: str, promise: bool) -> list[StartdT]:
        key = (pool, promise)
        them = self.by_pool.get(key)
        if them is None:
            if promise:
                mine = self.unsorted.get(pool, [])
                cost = self.cost
                # Without reported jobs every cost is 0: that key is left out, without a call per startd
                # (bench.broker_decide).
                costs = (lambda s: cost(s, s.pool),) if any(map(_JOBS, mine)) else ()
                them = _sort_by(mine, (*costs, _BUSY, _NAME))  # in place: the queue took the census's lists over
            else:
                them = self.cool_ones(self._listed(pool, True))
            self.by_pool[key] = them
        return them

    def cores_of(self, pool: str, promise: bool) -> set[int]:
        """The sizes (cores) of the startds ``candidates`` goes through, found without ordering them: ``take_one``
        passes over a donor none of whose sizes may go."""
        key = (pool, promise)
        sizes = self.sizes.get(key)
        if sizes is None:  # those out of cooldown, or a pool without standalone startds (the census's sizes else)
            mine = self.unsorted.get(pool, [])
            sizes = self.sizes[key] = {s.cores for s in (mine if promise else self.cool_ones(mine))}
        return sizes

    def candidates(self, pool: str, promise: bool, moved: set[str]) -> Iterable[StartdT]:
        """``pool``'s startds in order from the first not moved yet (later ones may have moved: skip them)."""
        key = (pool, promise)
        candidates = self._listed(pool, promise)
        start = self.cursor.get(key, 0)
        while start < len(candidates) and candidates[start].name in moved:
            start += 1
        self.cursor[key] = start
        # By index: islice would step over the moved prefix one item at a time on every call (quadratic in the
        # moves, 15 ms for 1,773 relabels in bench.broker_decide).
        return (candidates[i] for i in range(start, len(candidates)))


def plan(spec: EnclaveSpec, observed: Observed, actor: str = BROKER_ACTOR) -> Plan:
    """Decide, and explain: the pool figures behind the actions and whether the move limit was reached.

    First the night and every pool's figures (``pool_states``: guarantee, maximum, need, target, what to
    borrow). Then the phases, most urgent first, each on what the ones before it left, so the move limit cuts
    the later ones short: starts that never came are given up, notebooks reclaim, surplus goes back, spawns get
    room, promises are kept, drains finish, pools move toward their targets, then lending pools borrow pods or
    whole workers, and a pool the commons lent less than they cover is made up from batch nodes.

    The cyclic garbage collector is paused while it decides, as the twin's loop pauses it (``enclave.twin.sim``).
    A decision makes no reference cycles, and reference counting frees what it drops; but the actions, names and
    lists it keeps until it returns (tens of thousands with no move limit) set off young collections that move
    them to the oldest generation, and enough of those a whole-heap collection, which walks the caller's
    observation too (35,000 startds and 40,000 nodes: about 90 ms each, as long as the decision itself, in
    ``bench.broker_decide``'s cases without a move limit). Paused before anything is allocated (a context
    manager's generator was, and set off the collection a freshly built observation had made due), and left as
    it was if the caller paused it. Another thread that pauses the collector while a decision runs finds it
    running again when the decision ends (a cost in speed only); the server takes its decisions under the
    broker's lock, the twin with the collector paused."""
    enabled = gc.isenabled()  # as ``enclave.twin.sim.Sim.run_until`` pauses it
    gc.disable()
    try:
        return _plan(spec, observed, actor)
    finally:
        if enabled:
            gc.enable()


def _plan(spec: EnclaveSpec, observed: Observed, actor: str) -> Plan:
    validate(spec)
    night = current_night(spec, observed.now)
    census = Census.take(observed)
    verdict = scheduled_prewarm(spec, observed)  # once: the pool figures and the notes both say it
    pools, base, cover = _pool_states(spec, observed, night, census, verdict)
    cycle = Cycle.start(spec, observed.now, actor, pools)
    cycle.runtimes = {name: d.runtimes for name, d in observed.demand.items() if d.runtimes}
    cycle.cover = cover
    commons = Commons.of(spec, observed, census)
    for _ in _phases(cycle, commons, observed.notebook_spawns, census, observed.collector_since):
        if cycle.budget.capped:
            break  # every phase asks the budget before it acts: once it refused a move, no later phase can act
    return Plan(actions=cycle.actions, pools=pools, night=night, standalone_cores=base,
                capped=cycle.budget.capped, notes=_notes(spec, night, pools, observed, verdict))


def _phases(cycle: Cycle, commons: Commons, spawns: Iterable[PendingSpawn], census: Census,
            collector_since: float | None) -> Iterator[None]:
    """The phases of ``plan`` in order, pausing after each so that ``plan`` may stop at the move limit. The
    census is this decision's own: the queue takes its standalone lists, ``lend_pods`` adds to its names."""
    give_up_starts(cycle, commons, census.starting, collector_since)
    yield
    reclaim_for_notebooks(cycle, commons)
    yield
    give_back_surplus(cycle, commons)
    yield
    held = hold_room_for_spawns(cycle, commons, spawns)
    yield
    queue = RelabelQueue.start(cycle, census)
    keep_promises(cycle, queue)
    yield
    finish_drains(cycle, commons)
    yield
    move_toward_targets(cycle, queue)
    yield
    room = lending_room(cycle, commons)
    lend_mode = cycle.spec.broker.lend_mode
    if lend_mode == LendMode.PODS:
        lend_pods(cycle, commons, held, room, existing=census.names)
        yield
        make_up_for_pods(cycle, queue)
        yield
    lend_nodes(cycle, commons, held, room, lend=lend_mode == LendMode.NODES)


def _notes(spec: EnclaveSpec, night: Night | None, pools: dict[str, PoolState], observed: Observed,
           verdict: bool | None) -> list[str]:
    """What ``plan`` says besides its figures; ``verdict``: ``scheduled_prewarm``'s."""
    notes = []
    if observed.schedule is not None:
        notes.append(f"observing schedule ({len(observed.schedule.visits)} visits"
                     + (f", {observed.schedule.source}" if observed.schedule.source else "") + "): "
                     + ("does not cover now, twilight decides" if verdict is None else
                        f"pre-warm {'on' if verdict else 'off'}"))
    if night is None:
        return notes
    # Times as people read them (ISO 8601, UTC: enclave.clock.stamp), as every other operator output prints them.
    return [f"night {stamp(night.start)} – {stamp(night.end)} (sun below {spec.broker.twilight_altitude_deg:g}°); "
            f"pre-warm {'on' if any(p.prewarm for p in pools.values()) else 'off'}", *notes]


# --- Giving borrowed capacity back ------------------------------------------------------------------------


def remove_now(cycle: Cycle, commons: Commons, s: StartdT, why: str, *, stuck: bool = False) -> None:
    """Delete a worker pod or return a node now; a deleted pod's room is free for this cycle's plans. ``stuck``:
    a node given back because lending it failed (``ReturnNode.drain_stuck``)."""
    cycle.actions.append(_remove(s, cycle.actor, why, stuck))
    cores, node = s.cores, s.node
    if s.draining:
        commons.returning -= cores
    if s.kind == _POD:
        pod_cores_on, pod_mem_on = commons.pod_cores_on, commons.pod_mem_on
        pod_cores_on[node] = pod_cores_on.get(node, 0) - cores
        pod_mem_on[node] = pod_mem_on.get(node, 0) - s.memory_mib
        if node in commons.ready:
            commons.free += cores
    else:
        commons.free += cores  # the node is back in the commons, empty


def release(cycle: Cycle, commons: Commons, s: StartdT, why: str, held: int | str = "", *,
            counted: bool = False, stuck: bool = False) -> bool:
    """Start giving a borrowed startd back: drain it, or remove it at once if nothing runs there or its pool
    vacates at once. False when it was already touched this cycle or the move limit is reached. The reason
    starts with ``why`` and ``held`` (a figure ``give_back_surplus`` writes after its words: one string built per
    release, not two). ``counted``: the move was already taken from the limit (``_Freed``)."""
    name, moved = s.name, cycle.moved
    if name in moved or not (counted or cycle.budget.take()):
        return False
    moved.add(name)
    pool, cores, busy = s.pool, s.cores, s.busy_cores
    if not s.draining:
        ps = cycle.pools[pool]
        ps.lent -= cores
        if s.ready:
            ps.ready_lent -= cores
    grace = cycle.grace.get(pool)  # cycle.vacate_after(pool), without a method call for each of thousands
    if busy == 0:
        remove_now(cycle, commons, s, f"{why}{held}; no job runs there", stuck=stuck)
    elif grace == 0:
        remove_now(cycle, commons, s, f"{why}{held}; {pool} vacates at once")
    else:
        commons.returning += cores
        # The grace, or sooner when waiting it out would lose more work (without jobs: the grace).
        after = cycle.vacate_for(s, pool) if s.jobs else grace
        what = "finish" if after == grace else f"go within {after:g} s (waiting {grace:g} s would lose more work)"
        # Positional, as in _deploy_for: thousands of these a decision.
        cycle.actions.append(DrainStartd(cycle.actor, f"{why}{held}; let its {busy} busy cores {what}", name, after))
    return True


def give_up_starts(cycle: Cycle, commons: Commons, starting: Iterable[StartdT],
                   collector_since: float | None = None) -> None:
    """Phase 0: a borrowed startd that has not joined its pool ``start_timeout_seconds`` after its pod was made (an
    image that does not pull, a container that crashes, a pod its kubelet refused: ``since`` is the pod's making)
    is given up, its pod deleted or its worker returned, as a Deployment is marked failed after
    progressDeadlineSeconds (600 s by default: kubernetes.io/docs/concepts/workloads/controllers/deployment/
    #progress-deadline-seconds). Kept, it held its requests' room in the commons and counted as lent for ever,
    until someone deleted it; given up, the pool may borrow again, and the journal says each time. Not one whose
    pod runs (``Startd.pod_up``) and was made before the collector started (``collector_since``; unknown: before):
    after a collector restart every startd is missing until it advertises again, and giving them up would evict
    every borrowed job. One made since has had the collector all along (its startd advertises as it starts)."""
    timeout = cycle.spec.broker.start_timeout_seconds
    for s in starting:
        waited = cycle.now - s.since
        if waited >= timeout and (not s.pod_up or (collector_since is not None and s.since >= collector_since)):
            # A worker whose HTCondor never started is remembered as one whose drain stuck: drained again after
            # the cooldown, it would evict what landed there meanwhile, and fail the same way (review).
            why = "; its pod runs, made after the collector started, which never heard from it" if s.pod_up else ""
            release(cycle, commons, s, f"its startd has not joined {s.pool} {waited:.0f} s after its pod was made "
                                       f"(start_timeout_seconds: {timeout:g}){why}", stuck=True)


def reclaim_for_notebooks(cycle: Cycle, commons: Commons) -> None:
    """Phase 1 (BCS 3): notebooks waiting for room take borrowed capacity back before anything else.

    While the commons lack room for the waiting spawns plus the headroom (counting startds already draining
    as back), borrowed startds are given back: lowest-priority pool first, then the least work lost
    (``Cycle.victim_cost``), then the least busy."""
    if commons.short() <= _EPS:
        return
    moved = cycle.moved
    prio = {n: ps.priority for n, ps in cycle.pools.items()}
    for s in _ordered((s for s in commons.lent if not s.draining and s.name not in moved),
                      lambda s: prio.get(s.pool, _UNKNOWN_PRIORITY), lambda s: cycle.victim_cost(s, s.pool), _BUSY,
                      _NAME):
        if commons.short() <= _EPS:
            break
        release(cycle, commons, s, f"notebook spawns wait for {commons.pending:g} cores in the commons")


def give_back_surplus(cycle: Cycle, commons: Commons) -> None:
    """Phase 2 (BCS 3): borrowed startds beyond what their pool should borrow (``lend``) go back, least work
    lost (``Cycle.victim_cost``), least busy and largest first (those still starting before any that runs),
    those out of cooldown only, never taking a pool below what it should borrow, nor a latency pool's running
    capacity below its need. Done before the promises so a pod about to leave does not count against a pool's
    maximum.

    Hysteresis on give-back: while a pool should still borrow something, a startd goes only if the pool holds
    ``hysteresis`` of it more than that beyond what it should borrow. Borrowing starts when a pool lacks
    ``hysteresis`` of a pod (``_deploy_for``), so a need (or a commons' room) that wavers by less than a pod
    neither deploys nor deletes one (issue 15: pods given back and deployed again as notebooks came and went)."""
    moved = cycle.moved
    hysteresis = cycle.spec.broker.hysteresis
    by_pool = commons.borrowed
    for ps in cycle.receivers:
        if cycle.budget.capped:
            return  # the move limit is reached: ordering the next pool's startds (their victim costs) is for nothing
        surplus = ps.lent - ps.lend
        theirs = by_pool.get(ps.name, ()) if surplus > 0 else ()
        if not theirs:
            continue
        held = commons.census.holdings[ps.name]  # what ``theirs`` came from (``Commons.borrowed``)
        # Those out of cooldown only: the others stay whatever the surplus. All of them when the latest is (no pass
        # to tell); a copy either way, as the order below sorts it in place and the census's list stays as observed.
        mine = list(theirs) if held.lent_all_cool(cycle.cool) else cycle.cool_ones(theirs)
        if moved:  # nothing has moved yet unless notebooks reclaimed: then no name need be looked up
            mine = [s for s in mine if s.name not in moved]
        if not mine:
            continue  # nothing to give (sorting a large pool's pods for nothing cost most of this phase)
        spare = 1 + (hysteresis if ps.lend > 0 else 0)  # what a startd's going needs, in its cores
        # All of them (mostly): their sizes are the census's (``Holding.lent_sizes``), without a pass of their own.
        sizes = held.lent_sizes if len(mine) == len(theirs) else {s.cores for s in mine}
        smallest = min(sizes) * spare - _EPS
        if surplus < smallest:
            continue  # none fits (with hysteresis, the steady state): no victim costs to compute
        needs = f"{ps.name} needs {ps.lend} borrowed cores and holds "  # and what it holds at each release
        budget = cycle.budget
        # A key all of them share orders nothing: without reported jobs every victim cost is 0 (as in
        # RelabelQueue), a pool's pods are mostly of one size, and mostly all running.
        starting = (_READY_STARTD,) if len({s.ready for s in mine}) > 1 else ()
        costs = (lambda s: cycle.victim_cost(s, s.pool),) if any(map(_JOBS, mine)) else ()
        largest = (lambda s: -s.cores,) if len(sizes) > 1 else ()
        # A startd without jobs costs nothing (``Cycle.victim_cost``): the others' costs are computed only if they
        # may come next, when the move limit leaves room for a few (``_in_order``).
        costly = (len(starting), _no_jobs) if costs else None
        for s in _in_order(mine, (*starting, *costs, _BUSY, *largest, _NAME), wanted=budget.left, costly=costly):
            if surplus < smallest or budget.capped:
                break  # none of the rest fits in the surplus, or the move limit is reached: the rest stay
            if surplus < s.cores * spare - _EPS:
                continue
            if s.ready and ps.standalone < ps.floor(s.cores):
                continue  # make before break: what replaces it is not running yet (``PoolState.floor``)
            release(cycle, commons, s, needs, ps.lent)
            surplus -= s.cores


@dataclass
class Held:
    """Room held on each worker (cores, MiB) for waiting notebook spawns: the borrowing does not use it."""

    cores: dict[str, float] = field(default_factory=dict)
    mem: dict[str, int] = field(default_factory=dict)
    placed: int = 0
    """Spawns given room, on a ready worker or on a whole worker coming back (``_WholeWorkers``): while any of them
    waits, BCS 5 drains no worker (``drain_for_batch``)."""
    pinned: set[str] = field(default_factory=set)
    """The workers the waiting spawns pinned to some (``PendingSpawn.nodes``) may go to, of those spawns one of them
    could hold (``_fits_some``): BCS 5 drains none of them,
    the only room those spawns can have (they are not in the commons-wide reserve, ``pending_notebook_cores``)."""


def hold_room_for_spawns(cycle: Cycle, commons: Commons, spawns: Iterable[PendingSpawn]) -> Held:
    """Phase 3: room for each waiting notebook spawn on one worker, freeing worker pods where none has it, or a
    worker lent whole (``lend_mode: nodes``) where no ready worker could hold it.

    After the other give-backs, so the room it sees is the room deciding again would see (drained pods
    finishing below already count as room), and before the promises, which count borrowed cores."""
    held = Held()
    spawns = tuple(spawns)
    if spawns:
        lent = [s for s in commons.lent if s.name not in cycle.moved]
        prio = {n: ps.priority for n, ps in cycle.pools.items()}
        held.placed = _room_for_spawns(spawns, commons.ready_by_name, commons.ready, lent, prio, held.cores,
                                       held.mem, _Freed(cycle, commons), _WholeWorkers(cycle, commons, lent, prio))
        # Only those some worker could hold: one that fits nowhere would keep BCS 5 off all its workers (a spawn a
        # taint keeps off one worker may go to all the others) and gain nothing (review).
        held.pinned = set().union(*(sp.nodes for sp in spawns
                                    if sp.nodes is not None and _fits_some(sp, commons.census.workers)))
    return held


def finish_drains(cycle: Cycle, commons: Commons) -> None:
    """Phase 5: borrowed startds that were draining are removed once idle, or once their pool's grace period
    is over when it vacates (``take_away: vacate``)."""
    for s in commons.draining:
        grace = cycle.vacate_after(s.pool)
        if _drained_now(s, cycle.now, grace) and s.name not in cycle.moved and cycle.budget.take():
            cycle.moved.add(s.name)
            why = "drained" if s.busy_cores == 0 else f"grace period of {grace:g} s is over, vacating"
            remove_now(cycle, commons, s, f"{s.name} {why}")


# --- Relabelling standalone startds (BCS 1, 2) ------------------------------------------------------------


def keep_promises(cycle: Cycle, queue: RelabelQueue) -> None:
    """Phase 4 (BCS 1, 2): a pool with work below its guarantee (or its target, if smaller) takes startds at
    once, highest priority first: cooldown and hysteresis do not delay a promise. A latency pool's promise
    does so only while the pool is ``urgent`` (its jobs wait now). A promise that took a smaller startd and then a
    larger one past the pool's target leaves the smaller one surplus: it goes, in the same relabel, to a pool still
    short of its target or of its promise (``_redirect_surplus``, as after an overshoot toward a target). A promise
    that carried a pool past its target makes it a donor to a pool served before it and still owed: the promises go
    round again until they move nothing, as deciding again would."""
    moves = -1
    while moves != len(cycle.toward_targets) and not cycle.budget.capped:
        moves = len(cycle.toward_targets)
        for ps in cycle.receivers:
            while _owed(ps) and take_one(cycle, queue, ps, promise=True, again=_owed):
                pass
            if ps.standalone > ps.target:
                _redirect_surplus(cycle, ps)


def _owed(ps: PoolState) -> bool:
    """Whether a pool is owed startds at once (``keep_promises``)."""
    return ps.has_work and ps.urgent() and ps.standalone < min(ps.guaranteed, ps.target)


def move_toward_targets(cycle: Cycle, queue: RelabelQueue) -> None:
    """Phase 6 (BCS 1, 2): pools short of their target take startds from pools above theirs, with hysteresis
    and cooldown. First every pool's moves that stay within its target; then, once all have had those, moves
    that hysteresis lets carry a pool past it — after each, a smaller startd the pool took within its target
    earlier in this decision, which it no longer needs, goes to a pool still short instead (``_redirect_surplus``).
    A pool carried past its target may give what it held before to a pool served before it: the second pass goes
    round again until it moves nothing, as deciding again would (mixed node sizes; found in review)."""
    for overshoot in (False, True):
        again = True
        while again:
            again = False
            for ps in cycle.receivers:
                while ps.has_work and ps.standalone < ps.target and take_one(cycle, queue, ps, promise=False,
                                                                              overshoot=overshoot):
                    if overshoot:
                        again = ps.standalone > ps.target or again
                        _redirect_surplus(cycle, ps)


def _redirect_surplus(cycle: Cycle, ps: PoolState) -> None:
    """After a promise or an overshoot carried ``ps`` past its target: the startds relabelled to it earlier in this
    decision (``Cycle.toward_targets``: by a promise or toward its target) that it could now give by the target rule
    (``may_give``: it keeps its target, so its promise, and its floor without them) go instead, in the same relabel,
    to a pool short of its target that may take them — within its target if one may, else past it as the second
    pass allows — or owed its promise (``_may_redirect``), highest priority first; when that pool is the one the
    startd came from, the relabel is dropped (``_cancel``). Taken by the next decision, such a startd moved twice a
    cycle apart (mixed node sizes, hysteresis 0: DRP took a 4-core node, then a 24-core one past its target, and the
    next decision gave the 4-core node to the general pool; found in review, then the same with a promise), as
    ``_redirect_for`` does for the make-up. The one rule for both phases: a startd is not taken that this decision's
    own later move makes surplus."""
    if ps.standalone <= ps.target:
        return  # not a donor: no pass over the decision's relabels (thousands of promises)
    for k, (i, s, src, dst) in enumerate(cycle.toward_targets):
        if dst is not ps or i < 0:
            continue
        q = next((q for overshoot in (False, True) for q in cycle.receivers
                  if q is not ps and q.has_work and _may_redirect(cycle, s, ps, q, overshoot)), None)
        if q is None:
            continue
        if q is src:
            _cancel(cycle, k, ps)  # the pool it came from is short of its target: it stays there
            continue
        bcs = "BCS 1" if q.priority > src.priority else "BCS 2"
        why = (f"below its guarantee ({q.standalone} < {q.guaranteed} cores)" if _owed(q) else
               f"short of its target ({q.standalone} of {q.target} cores)")
        cycle.actions[i] = Relabel(cycle.actor, f"{bcs}: {q.name} {why}; {s.name} goes to it, not to {ps.name}, "
                                   f"which took a larger startd past its target", s.name, src.name, q.name,
                                   _reclaim_deadline(cycle, s, src, q))
        cycle.toward_targets[k] = (i, s, src, q)
        _hand_over(cycle, s, ps, q)


def _cancel(cycle: Cycle, k: int, ps: PoolState) -> None:
    """Undo relabel ``k`` of ``Cycle.toward_targets`` (to ``ps``): its startd stays with the pool it came from (which
    is short of its target), no move is spent, and it moves no more in this decision (``Cycle.moved``)."""
    i, s, src, _ = cycle.toward_targets[k]
    del cycle.actions[i]
    cycle.budget.left += 1
    cycle.toward_targets[k] = (-1, s, src, src)
    for j, (m, *rest) in enumerate(cycle.toward_targets):
        if m > i:
            cycle.toward_targets[j] = (m - 1, *rest)  # type: ignore[assignment]
    _hand_over(cycle, s, ps, src)


def _may_redirect(cycle: Cycle, s: StartdT, ps: PoolState, q: PoolState, overshoot: bool) -> bool:
    """Whether startd ``s``, relabelled to ``ps`` earlier in this decision, may go to ``q`` instead
    (``_redirect_surplus``): ``q`` may take it toward its target, ``ps`` keeping its target and floor (``may_give``:
    within it, or past it in the second round, ``overshoot``), or by its promise (``_owed``), ``ps`` being above its
    target and keeping its guarantee and floor: the next decision's promise would take it from ``ps``, and a promise
    may carry a pool past its target."""
    if q.standalone < q.target and may_give(cycle, s.cores, ps, q, promise=False, overshoot=overshoot):
        return True
    return (overshoot and _owed(q) and ps.standalone > ps.target
            and may_give(cycle, s.cores, ps, q, promise=True, overshoot=True))


def take_one(cycle: Cycle, queue: RelabelQueue, dst: PoolState, *, promise: bool, overshoot: bool = True,
             again: Callable[[PoolState], bool] | None = None, at_target: bool = False,
             to_target: bool = False) -> bool:
    """Relabel one standalone startd to ``dst``: from the lowest-priority pool above its target, the first
    the rules allow (``may_give``). False when none may move or the move limit is reached.

    ``again`` (a promise only): go on taking from the same donor while ``again(dst)`` holds — the moves taking one
    at a time would make. For a promise, each move only takes the donors before this one further from giving
    (``may_give`` asks more of the receiver as it grows, and nothing of them changes), so the next search would
    pass over them and start at this donor's next candidate; with thousands of moves the searches cost more
    than the moves (``bench.broker_decide``). Not for targets: a move there may let an earlier donor overshoot.

    ``at_target`` (a promise only, ``make_up_for_pods``): donors at or below their target give too, down to what a
    promise leaves them (``may_give``). ``to_target`` (a promise only, ``make_up_for_pods``): a donor above its
    target gives down to its target where that is below its guarantee (``_most_given``)."""
    moved = cycle.moved
    for src in queue.donors:
        if src is dst or (src.standalone <= src.target and not at_target):
            continue
        # may_give looks at a startd only for its size: each size the donor has is asked once, and a donor none of
        # whose sizes may go is passed over without ordering its startds (a pool at its target, most of the time).
        # Asked of all its sizes first: those out of cooldown take a pass over its startds to tell.
        allowed = {c for c in queue.cores_of(src.name, True)
                   if may_give(cycle, c, src, dst, promise=promise, overshoot=overshoot, to_target=to_target)}
        if allowed and not promise:
            allowed &= queue.cores_of(src.name, False)
        if not allowed:
            continue
        took = False
        for s in queue.candidates(src.name, promise, moved):
            if s.name in moved or s.cores not in allowed:
                continue
            if not cycle.budget.take():
                return False
            _relabel(cycle, s, src, dst, promise)
            if again is None or not again(dst) or (src.standalone <= src.target and not at_target):
                return True
            took = True
            # A promise may take sizes up to what keeping the donor's floor and the receiver's maximum leaves
            # (``may_give``): one figure after each move, not each size asked again.
            most = _most_given(src, dst, promise=True, to_target=to_target)
            if most < max(allowed):
                allowed = {c for c in allowed if c <= most}
                if not allowed:
                    return True
        if took:
            return True
    return False


def may_give(cycle: Cycle, cores: int, src: PoolState, dst: PoolState, *, promise: bool, overshoot: bool,
             to_target: bool = False) -> bool:
    """Whether a startd of ``cores`` may go from ``src`` to ``dst``.

    A promise may take a donor below its target, never below its own guarantee (the make-up's first pass,
    ``to_target``: down to its target, even below its guarantee); otherwise the donor keeps its target. Either
    way a latency pool keeps its ``floor`` (make before break), even against another pool's promise. No pool goes
    over its maximum. A move toward a target needs ``hysteresis`` of the startd to be
    missing. Hysteresis may carry a pool past its target only in the second pass (``overshoot``), and not while
    another pool is short of its promise: that startd could be the one the other pool needs.

    Only the startd's size counts (``take_one`` asks once per size)."""
    if cores > _most_given(src, dst, promise=promise, to_target=to_target):
        return False
    if promise:
        return True
    if dst.target - dst.standalone < cycle.spec.broker.hysteresis * cores - _EPS:
        return False
    return dst.standalone + cores <= dst.target or (overshoot and not any(
        p.has_work and p.standalone < min(p.guaranteed, p.target) for p in cycle.pools.values()))


def _most_given(src: PoolState, dst: PoolState, *, promise: bool, to_target: bool = False) -> int:
    """The most cores one startd moving from ``src`` to ``dst`` may have (``may_give``): what the donor holds above
    what it keeps — its guarantee for a promise (when it has work), its target for a move toward a target and for
    ``to_target`` (the make-up's first pass: what a donor holds beyond its target is a node nobody wants, even below
    its guarantee, and taking it below its target would lower that target and move a node back a cycle later); a
    latency pool's ``floor`` either way — and what the receiver may still hold within its maximum."""
    keep = max((src.guaranteed if src.has_work else 0) if promise and not to_target else src.target, src.floor())
    return min(src.standalone - keep, dst.maximum - dst.standalone - dst.lent)


def _relabel(cycle: Cycle, s: StartdT, src: PoolState, dst: PoolState, promise: bool) -> None:
    bcs = "BCS 1" if dst.priority > src.priority else "BCS 2"
    # One f-string each (thousands a decision), the donor's part written out in both.
    reason = (f"{bcs}: {dst.name} below its guarantee ({dst.standalone} < {dst.guaranteed} cores); "
              f"{src.name} holds {src.standalone} for a target of {src.target}" if promise else
              f"{bcs}: {dst.name} short of its target ({dst.standalone} of {dst.target} cores); "
              f"{src.name} holds {src.standalone} for a target of {src.target}")
    cycle.toward_targets.append((len(cycle.actions), s, src, dst))
    # Positional, as in _deploy_for: (actor, reason, startd, from_pool, to_pool, vacate_after_seconds).
    cycle.actions.append(Relabel(cycle.actor, reason, s.name, src.name, dst.name,
                                 _reclaim_deadline(cycle, s, src, dst)))
    cycle.moved.add(s.name)
    _hand_over(cycle, s, src, dst)


def _hand_over(cycle: Cycle, s: StartdT, src: PoolState, dst: PoolState) -> None:
    """Count standalone startd ``s`` as ``dst``'s, no longer ``src``'s, as deciding again on the relabel would: its
    cores, and for a latency pool the cores other pools' jobs hold there (``occupied_cores``)."""
    src.standalone -= s.cores
    dst.standalone += s.cores
    if src.latency:
        src.occupied -= occupied_cores(s, src.name, cycle.now, cycle.cooldown)
    if dst.latency:
        dst.occupied += occupied_cores(s, dst.name, cycle.now, cycle.cooldown)


# --- Borrowing from the commons (BCS 4, 5) ----------------------------------------------------------------


def _reclaim_deadline(cycle: Cycle, s: StartdT, src: PoolState, dst: PoolState) -> float | None:
    """The relabel's vacate deadline: the donor's (``Cycle.vacate_for``), unless the receiving pool reclaims
    without eviction (``reclaim: wait``): then the donor's jobs run to their end."""
    if dst.name in cycle.waits:
        return None
    return cycle.vacate_for(s, src.name)


def lending_room(cycle: Cycle, commons: Commons) -> float:
    """Phase 7: cores the commons may still lend: ``max_lend_share`` of the workers' cores less what stays
    borrowed (startds given back above no longer count). In nodes mode, workers on their way to HTCondor
    count as lent too."""
    b = cycle.spec.broker
    moved = cycle.moved
    room = b.max_lend_share * commons.cores - sum(
        [s.cores for s in commons.lent if not s.draining and s.name not in moved])  # a list sums faster
    if b.lend_mode == LendMode.NODES:
        room -= sum(n.cores for n in commons.not_ready_by_name if n.state == _DRAINING)
    return room


def lend_pods(cycle: Cycle, commons: Commons, held: Held, room: float, existing: set[str]) -> None:
    """Phase 8 (BCS 4): each lending pool, highest priority first, borrows what it still lacks as HTCondor
    worker pods. Standalone cores held beyond the target (nobody else wanted them) also count toward the need.
    ``existing`` holds the startd names already taken, so new pods get fresh names.

    The names this decision gives are kept per worker and go into ``existing`` only when that worker is named
    again: a pod's name names its worker (``htcondor-<node>-<n>``, ``enclave.broker.naming``; the number has no
    dash, so the worker is what comes before the last one), so no other worker's new pods can take it, and
    adding thousands of names to a set of tens of thousands cost more than naming them."""
    given: dict[str, tuple[str, ...]] = {}
    for ps in cycle.receivers:
        if ps.lend > 0:
            lacking = _lacking(cycle, ps)
            room = _deploy_for(cycle, commons, held, ps, lacking, room, existing, given)


def _lacking(cycle: Cycle, ps: PoolState) -> int:
    """Borrowed cores ``ps`` still lacks. Standalone cores it holds beyond its target count toward its need
    when nobody else wants them; those a latency pool holds only until their replacement runs (its ``floor``,
    while another pool is short of its target) do not, or they would never be replaced."""
    held = ps.standalone
    if ps.latency and any(q.standalone < q.target for q in cycle.pools.values() if q is not ps):
        held = min(held, ps.target)
    return min(ps.lend - ps.lent, ps.need - held - ps.lent)


def _deploy_for(cycle: Cycle, commons: Commons, held: Held, ps: PoolState, lacking: int, room: float,
                existing: set[str], given: dict[str, tuple[str, ...]]) -> float:
    """Deploy pods for one pool, least loaded ready workers first, until it lacks less than ``hysteresis`` of
    a pod or the lending room runs out; returns the room left."""
    b = cycle.spec.broker
    cores, memory_mib = ps.pod or (b.pod_cores, b.pod_memory_mib)
    least = b.hysteresis * cores - _EPS
    pod_cores_on, pod_mem_on = commons.pod_cores_on, commons.pod_mem_on
    held_cores, held_mem = held.cores, held.mem
    needs = f"BCS 4: {ps.name} needs {ps.lend} cores beyond its {ps.target} standalone and holds "  # and ps.lent
    ready = commons.ready_by_name
    load = [n.k8s_cores_requested + pod_cores_on.get(n.name, 0) for n in ready]
    budget, actions, actor, pool = cycle.budget, cycle.actions, cycle.actor, ps.name
    # The commons' free cores and the pool's borrowed cores change only here while it deploys: kept in locals and
    # written back once (they were read back from the objects for every worker).
    free, reserve, lent, below_max = commons.free, commons.reserve, ps.lent, ps.maximum - ps.standalone
    # The most pods one worker may take (``_most_pods``) as last told (-1: to be told), and the pods deployed since.
    # Each deployment lowers the four figures it is the least of by its cores exactly (the free cores by a float
    # subtraction: at most one pod less once rounded), so ``most - since - 2`` pods may surely still go (one more for
    # the ceiling on what the pool lacks): while a worker takes no more than that, the figure need not be told again
    # (it was, after every deployment: a fifth of the cost of one).
    most, since = -1, 0
    for node in _least_first(ready, load, budget.left):  # ties by name: the workers come in name order
        if most < 0 or since and most - since < 3:
            most, since = _most_pods(free - reserve, below_max - lent, lacking, room, cores, least), 0
            if most == 0:
                break
        name = node.name
        pods_c, pods_m = pod_cores_on.get(name, 0), pod_mem_on.get(name, 0)
        # Pods that fit next to its pods and the room held for spawns. The parentheses keep the sum's rounding as
        # it was (held cores are floats): the same fits, so the same decisions.
        fits = _pods_that_fit(node, node.cores - node.k8s_cores_requested - (pods_c + held_cores.get(name, 0)),
                              pods_m + held_mem.get(name, 0), cores, memory_mib)
        if fits <= 0:
            continue
        if since and fits > most - since - 2:  # more than surely may go: told again (at least 1: see above)
            most, since = _most_pods(free - reserve, below_max - lent, lacking, room, cores, least), 0
        if not budget.take():
            break
        fits = most if most < fits else fits  # after deployments, ``fits`` when it is no more than surely may go
        since += fits
        earlier = given.get(name)
        if earlier is not None:
            existing.update(earlier)  # this worker is named again (another pool; a worker listed twice)
        names = given[name] = pod_names(name, fits, existing)
        # Positional: a frozen dataclass built from keywords costs a third more (7 fields, thousands a decision).
        actions.append(DeployPods(actor, f"{needs}{lent} borrowed", name, pool, names, cores, memory_mib))
        added = fits * cores
        pod_cores_on[name] = pods_c + added
        pod_mem_on[name] = pods_m + fits * memory_mib
        free -= added
        lent += added
        lacking -= added
        room -= added
    commons.free, ps.lent = free, lent
    return room


def _most_pods(spare: float, below_max: int, lacking: int, room: float, cores: int, least: float) -> int:
    """For ``_deploy_for``: the most pods of ``cores`` one worker may take now, 0 when the pool is done. It is done
    when it lacks less than ``least`` (hysteresis of a pod), the lending room holds no pod, or no pod fits in what
    the commons may still give (``spare``: free cores beyond the notebook reserve) or within the pool's maximum
    (``below_max``: the cores it may still hold; a cap is a cap) — these only shrink as pods are deployed, so no
    later worker takes one. Otherwise a worker takes at most what the pool lacks, the room holds, and those two
    allow."""
    if lacking <= 0 or lacking < least or room < cores:
        return 0
    # Without min(), max() and math.ceil (thousands of calls a decision): the same whole numbers of pods.
    most = int(spare // cores) if spare > 0.0 else 0
    by_max = below_max // cores
    most = by_max if by_max < most else most
    if most <= 0:
        return 0
    by_lack = -(-lacking // cores)  # ceil(lacking / cores), exactly
    by_room = int(room // cores)
    most = by_lack if by_lack < most else most
    return by_room if by_room < most else most


def make_up_for_pods(cycle: Cycle, queue: RelabelQueue) -> None:
    """Phase 9: a pool the commons cover (``prewarm_cover``) whose target was lowered by pods the lending phase could
    not deploy (room held for a waiting spawn, its own pod still draining: the cover counts both, so that deciding
    again does not change it) has its target raised to its promise less what it was lent, and takes batch nodes for
    it as a promise (``keep_promises``) while its jobs wait. Only when it is short by ``hysteresis`` of one of its
    pods, as the lending phase counts (``_deploy_for``), and a batch node fits under its maximum: otherwise the
    raised target would bring nothing; and when no node comes, the targets stay as they were. Last, so the other
    pools' moves stand as their targets made them. A whole node comes for a gap of a pod: the gap is the pool's
    jobs waiting now, and the node goes back once the pods run (its floor falls with them)."""
    b = cycle.spec.broker
    smallest = _smallest_batch_node(cycle.spec)
    for name, covered in cycle.cover.items():
        ps = cycle.pools[name]
        promise = promised(ps, covered)
        holds = ps.standalone + ps.lent
        short = promise - holds
        pod_cores = ps.pod[0] if ps.pod else b.pod_cores
        if not covered or short <= 0 or short < b.hysteresis * pod_cores - _EPS or ps.maximum - holds < smallest:
            continue
        if not ps.urgent():
            continue  # a promise to a latency pool bypasses nothing while its jobs do not wait (``PoolState.urgent``)
        old = ps.target
        ps.target = max(ps.target, promise - ps.lent)
        before = {q.name: q.standalone for q in cycle.pools.values()}
        # Donors above their target first, down to it (a node nobody wants: deciding again would move it by the
        # target rule), then those at it, down to their guarantee; lowest priority first.
        for at_target in (False, True):
            while _owed(ps) and take_one(cycle, queue, ps, promise=True, again=_owed, at_target=at_target,
                                         to_target=not at_target):
                pass
        if _owed(ps):
            _redirect_for(cycle, ps)
        if ps.standalone == before[name]:
            ps.target = old  # nothing came: the figures stay what brought the decision's moves
            continue
        ps.lend = max(0, ps.need - ps.target)  # a lender borrows the part of its need its target does not hold
        for q in cycle.pools.values():
            if q is not ps and q.standalone < before[q.name]:
                q.target = min(q.target, q.standalone)  # what it gave beyond its target was not its target's


def _redirect_for(cycle: Cycle, ps: PoolState) -> None:
    """The make-up's last donors: nodes a target move (phase 6) gave another pool earlier in this decision, which the
    make-up's second pass could take from that pool now (at its target, down to its guarantee), lowest-priority
    receiver first. Such a node goes to ``ps`` instead, in the same relabel: taken by the next decision, it moved
    twice a cycle apart (general → DRP, then DRP → prompt; issue 15's "deciding again changes nothing", found at
    seed 2024)."""
    moves = sorted(range(len(cycle.toward_targets)),
                   key=lambda k: (cycle.toward_targets[k][3].priority, cycle.toward_targets[k][3].name, k))
    for k in moves:
        if not _owed(ps):
            return
        i, s, src, dst = cycle.toward_targets[k]
        if i < 0 or dst is ps or src is ps or s.cores > _most_given(dst, ps, promise=True):
            continue
        bcs = "BCS 1" if ps.priority > src.priority else "BCS 2"
        cycle.actions[i] = Relabel(cycle.actor, f"{bcs}: {ps.name} below its guarantee ({ps.standalone} < "
                                   f"{ps.guaranteed} cores) and its pods do not fit; {s.name} goes to it, not to "
                                   f"{dst.name}", s.name, src.name, ps.name, _reclaim_deadline(cycle, s, src, ps))
        cycle.toward_targets[k] = (i, s, src, ps)
        _hand_over(cycle, s, dst, ps)


def _smallest_batch_node(spec: EnclaveSpec) -> int:
    """Cores of the smallest batch-only node: the least a relabel brings. ``validate`` saw batch-only cores."""
    return min(g.cores for g in spec.cluster.node_groups if g.role == NodeRole.BATCH_ONLY and g.count)


def lend_nodes(cycle: Cycle, commons: Commons, held: Held, room: float, *, lend: bool) -> None:
    """Phase 10 (BCS 5): claim the workers already on their way to HTCondor, give back the rest, then drain more
    if needed, never a worker where room is held for a waiting spawn (``held``). With ``lend`` False (pods mode)
    it only gives back workers a previous configuration took."""
    every = _in_flight_nodes(commons.not_ready_by_name)
    moved_before = {n.name for n in every if n.name in cycle.moved}
    in_flight = return_stuck_drains(cycle, commons, every)
    claim_of, lacking = claim_in_flight(cycle, in_flight) if lend else ({}, {})
    return_unclaimed(cycle, commons, in_flight, claim_of)
    return_for_notebooks(cycle, commons, in_flight, claim_of, lacking)
    if commons.short() > _EPS or not lend:
        return
    # A draining worker given back above no longer holds lending room (``lending_room`` counted it): else the drain
    # that replaces a stuck one waited for the next decision (the idempotence property, stop 48).
    room += sum(n.cores for n in every if n.name in cycle.moved and n.name not in moved_before)
    start_htcondor(cycle, in_flight, claim_of)
    drain_for_batch(cycle, commons, held, in_flight, claim_of, lacking, room)


def return_stuck_drains(cycle: Cycle, commons: Commons, in_flight: list[Node]) -> list[Node]:
    """Workers whose drain has not finished within ``drain_timeout_seconds`` (a disruption budget that never allows
    an eviction, a pod that does not stop) go back to the commons, as ``kubectl drain --timeout`` gives up: claimed,
    such a worker would hold its pool's share of the lending for ever and never start HTCondor. Returns the others."""
    timeout = cycle.spec.broker.drain_timeout_seconds
    left = []
    for node in in_flight:
        stuck = drain_overdue(node, cycle.now, timeout) and node.name not in cycle.moved
        if stuck and cycle.budget.take():
            _give_back_node(cycle, commons, node, f"{node.name}'s drain has not finished in {timeout:g} s "
                            f"({node.k8s_cores_to_move:g} cores of pods still there)")
        else:
            left.append(node)
    return left


def claim_in_flight(cycle: Cycle, in_flight: list[Node]) -> tuple[dict[str, PoolState], dict[str, int]]:
    """Which lending pool each worker on its way to HTCondor is for, highest priority first, each pool
    claiming while it lacks at least ``hysteresis`` of the worker and stays within its maximum; and the cores
    each pool still lacks after its claims."""
    hysteresis = cycle.spec.broker.hysteresis
    claim_of: dict[str, PoolState] = {}
    lacking: dict[str, int] = {}
    for ps in cycle.receivers:
        if ps.lend <= 0:
            continue
        want = _lacking(cycle, ps)
        coming = 0
        for node in in_flight:
            if want <= 0 or want < hysteresis * node.cores - _EPS or node.name in claim_of or node.name in cycle.moved:
                continue  # (moved: given back for a waiting spawn, ``_WholeWorkers``)
            if ps.standalone + ps.lent + coming + node.cores > ps.maximum:
                continue
            claim_of[node.name] = ps
            coming += node.cores
            want -= node.cores
        lacking[ps.name] = want
    return claim_of, lacking


def drain_overdue(node: Node, now: float, timeout: float) -> bool:
    """Whether ``node``'s drain has run ``timeout`` seconds and still has pods to evict (``return_stuck_drains``)."""
    return node.state == _DRAINING and node.k8s_cores_to_move > _EPS and now - node.since >= timeout


def _give_back_node(cycle: Cycle, commons: Commons, node: Node, why: str) -> None:
    """Return worker ``node`` to the commons. One whose drain is overdue is given up unfinished whatever else sends it
    back (waiting notebooks, no pool needing it), and marked so (``ReturnNode.drain_stuck``): what held it likely
    holds it still, and it is not drained again for ``drain_retry_seconds`` (a decision property, stop 55: one
    returned for a waiting spawn went unmarked, and could be drained again at once)."""
    cycle.moved.add(node.name)
    stuck = drain_overdue(node, cycle.now, cycle.spec.broker.drain_timeout_seconds)
    cycle.actions.append(ReturnNode(actor=cycle.actor, reason=why, node=node.name, drain_stuck=stuck))
    commons.free += node.cores  # back in the commons; its evicted pods no longer wait for room


def return_unclaimed(cycle: Cycle, commons: Commons, in_flight: list[Node], claim_of: dict[str, PoolState]) -> None:
    """Workers taken for batch that no pool claims go back once out of cooldown (also after a broker restart)."""
    for node in in_flight:
        if node.name not in claim_of and node.name not in cycle.moved and cycle.cool(node.since) \
                and cycle.budget.take():
            _give_back_node(cycle, commons, node, f"{node.name} was taken for batch but no pool needs it now")


def return_for_notebooks(cycle: Cycle, commons: Commons, in_flight: list[Node], claim_of: dict[str, PoolState],
                         lacking: dict[str, int]) -> None:
    """Waiting notebooks (or pods evicted with nowhere to go) come first: while the commons are short, return
    workers on their way to batch, cooldown or not, unclaimed ones first, then those of the lowest-priority
    pools. A pool whose claimed worker goes back lacks its cores again."""
    for node in sorted((n for n in in_flight if n.name not in cycle.moved),
                       key=lambda n: (n.name in claim_of, claim_of[n.name].priority if n.name in claim_of else 0,
                                      n.name)):
        if commons.short() <= _EPS:
            break
        if cycle.budget.take():
            owner = claim_of.pop(node.name, None)
            if owner is not None:
                lacking[owner.name] += node.cores
            _give_back_node(cycle, commons, node, f"{node.name} goes back: pods in the commons wait for "
                                                  f"{commons.reserve:g} cores of room")


def start_htcondor(cycle: Cycle, in_flight: list[Node], claim_of: dict[str, PoolState]) -> None:
    """BCS 5 step 2: a claimed worker that has drained (no Kubernetes pods left but those a drain leaves,
    ``Node.k8s_cores_daemons``) starts HTCondor for its pool."""
    for node in in_flight:
        owner = claim_of.get(node.name)
        if owner is None or node.name in cycle.moved:
            continue
        drained = node.state == _DRAINING and node.k8s_cores_to_move <= _EPS
        if drained and cycle.budget.take():
            cycle.moved.add(node.name)
            cycle.actions.append(StartHTCondor(actor=cycle.actor, reason=f"BCS 5: {node.name} is drained; "
                                               f"{owner.name} borrows {owner.lend} cores beyond its {owner.target} "
                                               f"standalone", node=node.name, pool=owner.name))


def drain_for_batch(cycle: Cycle, commons: Commons, held: Held, in_flight: list[Node],
                    claim_of: dict[str, PoolState], lacking: dict[str, int], room: float) -> None:
    """BCS 5 step 1: each lending pool, highest priority first, drains more ready workers for what it still
    lacks beyond its claims; none while a notebook spawn waits for the room held for it (``Held.placed``): the
    pods a drain evicts may take that room (the scheduler places them, and an emptied worker given back for a spawn
    is the emptiest), and the spawn would again fit nowhere."""
    if held.placed:
        return
    for ps in cycle.receivers:
        coming = sum(n.cores for n in in_flight if claim_of.get(n.name) is ps)
        left = _drain_for(cycle, commons, held, ps, lacking.get(ps.name, 0), coming, room)
        if left is None:
            return
        room = left


def _drain_for(cycle: Cycle, commons: Commons, held: Held, ps: PoolState, want: int, coming: int,
               room: float) -> float | None:
    """Drain workers for one pool: out of cooldown, without worker pods, without room held for a waiting spawn
    (``hold_room_for_spawns`` chose that worker because the spawn fits there: the commons-wide reserve alone would
    let the one worker it fits on go), none a waiting spawn is pinned to (``Held.pinned``), none whose lending
    was last given up unfinished less than ``drain_retry_seconds`` ago (given back, it is the emptiest: drained
    again after the cooldown, it evicted what landed there meanwhile and stuck on the same pod, every half hour),
    fewest Kubernetes cores first, while it lacks at least ``hysteresis`` of a worker, the lending room holds it,
    the pool stays within its maximum and the rest of the commons still hold the notebook reserve. The room left;
    None at the move limit."""
    hysteresis, retry = cycle.spec.broker.hysteresis, cycle.spec.broker.drain_retry_seconds
    cool, pod_cores_on, moved, for_spawns = cycle.cool, commons.pod_cores_on, cycle.moved, held.cores
    # Ties by name: the workers come in name order and the sort is stable.
    candidates = sorted((n for n in commons.ready_by_name if cool(n.since) and pod_cores_on.get(n.name, 0) == 0
                         and n.name not in moved and n.name not in for_spawns and n.name not in held.pinned
                         and cycle.now - n.drain_stuck >= retry), key=_K8S_CORES)
    for node in candidates:
        if want <= 0 or want < hysteresis * node.cores - _EPS or room < node.cores:
            break
        if ps.standalone + ps.lent + coming + node.cores > ps.maximum:
            continue
        # The node's pods move to the other workers; what is left must still hold the reserve.
        if commons.free - node.cores < commons.reserve - _EPS:
            continue
        if not cycle.budget.take():
            return None
        cycle.moved.add(node.name)
        cycle.actions.append(DrainNode(actor=cycle.actor, reason=f"BCS 5: {ps.name} needs {want} more cores; "
                                       f"{node.name} has {node.k8s_cores_to_move:g} cores of pods to move",
                                       node=node.name))
        commons.free -= node.cores
        want -= node.cores
        coming += node.cores
        room -= node.cores
    return room


def _room_for_spawns(spawns: Iterable[PendingSpawn], ready: list[Node], ready_names: set[str], lent: list[StartdT],
                     prio: dict[str, int], held_cores: dict[str, float], held_mem: dict[str, int],
                     freed: _Freed, whole: _WholeWorkers) -> int:
    """Give each waiting notebook spawn room on one worker: a pod needs all of its request on a single node,
    so free cores scattered over the commons do not help it. ``lent`` leaves out what this decision already
    gives back. A spawn that fits nowhere, even counting the pods already on their way out, gets the worker
    where the fewest worker pods, then the fewest busy cores, must go (lowest-priority pool and least busy
    pods first there) and those pods are released. Largest spawns first; each one's room is held, so the next
    spawn and this cycle's pod deployments do not count on it. ``ready``: the ready workers in name order
    (``Commons.ready_by_name``), ``ready_names`` their names. A spawn no ready worker could hold even without its
    pods is given a worker lent whole (``whole``). Returns how many spawns were given room.

    A worker lent whole that is back within this decision is ready for the next one, among the others by name: the
    spawns are placed again with it there, as the next decision will place them (first fit depends on the order;
    three spawns of 26, 24 and 24 cores went differently and a second worker went back a decision later). The pods
    a placement frees go only once it stands (``freed``): the one made again may not need them."""
    while True:
        back = whole.back_now()
        workers = sorted([*ready, *back], key=_NAME) if back else ready
        names = ready_names.union(n.name for n in back) if back else ready_names
        held_cores.clear()
        held_mem.clear()
        placed = _place_spawns(spawns, workers, names, lent, prio, held_cores, held_mem, freed, whole)
        if placed is not None:
            freed.release()
            return placed
        freed.forget()


def _place_spawns(spawns: Iterable[PendingSpawn], ready: list[Node], ready_names: set[str], lent: list[StartdT],
                  prio: dict[str, int], held_cores: dict[str, float], held_mem: dict[str, int],
                  freed: _Freed, whole: _WholeWorkers) -> int | None:
    """One placement of ``_room_for_spawns``: how many spawns were given room, None when a worker lent whole came
    back in this decision for one (they are placed again). The pods it frees are chosen (``freed``), not released."""
    use = _WorkerUse(ready, ready_names, lent)
    pods_on = use.pods_on

    def room(n: Node) -> tuple[float, int]:
        c, m = use.of(n)
        return (n.cores - c - held_cores.get(n.name, 0.0), n.memory_mib - m - held_mem.get(n.name, 0))

    def hold(n: Node, sp: PendingSpawn) -> None:
        held_cores[n.name] = held_cores.get(n.name, 0.0) + sp.cpu
        held_mem[n.name] = held_mem.get(n.name, 0) + sp.memory_mib

    placed = 0
    # While every spawn so far went by first fit to a worker before it by name, a worker back now changes none of their
    # places: it joins the ready ones in this pass (placing them all again cost a pass per worker back, quadratic).
    first_fits, last = True, ""
    for sp in sorted(spawns, key=lambda sp: (-sp.cpu, -sp.memory_mib)):
        # Only the workers it may go to (its node selector, affinity, tolerations): room freed elsewhere would not
        # place it.
        where = ready if sp.nodes is None else [n for n in ready if sp.admits(n.name)]
        # The first worker by name where it fits: the broker's own deployments only ever shrink other
        # workers' room, so deciding again picks the same one (the scheduler may still place it elsewhere).
        fits = next((n for n in where if room(n)[0] >= sp.cpu - _EPS and room(n)[1] >= sp.memory_mib), None)
        if fits is not None:
            hold(fits, sp)
            placed += 1
            last = max(last, fits.name)
            continue
        best: tuple[tuple[int, int], Node, list[StartdT]] | None = None
        for n in where:
            c, m = room(n)
            take: list[StartdT] = []
            for s in sorted(pods_on.get(n.name, []), key=lambda s: (prio.get(s.pool, _UNKNOWN_PRIORITY),
                                                                      s.busy_cores, s.name)):
                if c >= sp.cpu - _EPS and m >= sp.memory_mib:
                    break
                take.append(s)
                c += s.cores
                m += s.memory_mib
            cost = (len(take), sum(s.busy_cores for s in take))
            if take and c >= sp.cpu - _EPS and m >= sp.memory_mib and (best is None or cost < best[0]):
                best = (cost, n, take)
        if best is None:
            # No ready worker could hold it even without worker pods: one lent whole may, once back.
            back = whole.back_for(sp)
            if back is None:
                return placed  # the move limit: the next cycle goes on
            if back == _BACK_NOW:
                node = whole.came_back
                if node is None or not first_fits or node.name < last:
                    return None
                ready = sorted([*ready, node], key=_NAME)  # a copy: the caller's list is the commons'
                ready_names = ready_names | {node.name}
                use.joined(node)
                hold(node, sp)  # it came back because it holds this spawn
                placed += 1
                last = max(last, node.name)
                continue
            first_fits = False
            placed += back
            continue
        first_fits = False
        _, node, take = best
        for s in take:
            if not freed.choose(s, f"a notebook spawn of {sp.cpu:g} cores / {sp.memory_mib} MiB waits and fits on "
                                   f"{node.name} only without this pod"):
                return placed  # the move limit: the next cycle goes on
            use.without(node.name, s)
        hold(node, sp)
        placed += 1
    return placed


class _Freed:
    """The worker pods a placement of the spawns frees (``_place_spawns``). Each move is taken from the move limit
    when the placement chooses it, where releasing it took it before, so the limit ends a placement where it did; the
    pods are released once the placement stands (``release``). A placement made again with a worker back
    (``_room_for_spawns``) may not need them: its moves are given back to the limit (``forget``) and the new one
    chooses its own (a third review found 3 of 702 spawn moves on workers that then held no spawn)."""

    def __init__(self, cycle: Cycle, commons: Commons) -> None:
        self._cycle, self._commons = cycle, commons
        self._chosen: dict[str, tuple[StartdT, str]] = {}  # by name: a pod listed twice is one move

    def choose(self, s: StartdT, why: str) -> bool:
        """Pod ``s`` goes for a spawn, once the placement stands; False at the move limit."""
        if s.name not in self._chosen:
            if not self._cycle.budget.take():
                return False
            self._chosen[s.name] = (s, why)
        return True

    def release(self) -> None:
        """The placement stands: its pods go, in the order chosen."""
        for s, why in self._chosen.values():
            release(self._cycle, self._commons, s, why, counted=True)
        self._chosen.clear()

    def forget(self) -> None:
        """The placement is made again: none of its pods go, and their moves are the limit's again."""
        self._cycle.budget.left += len(self._chosen)
        self._chosen.clear()


_BACK_NOW = 2
"""``_WholeWorkers.back_for``: a worker came back within this decision for the spawn."""


@dataclass
class _Back:
    """A worker lent whole on its way back (``_WholeWorkers``): the cores and MiB spawns may still take there (it
    comes back with its own Kubernetes requests only, its daemonsets), and whether it is back in this very decision
    (else its jobs finish first)."""

    cores: float
    mem: float
    now: bool
    name: str

    @classmethod
    def of(cls, n: Node, *, now: bool) -> _Back:
        return cls(n.cores - n.k8s_cores_requested, n.memory_mib - n.k8s_memory_requested_mib, now, n.name)

    def holds(self, sp: PendingSpawn) -> bool:
        return self.cores >= sp.cpu - _EPS and self.mem >= sp.memory_mib and sp.admits(self.name)


class _WholeWorkers:
    """Workers lent whole to HTCondor (``lend_mode: nodes``), for the spawns no ready worker could hold
    (``_room_for_spawns``). A worker comes back with its own Kubernetes requests only (its daemonsets), so a spawn
    fits where those leave it room; each one's room is shared out among the spawns, largest first. What is back
    soonest serves first: a worker back in this decision (given back idle, or drained and done); then a worker on
    its way to HTCondor (draining for BCS 5, or HTCondor not started yet) goes back, as nothing runs there yet, or a
    lent worker where nothing runs; then a worker still draining (its jobs finish first), counted so that its drain
    is not repeated; last, the lent worker of the lowest-priority pool, the least busy, is drained. Made when first
    asked for: most spawns fit on a ready worker, and pods mode lends no whole worker."""

    def __init__(self, cycle: Cycle, commons: Commons, lent: list[StartdT], prio: dict[str, int]) -> None:
        self._cycle, self._commons, self._lent, self._prio = cycle, commons, lent, prio
        self.came_back: Node | None = None
        """The worker ``back_for`` last brought back within this decision, as the next decision sees it (ready)."""

    @cached_property
    def _room(self) -> dict[str, _Back]:
        """Per worker coming back, what its spawns may still take and whether it is back in this very decision."""
        cycle, nodes = self._cycle, self._nodes
        room = {}
        for s in self._commons.lent:
            if s.kind != _NODE or s.node not in nodes:
                continue
            grace = cycle.grace.get(s.pool)
            if s.draining:  # drained before: back now if ``finish_drains`` removes it in this decision
                room[s.node] = _Back.of(nodes[s.node], now=_drained_now(s, cycle.now, grace))
            elif s.name in cycle.moved:  # released earlier in this decision (``release``): removed at once or drained
                room[s.node] = _Back.of(nodes[s.node], now=s.busy_cores == 0 or grace == 0)
        return room

    @cached_property
    def _nodes(self) -> dict[str, Node]:
        return {n.name: n for n in self._commons.not_ready_by_name}

    @cached_property
    def _in_flight(self) -> list[Node]:
        return [n for n in _in_flight_nodes(self._commons.not_ready_by_name)
                if n.name not in self._cycle.moved and n.name not in self._room]

    @cached_property
    def _lendable(self) -> list[StartdT]:
        prio, flying = self._prio, {n.name for n in self._in_flight}
        return sorted((s for s in self._lent if s.kind == _NODE and not s.draining and s.node in self._nodes
                       and s.node not in flying), key=lambda s: (prio.get(s.pool, _UNKNOWN_PRIORITY), s.busy_cores,
                                                                 s.name))

    def back_now(self) -> list[Node]:
        """At the start of a placement: the workers back within this decision (``_room``'s), as the next decision sees
        them (ready); the room of those still on their way back is whole again (the placement shares it out anew).
        Empty without a worker that is not ready (pods mode, mostly): no pass over the borrowed startds."""
        if not self._commons.not_ready_by_name:
            return []
        for name, room in self._room.items():
            self._room[name] = _Back.of(self._nodes[name], now=room.now)
        return [replace(self._nodes[name], state=_READY) for name, room in self._room.items() if room.now]

    def back_for(self, sp: PendingSpawn) -> int | None:
        """``_BACK_NOW`` when a worker came back now for ``sp`` (the spawns are placed again, with it ready), 1 when a
        worker still on its way back holds it (counted, or drained now), 0 when none could; None when the move limit
        refused the move. Workers back now are among the ready ones (``back_now``)."""
        for step in (self._idle_back, self._counted_later, self._busy_back):
            where = step(sp)
            if where == "":
                return None
            if where is not None:
                room = self._room[where]
                if room.now:
                    self.came_back = replace(self._nodes[where], state=_READY)
                    return _BACK_NOW
                room.cores -= sp.cpu
                room.mem -= sp.memory_mib
                return 1
        return 0  # no worker could hold it: not the broker's to solve

    def _counted_later(self, sp: PendingSpawn) -> str | None:
        return next((name for name, room in self._room.items() if not room.now and room.holds(sp)), None)

    def _idle_back(self, sp: PendingSpawn) -> str | None:
        """A worker on its way to HTCondor, else a lent one where nothing runs, given back now for ``sp``."""
        cycle, commons = self._cycle, self._commons
        for i, n in enumerate(self._in_flight):
            if _Back.of(n, now=True).holds(sp):
                if not cycle.budget.take():
                    return ""
                del self._in_flight[i]
                _give_back_node(cycle, commons, n, f"{n.name} goes back: {self._why(sp)}")
                self._room[n.name] = _Back.of(n, now=True)
                return n.name
        return self._release(sp, idle=True)

    def _busy_back(self, sp: PendingSpawn) -> str | None:
        return self._release(sp, idle=False)

    def _release(self, sp: PendingSpawn, *, idle: bool) -> str | None:
        """The first lent worker (idle ones only, or any) that would hold ``sp``, released for it; "" at the move
        limit."""
        cycle = self._cycle
        for i, s in enumerate(self._lendable):
            n = self._nodes[s.node]
            back = _Back.of(n, now=s.busy_cores == 0 or cycle.grace.get(s.pool) == 0)
            if (idle and s.busy_cores) or s.name in cycle.moved or not back.holds(sp):
                continue
            if not release(cycle, self._commons, s, f"{self._why(sp)}; {n.name} would hold it"):
                return ""  # not moved (above): the move limit
            del self._lendable[i]
            self._room[n.name] = back
            return n.name
        return None

    @staticmethod
    def _why(sp: PendingSpawn) -> str:
        return f"a notebook spawn of {sp.cpu:g} cores / {sp.memory_mib} MiB waits and fits on no ready worker"


class _WorkerUse:
    """What requests and the worker pods that stay take on each ready worker (cores, MiB), for
    ``_room_for_spawns``. Counted when a worker is first looked at: most spawns fit on one of the first workers
    (of 13,000 ready ones in ``bench.broker_decide``), and counting every worker ahead cost more than the
    spawns' search. A worker listed twice counts the requests of its last entry, as a map by name reads them."""

    def __init__(self, ready: list[Node], ready_names: set[str], lent: Iterable[StartdT]) -> None:
        self.pods_on: dict[str, list[StartdT]] = {}
        for s in lent:
            if s.kind != _POD or s.draining or s.node not in ready_names:
                continue  # a draining pod leaves soon: its room already counts as free for a spawn
            on = self.pods_on.get(s.node)
            if on is None:
                self.pods_on[s.node] = [s]
            else:
                on.append(s)
        self._cores: dict[str, float] = {}
        self._mem: dict[str, int] = {}
        self._last = {n.name: n for n in ready} if len(ready_names) != len(ready) else None

    def of(self, n: Node) -> tuple[float, int]:
        name = n.name
        c = self._cores.get(name)
        if c is None:
            entry = n if self._last is None else self._last[name]
            c, m = entry.k8s_cores_requested, entry.k8s_memory_requested_mib
            for s in self.pods_on.get(name, ()):  # in the order observed: the sums as counted ahead before
                c += s.cores
                m += s.memory_mib
            self._cores[name], self._mem[name] = c, m
        return c, self._mem[name]

    def joined(self, n: Node) -> None:
        """Worker ``n`` is ready from now on (it came back within this decision)."""
        if self._last is not None:
            self._last[n.name] = n

    def without(self, node: str, s: StartdT) -> None:
        """Pod ``s`` (counted: its worker was looked at) leaves ``node``."""
        self._cores[node] -= s.cores
        self._mem[node] -= s.memory_mib
        self.pods_on[node].remove(s)


def _remove(s: StartdT, actor: str, reason: str, stuck: bool = False) -> Action:
    if s.kind == _POD:
        return DeletePods(actor, f"BCS 3: {reason}", (s.name,))  # positional, as in _deploy_for
    return ReturnNode(actor=actor, reason=f"reverse of BCS 5: {reason}", node=s.node, drain_stuck=stuck)


def _in_flight_nodes(workers: Iterable[Node]) -> list[Node]:
    """Workers on their way to HTCondor: those draining, in the order of ``workers`` (name order:
    ``Commons.not_ready_by_name``, the only ones that may be). A worker where HTCondor was started is listed with its
    startd, one not reported yet too (``Startd.ready`` False: the live backend lists its pod, the twin its startd, the
    projection the one it starts); a worker labelled for HTCondor with no startd at all is on its way back to the
    commons (its node pod deleted or lost, ``KubeCluster.finish_returns``), not to HTCondor: claimed, it was counted
    as coming capacity and given back again, a no-op, every cycle (review)."""
    return [n for n in workers if n.state == _DRAINING]


def _pods_that_fit(node: Node, cpu_left: float, pod_mem: int, cores: int, memory_mib: int) -> int:
    """Pods of ``cores`` and ``memory_mib`` that fit on ``node`` in ``cpu_left`` cores (its own less its requests and
    the pods there: ``_cores_left``, which the caller may have already) and in its memory beside its requests and
    ``pod_mem``: ``max(0, min(cpu_left // cores, mem_left // memory_mib))``."""
    if cpu_left < cores:
        return 0  # not one pod's cores
    # floor(cpu_left / cores) as int(cpu_left) // cores: the same whole number for cpu_left >= cores > 0, without
    # a float floor division (fmod and a division, for every worker, twice) and the conversion of its result.
    by_cpu = int(cpu_left) // cores
    by_mem = (node.memory_mib - node.k8s_memory_requested_mib - pod_mem) // memory_mib
    # Without the calls to min and max: this runs for every worker, twice.
    fits = by_mem if by_mem < by_cpu else by_cpu
    return fits if fits > 0 else 0


def _ordered(items: Iterable[_T], *keys: Callable[[_T], Any]) -> list[_T]:
    """``sorted(items, key=lambda x: (keys[0](x), keys[1](x), …))``, sorted on one key at a time from the last:
    Python's sort is stable, so each pass keeps the order of the ones before among its ties, and the result is
    the same. A sort on plain numbers or strings is two to three times faster than on tuples, which compare
    element by element through the generic comparison (40,000 workers or startds: several ms a sort)."""
    return _sort_by(list(items), keys)


def _sort_by(listed: list[_T], keys: tuple[Callable[[_T], Any], ...]) -> list[_T]:
    """``listed`` sorted in place as ``_ordered`` says, and returned."""
    for key in reversed(keys):
        listed.sort(key=key)
    return listed


def _in_order(listed: list[_T], keys: tuple[Callable[[_T], Any], ...], wanted: int,
              costly: tuple[int, Callable[[_T], bool]] | None = None) -> Iterator[_T]:
    """``_ordered(listed, *keys)``, reordering ``listed`` in place (the caller's own list, which it does not read
    again: a copy of thousands of startds costs its making and every garbage collection's pass over it). When the
    caller will likely take only ``wanted`` of many (the moves left under the limit), run by run (``_runs``; the
    list is then left sorted on the first key only): a loop the move limit ends early sorts the first run on the
    later keys, not everything.

    ``costly``: the position of a key that is costly to compute and never below 0.0 (a victim cost: work lost is
    never negative, ``enclave.broker.victims``), and what tells the items for which it is 0.0 and cheap. Then, from a
    heap, the others' is computed only when they reach the top (``_lazily``)."""
    if wanted * 8 >= len(listed):
        return iter(_sort_by(listed, keys))
    if costly is not None:
        return _lazily(listed, keys, *costly)
    return _runs(listed, keys)


def _runs(listed: list[_T], keys: tuple[Callable[[_T], Any], ...]) -> Iterator[_T]:
    """``_sort_by(listed, keys)`` one run at a time: ``listed`` sorted (stably) on the first key, then each run of
    items equal on it in the order of the later keys, taken the same way, when the caller reaches it. The same
    order: the sort on the first key keeps the list's order among its ties, and so does each run's on the rest.
    A heap of key tuples did this before: one tuple per item, whose making and the young garbage collections it set
    off were most of a give-back the move limit ends after 20 of 2,700 pods (``bench.broker_decide``)."""
    first, rest = keys[0], keys[1:]
    listed.sort(key=first)
    if not rest:
        yield from listed
        return
    firsts = [first(x) for x in listed]  # in order: a run ends where its key does, found by bisection
    start, end_of_all = 0, len(listed)
    while start < end_of_all:
        end = bisect_right(firsts, firsts[start], start)
        if end - start == 1:
            yield listed[start]
        else:
            yield from _runs(listed[start:end], rest)
        start = end


def _least_first(items: list[_T], keys: list[Any], wanted: int) -> Iterator[_T]:
    """``items`` by ``keys`` (computed ahead, one per item: a comprehension costs a third of a key function's
    calls), ties in the items' order; a heap when only ``wanted`` of many will likely be taken (``_in_order``)."""
    if wanted * 8 >= len(items):
        return map(items.__getitem__, sorted(range(len(items)), key=keys.__getitem__))
    return _popped(list(zip(keys, range(len(items)), items, strict=True)))


def _lazily(listed: list[_T], keys: tuple[Callable[[_T], Any], ...], costly: int,
            cheap: Callable[[_T], bool]) -> Iterator[_T]:
    """``listed`` by ``keys``, ties in its order, from a heap where an item not ``cheap`` enters with 0.0 in place
    of ``keys[costly]``, which is no more than its own. An item that reaches the top with that stand-in goes back
    with its own key; one that reaches the top with its own key is below every other item's stand-in, so below its
    key too, and comes out where a sort on the keys puts it. In ``bench.broker_decide`` the move limit takes 20 of
    2,700 pods that run jobs, and their victim costs (``enclave.broker.victims.deadline``) cost most of the
    decision."""
    # Every item enters with 0.0 in the costly place (a cheap item's own key there is 0.0); the heap's entries are
    # flat (keys, position, known, item), made in C: one tuple per item, not a key tuple and a list besides (2,700
    # of them, and the young collections they set off, cost more than the 20 moves the limit leaves).
    columns = [repeat(0.0) if j == costly else map(k, listed) for j, k in enumerate(keys)]
    heap = list(zip(*columns, range(len(listed)), map(cheap, listed), listed, strict=False))  # repeat() is endless
    heapq.heapify(heap)
    while heap:
        entry = heapq.heappop(heap)
        x = entry[-1]
        if entry[-2]:
            yield x
        else:
            heapq.heappush(heap, (*[k(x) for k in keys], entry[-3], True, x))


def _popped(heap: list[tuple[Any, int, _T]]) -> Iterator[_T]:
    heapq.heapify(heap)
    while heap:
        yield heapq.heappop(heap)[2]
