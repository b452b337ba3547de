"""Invariants of decide() over random observed states (hypothesis)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from enclave.broker.decide import (
    Commons,
    Plan,
    PoolState,
    _live,
    current_night,
    lending_pools,
    pending_notebook_cores,
    plan,
    pool_states,
    prewarm_cover,
)
from enclave.broker.effects import project
from enclave.broker.victims import pool_of
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
    RunningJob,
    Startd,
    StartdKind,
    StartHTCondor,
)
from enclave.spec import EnclaveSpec
from enclave.spec.models import LendMode, NodeRole, Surplus
from tests.broker.conftest import NOW, make_spec, mixed_specs, observed_states, overshoot_case, specs

# Shrinking these wide states takes minutes, so it is off: a failure prints the whole unshrunk case.
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                phases=[Phase.explicit, Phase.reuse, Phase.generate])


@st.composite
def cases(draw: st.DrawFn) -> tuple[EnclaveSpec, Observed]:
    """A spec and an observation of it, with each startd's running jobs reported (as the twin and live backends
    do) or not (a backend that tells only busy cores)."""
    spec = draw(specs())
    return spec, draw(observed_states(spec, jobs=draw(st.booleans())))


@st.composite
def mixed_cases(draw: st.DrawFn) -> tuple[EnclaveSpec, Observed]:
    """Batch-only nodes of two sizes and mostly no hysteresis (``conftest.mixed_specs``): one pool holds most of
    them and needs little, the others need a few small nodes' cores, which a large node overshoots (``cases``'
    nodes are all of 24 cores and its hundreds of jobs ask for every node). Some nodes run a few jobs of their
    pool, reported, or told as busy cores only."""
    spec = draw(mixed_specs())
    now, ages = NOW + draw(st.sampled_from([0.0, 10 * 3600.0])), st.sampled_from([0.0, 100.0, 1000.0, 100_000.0])
    pools = list(spec.pools)
    holder, jobs = draw(st.sampled_from(pools)), draw(st.booleans())
    nodes, startds = [], []
    for g in spec.groups(NodeRole.BATCH_ONLY):
        for i in range(1, g.count + 1):
            name = f"{g.name}-{i:03d}"
            down = draw(st.integers(0, 9)) == 0
            nodes.append(Node(name, g.name, g.role, g.cores, int(g.memory_gib * 1024),
                              state=NodeState.DOWN if down else NodeState.READY))
            pool = holder if draw(st.integers(0, 3)) else draw(st.sampled_from(pools))
            busy, since = draw(st.sampled_from([0, 0, 1, 4])), now - draw(ages)
            startds.append(Startd(name, name, StartdKind.STANDALONE, pool, g.cores, int(g.memory_gib * 1024),
                                  busy_cores=busy, since=since,
                                  jobs=tuple(RunningJob(1, since, pool) for _ in range(busy)) if jobs else ()))
    demand = {}
    for name in pools:
        running = sum(s.busy_cores for s in startds if s.pool == name)
        # Some queued for every pool: a pool with none counts only its jobs on its own nodes (``on_own_slots``),
        # whose documented follow-ups (``gave_its_own_jobs``) are ``cases``'.
        idle = draw(st.sampled_from([1, 2]) if name == holder else st.sampled_from([1, 4, 7, 8, 12, 20, 30]))
        demand[name] = PoolDemand(idle_jobs=idle, idle_cores=idle, running_jobs=running, running_cores=running)
    return spec, Observed(now=now, nodes=tuple(nodes), startds=tuple(startds), demand=demand)


def batch_node(name: str, pool: str, busy: int = 0, since: float = NOW - 100_000,
               job_start: float | None = None) -> tuple[Node, Startd]:
    """A batch-only node of 24 cores and 128 GiB, up long since, and its standalone startd in ``pool`` with ``busy``
    cores busy, last changed at ``since``; with ``job_start``, each busy core runs a reported one-core job of the
    pool started then (else the backend tells busy cores only)."""
    jobs = () if job_start is None else tuple(RunningJob(1, job_start, pool) for _ in range(busy))
    return (Node(name, "condor", NodeRole.BATCH_ONLY, 24, 128 * 1024, since=NOW - 100_000),
            Startd(name, name, StartdKind.STANDALONE, pool, 24, 128 * 1024, busy_cores=busy, since=since, jobs=jobs))


def _add(nodes: list[Node], startds: list[Startd], pair: tuple[Node, Startd]) -> None:
    nodes.append(pair[0])
    startds.append(pair[1])


@st.composite
def handovers(draw: st.DrawFn) -> tuple[EnclaveSpec, Observed]:
    """By day, the latency pool (prompt) runs its few jobs on ready borrowed pods and holds fewer standalone cores
    than its guarantee, which covers its need: the decision relabels other pools' busy nodes to it (their jobs run
    on: the pool drains, or vacates after its grace period) while its pods are surplus on paper — make before
    break's second step, which ``cases`` all but never reach (its demands are hundreds of jobs, the commons often
    short). Each node's jobs reported or not."""
    batch = draw(st.integers(2, 12))
    prompt = draw(st.integers(1, batch))
    others = [draw(st.integers(0, batch - prompt)) for _ in range(3)]
    while sum(others) > batch - prompt:
        others[others.index(max(others))] -= 1
    broker = {"cooldown_seconds": draw(st.sampled_from([0, 300, 900])),
              "hysteresis": draw(st.sampled_from([0.0, 0.25, 0.5, 1.0])),
              "max_moves_per_cycle": draw(st.sampled_from([2, 30])), "pod_cores": draw(st.sampled_from([4, 8])),
              "notebook_headroom_cores": 0, "max_lend_share": 1.0}
    workers = draw(st.integers(1, 2))
    spec = make_spec(workers=workers, batch=batch, guaranteed=(prompt, *others), maximum=(batch,) * 4, broker=broker)
    jobs = draw(st.booleans())
    now, old = NOW, NOW - 100_000.0
    nodes = [Node(f"kub-{i:03d}", "kub", NodeRole.WORKER, 48, 256 * 1024, since=old) for i in range(1, workers + 1)]
    held = draw(st.sampled_from([0, 0, 0, prompt - 1]))  # idle nodes of its own would cover its few jobs
    startds = []
    for i in range(1, batch + 1):
        pool = "prompt" if i <= held else draw(st.sampled_from(["drp", "user", "general"]))
        busy = 0 if pool == "prompt" else draw(st.sampled_from([0, 12, 24, 24, 24]))
        since = now - draw(st.sampled_from([100.0, 100_000.0, 100_000.0]))
        _add(nodes, startds, batch_node(f"condor-{i:03d}", pool, busy, since, since if jobs else None))
    pc = spec.broker.pod_cores
    for k in range(1, draw(st.integers(1, 2)) + 1):
        # Some still starting (their startd has not joined): they run nothing yet, so they cover nothing of the need
        # (a mutant counting them as ready passed every property, 2026-12-03).
        ready = draw(st.sampled_from([True, True, False]))
        busy = draw(st.sampled_from([0, 1, pc, pc])) if ready else 0
        startds.append(Startd(f"htcondor-kub-001-{k}", "kub-001", StartdKind.POD, "prompt", pc, 8192, busy_cores=busy,
                              since=old if ready else now - 30.0, ready=ready,
                              jobs=tuple(RunningJob(1, old, "prompt") for _ in range(busy)) if jobs else ()))
    running = {p: sum(s.busy_cores for s in startds if s.pool == p) for p in ("prompt", "drp", "user", "general")}
    idle = {"prompt": draw(st.sampled_from([0, 1, 8]))} | {p: draw(st.sampled_from([0, 8, 24, 400]))
                                                                for p in ("drp", "user", "general")}
    # MiB per one-core job: unknown, or 8 GiB, where memory binds before cores (5.3 GiB a core on these nodes).
    mib = {p: draw(st.sampled_from([0, 8192])) for p in running}
    demand = {p: PoolDemand(idle_jobs=idle[p], idle_cores=idle[p], running_jobs=running[p], running_cores=running[p],
                            idle_memory_mib=idle[p] * mib[p], running_memory_mib=running[p] * mib[p])
              for p in running}
    return spec, Observed(now=now, nodes=tuple(nodes), startds=tuple(startds), demand=demand)


def _down(o: Observed) -> set[str]:
    """Names of the nodes that are down: what runs there holds nothing."""
    return {n.name for n in o.nodes if n.state == NodeState.DOWN}


def _held(o: Observed, standalone_only: bool = False) -> dict[str, int]:
    """Cores each pool holds in startds that are up and not on their way out."""
    down = _down(o)
    held: Counter[str] = Counter()
    for s in o.startds:
        if standalone_only and s.kind != StartdKind.STANDALONE:
            continue
        if not s.draining and s.node not in down:
            held[s.pool] += s.cores
    return dict(held)


def _memory_need(spec: EnclaveSpec, d: PoolDemand, maximum: int) -> int:
    """What a pool that borrows nothing needs, capped at its maximum: docs/broker.md, "Memory-aware": "the larger of
    the jobs' cores and their memory ... counted in cores of the thinnest shape the pool may run on — MiB per core
    of the batch-only nodes". HTCondor matches a job only where its cores and its memory both fit."""
    thinnest = min(g.memory_gib * 1024 / g.cores for g in spec.groups(NodeRole.BATCH_ONLY))
    memory = d.running_memory_mib + d.idle_memory_mib
    return min(maximum, max(d.running_cores + d.idle_cores, math.ceil(memory / thinnest - 1e-9)))


def _ready_borrowed(o: Observed, pool: str) -> int:
    """Cores of ``pool``'s borrowed startds (pods, whole workers) that have joined it and are not on their way
    out: only these run its jobs (docs/broker.md, "Make before break")."""
    return sum(s.cores for s in o.startds
               if s.pool == pool and s.kind != StartdKind.STANDALONE and s.ready and not s.draining)


def _commons_free(nodes: Iterable[Node], pods: Iterable[Startd]) -> float:
    """Cores the workers among ``nodes`` have beside their Kubernetes requests and ``pods``."""
    return sum(n.cores - n.k8s_cores_requested for n in nodes if n.role == NodeRole.WORKER) - sum(
        s.cores for s in pods)


def _targets(a: Action) -> list[str]:
    match a:
        case Relabel(startd=s) | DrainStartd(startd=s):
            return [s]
        case DeletePods(pods=pods):
            return list(pods)
        case DeployPods(node=n) | DrainNode(node=n) | StartHTCondor(node=n) | ReturnNode(node=n):
            return [n]
    raise AssertionError(a)


def _promised(ps: PoolState, covered: bool = False) -> int:
    """What a pool with work is promised: a latency pool its whole guarantee, unless the commons cover it tonight
    (``covered``; docs/broker.md step 2, "The pre-warm gives way to the measured need": then its need up to its
    guarantee); another pool its guarantee up to its need, lending the rest until it asks (Kueue: unused nominal
    quota is borrowed within the cohort and reclaimed on demand)."""
    return ps.guaranteed if ps.latency and not covered else min(ps.guaranteed, ps.need)


def _covered(spec: EnclaveSpec, o: Observed, p: Plan) -> dict[str, int]:
    """What the commons cover of each pool's need as the decision found it (``prewarm_cover`` on the figures
    before its phases changed what is held)."""
    fresh, _ = pool_states(spec, o, p.night)
    return prewarm_cover(spec, o, fresh, set(lending_pools(spec)), night=p.night)


def _short_of_a_pod(spec: EnclaveSpec, p: Plan, name: str, held: int, covered: dict[str, int]) -> bool:
    """Whether ``name`` is one the commons cover tonight that holds less than its promise only by less than
    ``hysteresis`` of one of its pods. Its standalone target is its promise less the cover (docs/broker.md step 2,
    "The pre-warm gives way to the measured need"; ``prewarm_cover``), the covered part is borrowed as pods, and
    "a pool borrows a pod when it lacks ``hysteresis`` of one" (docs/broker.md, "Hysteresis on give-back";
    ``_deploy_for``): what is left short of the cover is less than that. ``covered``: ``_covered``."""
    if not covered.get(name):
        return False
    ps = p.pools[name]
    pod_cores = ps.pod[0] if ps.pod else spec.broker.pod_cores
    return _promised(ps, covered=True) - held < spec.broker.hysteresis * pod_cores


@st.composite
def starting_pods(draw: st.DrawFn) -> tuple[EnclaveSpec, Observed]:
    """By day prompt, guaranteed some of the batch nodes, holds fewer and has pods that have not joined yet, whose
    cores alone would cover its jobs; the other pools hold the rest, idle or busy, all relabelled within the
    cooldown, so only a promise (a pool at risk: its jobs need more than it runs) may take one now. Some pods were
    made longer ago than ``start_timeout_seconds`` (600 s): they are given up."""
    batch = draw(st.integers(3, 8))
    prompt = draw(st.integers(1, batch - 1))
    spec = make_spec(workers=1, batch=batch, guaranteed=(prompt, 0, 0, 0), maximum=(batch,) * 4,
                     broker={"cooldown_seconds": 900, "pod_cores": 8, "max_lend_share": 1.0,
                             "notebook_headroom_cores": 0, "hysteresis": draw(st.sampled_from([0.0, 0.5]))})
    held = draw(st.integers(0, prompt - 1))
    nodes = [Node("kub-001", "kub", NodeRole.WORKER, 48, 256 * 1024, since=NOW - 100_000)]
    startds = []
    for i in range(1, batch + 1):
        pool = "prompt" if i <= held else draw(st.sampled_from(["drp", "user", "general"]))
        busy = 0 if pool == "prompt" else draw(st.sampled_from([0, 24]))
        _add(nodes, startds, batch_node(f"condor-{i:03d}", pool, busy, since=NOW - 100, job_start=NOW - 100))
    pods = draw(st.integers(1, 3))
    startds += [Startd(f"htcondor-kub-001-{k}", "kub-001", StartdKind.POD, "prompt", 8, 8192,
                       since=NOW - draw(st.sampled_from([30.0, 30.0, 700.0])), ready=False) for k in range(1, pods + 1)]
    idle = draw(st.integers(1, 8 * pods))
    running = {p: sum(s.busy_cores for s in startds if s.pool == p) for p in ("drp", "user", "general")}
    demand = {"prompt": PoolDemand(idle_jobs=idle, idle_cores=idle)} | {
        p: PoolDemand(running_jobs=r, running_cores=r, idle_jobs=draw(st.sampled_from([0, 24])),
                      idle_cores=0) for p, r in running.items()}
    return spec, Observed(now=NOW, nodes=tuple(nodes), startds=tuple(startds), demand=demand)


@st.composite
def memory_bound(draw: st.DrawFn) -> tuple[EnclaveSpec, Observed]:
    """The user pool, guaranteed some batch nodes and holding none, queues fewer one-core jobs than its guarantee's
    cores, each of 8 GiB: their memory needs half as many cores again (5.3 GiB a core on these nodes), so its need
    in cores is set by memory. The other pools hold every node, idle or busy, with little or no work."""
    batch = draw(st.integers(3, 8))
    user = draw(st.integers(1, batch - 1))
    spec = make_spec(workers=0, batch=batch, guaranteed=(0, 0, user, 0), maximum=(batch,) * 4,
                     broker={"cooldown_seconds": draw(st.sampled_from([0, 900])),
                             "hysteresis": draw(st.sampled_from([0.0, 0.5]))})
    nodes: list[Node] = []
    startds: list[Startd] = []
    for i in range(1, batch + 1):
        pool = draw(st.sampled_from(["drp", "general"]))
        _add(nodes, startds, batch_node(f"condor-{i:03d}", pool, draw(st.sampled_from([0, 0, 24])),
                                        job_start=NOW - 100))
    idle = draw(st.integers(1, 24 * user - 1))
    running = {p: sum(s.busy_cores for s in startds if s.pool == p) for p in ("drp", "general")}
    demand = {"prompt": PoolDemand(), "user": PoolDemand(idle_jobs=idle, idle_cores=idle, idle_memory_mib=idle * 8192)}
    demand |= {p: PoolDemand(running_jobs=r, running_cores=r) for p, r in running.items()}
    return spec, Observed(now=NOW, nodes=tuple(nodes), startds=tuple(startds), demand=demand)


@FAST
@given(case=cases(), handover=handovers(), starting=starting_pods(), memory=memory_bound())
def test_guarantees_kept_while_a_pool_has_work(case: tuple[EnclaveSpec, Observed],
                                               handover: tuple[EnclaveSpec, Observed],
                                               starting: tuple[EnclaveSpec, Observed],
                                               memory: tuple[EnclaveSpec, Observed]) -> None:
    """A pool with work below what it is promised could take nothing without breaking another promise or a cap.
    ``handover``: a latency pool with few jobs, some of its pods still starting, where whether it is at risk turns
    on which of its pods have joined; ``case``'s hundreds of queued jobs always are. ``starting``: only its pods
    that have not joined would cover its jobs (``starting_pods``). ``memory``: a throughput pool whose need is set
    by its jobs' memory (``memory_bound``)."""
    for c in (case, handover, starting, memory):
        _guarantees_kept(*c)


def _guarantees_kept(spec: EnclaveSpec, o: Observed) -> None:
    p = plan(spec, o)
    result = project(o, p.actions)
    after, standalone = _held(result), _held(result, standalone_only=True)
    covered, lenders = _covered(spec, o, p), set(lending_pools(spec))
    for name, ps in p.pools.items():
        if not ps.has_work or name not in spec.pools:
            continue
        promise = _promised(ps, bool(covered.get(name)))
        if not ps.latency and name not in lenders and o.demand[name].idle_jobs:
            # Its guarantee up to what its jobs need, memory included (counted here, not read from ``ps.need``:
            # a mutant that left memory out of the need passed every property, 2026-12-03).
            promise = min(ps.guaranteed, _memory_need(spec, o.demand[name], ps.maximum))
        # An uncovered latency pool keeps its promise with what runs its jobs: its standalone startds and the
        # borrowed ones that have joined ("only the pods that run (``ready_lent``) cover it", docs/broker.md).
        ready = standalone.get(name, 0) + _ready_borrowed(result, name)
        if (ready if ps.latency and not covered.get(name) else after.get(name, 0)) >= promise or p.capped:
            continue
        if ps.latency and max(_running(spec, o, name), _running(spec, result, name)) >= ps.now_need:
            # A latency pool is promised at once only while its jobs need more than it runs, so it is owed more
            # only if it ran less before the decision and still does after it (a node relabelled to it runs the
            # donor's jobs until they end); otherwise it moves toward its guarantee with cooldown (docs/broker.md,
            # "Cooldown only bypassed at risk"). Counted here, not by ``PoolState.urgent``: a mutant counting
            # starting pods there passed, and the rule itself counted a donor's busy node as ready (2026-12-03).
            continue
        if _short_of_a_pod(spec, p, name, after.get(name, 0), covered):
            continue
        # Below its guarantee only when no startd could be taken without breaking another promise or a cap.
        moved = {a.startd for a in p.actions if isinstance(a, Relabel)}
        for s in result.startds:
            q = p.pools.get(s.pool)
            if s.pool == name or s.draining or s.kind != StartdKind.STANDALONE or q is None or s.name in moved:
                continue
            if any(n.name == s.node and n.state == NodeState.DOWN for n in o.nodes):
                continue
            # A latency pool gives up no standalone startd before what replaces it runs (make before break),
            # not even for another pool's promise: its floor is kept like a guarantee.
            keep = max(q.guaranteed if q.has_work else 0, q.floor())
            fits = after.get(name, 0) + s.cores <= ps.maximum
            assert not (fits and standalone.get(s.pool, 0) - s.cores >= keep and standalone[s.pool] > q.target), (
                f"{name} holds {after.get(name, 0)} < promise {promise} although {s.name} "
                f"({s.pool}) could be taken: {p.actions}; pools {p.pools}; base {p.standalone_cores}")


@FAST
@given(cases())
def test_a_donor_with_work_keeps_its_promise(case: tuple[EnclaveSpec, Observed]) -> None:
    """docs/broker.md, Relabel: "The donor pool never drops below its own guarantee" (what it is promised: its
    guarantee up to its need, a latency pool its whole guarantee), not even in the make-up, where a donor "gives down
    to its target, which still holds what the donor is promised". The check above asks only whether a pool left
    short could have taken something; a promise that robbed a donor went unseen (mutation check, stop 53)."""
    spec, o = case
    p = plan(spec, o)
    covered = _covered(spec, o, p)
    result = project(o, p.actions)
    # By ``standalone_only``: what each pool holds before and after the decision.
    held = {only: (_held(o, standalone_only=only), _held(result, standalone_only=only)) for only in (False, True)}
    for a in p.actions:
        if not isinstance(a, Relabel) or a.from_pool not in p.pools or not p.pools[a.from_pool].has_work:
            continue
        ps, cover = p.pools[a.from_pool], bool(covered.get(a.from_pool))
        # A pool the commons cover keeps its promise in pods and startds together (its standalone target is the
        # promise less the cover): counting startds alone refused a covered prompt giving its node to DRP while
        # its ready pod held the whole promise (a case the hypothesis database kept, 2026-12-03).
        before, after = (h.get(a.from_pool, 0) for h in held[not cover])
        if after >= min(before, _promised(ps, cover)) or _short_of_a_pod(spec, p, a.from_pool, after, covered):
            continue
        raise AssertionError((a.from_pool, before, after, p.actions, p.pools))


@FAST
@given(cases())
def test_no_double_assignment_and_no_node_lost(case: tuple[EnclaveSpec, Observed]) -> None:
    spec, o = case
    r = project(o, plan(spec, o).actions)
    names = [s.name for s in r.startds]
    assert len(names) == len(set(names))
    roles = {n.name: n.role for n in r.nodes}
    states = {n.name: n.state for n in r.nodes}
    per_node: Counter[str] = Counter(s.node for s in r.startds if s.kind != StartdKind.POD)
    for n, role in roles.items():
        if role == NodeRole.BATCH_ONLY:
            assert per_node[n] == 1, f"batch node {n} must be in exactly one pool"
        else:
            assert per_node[n] <= 1
    for s in r.startds:
        assert s.pool in spec.pools or s.pool in {x.pool for x in o.startds}
        if s.kind == StartdKind.POD:
            assert states[s.node] == NodeState.READY, f"pod {s.name} on a {states[s.node]} node"
        if s.kind == StartdKind.NODE:
            assert states[s.node] == NodeState.HTCONDOR


@st.composite
def memory_lendings(draw: st.DrawFn) -> tuple[EnclaveSpec, Observed]:
    """By day prompt holds two of four batch nodes (DRP, guaranteed the other two, runs them full) and its queued jobs
    of 1 core and 2 or 8 GiB need more: it borrows pods
    shaped to its jobs (8 GiB jobs: 8 cores on 64 GiB) on workers whose requests take 1, 4 or 6 GiB a core (notebooks),
    where memory runs out before cores. ``cases`` deploys on such a worker too seldom: a mutant fitting pods by cores
    alone passed on most seeds (2026-12-03)."""
    workers = draw(st.integers(1, 3))
    spec = make_spec(workers=workers, batch=4, guaranteed=(2, 2, 0, 0), maximum=(4, 2, 2, 2),
                     broker={"cooldown_seconds": 0, "max_lend_share": 1.0, "notebook_headroom_cores": 0,
                             "pod_cores": 8, "pod_memory_mib": 32 * 1024})
    nodes, startds = [], []
    for i in range(1, workers + 1):
        req = draw(st.integers(0, 40))
        nodes.append(Node(f"kub-{i:03d}", "kub", NodeRole.WORKER, 48, 256 * 1024, k8s_cores_requested=float(req),
                          k8s_memory_requested_mib=req * draw(st.sampled_from([1024, 4096, 6144])), since=NOW - 1000))
    for i in (1, 2, 3, 4):
        _add(nodes, startds, batch_node(f"condor-00{i}", "prompt" if i < 3 else "drp", busy=24))
    mib, idle = draw(st.sampled_from([2048, 8192])), draw(st.sampled_from([8, 40, 200]))
    demand = {"prompt": PoolDemand(idle_jobs=idle, idle_cores=idle, running_jobs=48, running_cores=48,
                                   idle_memory_mib=idle * mib, running_memory_mib=48 * mib),
              "drp": PoolDemand(running_jobs=48, running_cores=48), "user": PoolDemand(), "general": PoolDemand()}
    return spec, Observed(now=NOW, nodes=tuple(nodes), startds=tuple(startds), demand=demand)


@FAST
@given(case=cases(), lending=memory_lendings())
def test_memory_new_pods_fit_their_worker_and_their_pools_jobs(case: tuple[EnclaveSpec, Observed],
                                                               lending: tuple[EnclaveSpec, Observed]) -> None:
    """Memory (issue 15, item 2). Each worker given pods by a decision holds them next to what Kubernetes requests
    there and the other worker pods, in cores and in memory: kube-scheduler binds a pod only to a node whose
    allocatable resources hold its requests (NodeResourcesFit,
    https://kubernetes.io/docs/concepts/scheduling-eviction/kube-scheduler/#kube-scheduler-implementation). And
    each pod's shape fits its pool's jobs (docs/broker.md, "Pods fitted to the pool's jobs"): HTCondor starts a
    job only where its RequestCpus and RequestMemory both fit (HTCondor manual, "Submitting a job:
    requirements"), so a pod has memory for a job on each of its cores and a core for the memory of each job it
    holds — within the largest and widest worker. ``lending``: ``memory_lendings``."""
    _new_pods_fit(*case)
    _new_pods_fit(*lending)


def _new_pods_fit(spec: EnclaveSpec, o: Observed) -> None:
    p = plan(spec, o)
    after = project(o, p.actions)
    deployed = [a for a in p.actions if isinstance(a, DeployPods)]
    nodes = {n.name: n for n in after.nodes}
    for name in {a.node for a in deployed}:
        n, pods = nodes[name], [s for s in after.startds if s.node == name and s.kind == StartdKind.POD]
        assert n.k8s_cores_requested + sum(s.cores for s in pods) <= n.cores, (name, pods)
        assert n.k8s_memory_requested_mib + sum(s.memory_mib for s in pods) <= n.memory_mib, (name, pods)
    workers = [n for n in o.nodes if n.role == NodeRole.WORKER]
    for a in deployed:
        d = o.demand[a.pool]
        cores, mib = d.running_cores + d.idle_cores, d.running_memory_mib + d.idle_memory_mib
        if cores <= 0 or mib <= 0:
            continue  # the jobs' memory per core is not known: the spec's shape
        per_core = mib / cores
        assert a.memory_mib_per_pod >= min(max(n.memory_mib for n in workers), a.cores_per_pod * per_core), a
        assert a.cores_per_pod >= min(max(n.cores for n in workers), a.memory_mib_per_pod // per_core), a


@st.composite
def borrowings(draw: st.DrawFn) -> tuple[EnclaveSpec, Observed]:
    """By day prompt, which may borrow, is guaranteed some batch nodes and the other pools' guarantees hold the rest
    (each runs its nodes full, with more queued): what prompt needs beyond its guarantee it borrows as worker pods.
    Its maximum mostly a node above its guarantee, pods of 5, 10, 16 or 20 cores (none divides a 24-core node, so the
    last pod toward its need may cross its maximum), a lending share that binds or does not, hysteresis that may hold
    a pod back, pods of its own borrowed already (some starting, some draining), workers with requests. ``cases``
    reaches the lending phase with room to spare too seldom: three one-line bugs in it (the maximum, the lending share
    and the hysteresis left out) passed every property (2026-12-03)."""
    batch = draw(st.integers(2, 6))
    prompt = draw(st.integers(1, batch - 1))
    drp = draw(st.integers(0, batch - prompt))
    user = draw(st.integers(0, batch - prompt - drp))
    others = (drp, user, batch - prompt - drp - user)
    top = min(batch, prompt + draw(st.sampled_from([1, 1, 2, batch])))  # mostly where its need meets its maximum
    pc = draw(st.sampled_from([5, 10, 16, 20]))
    broker = {"cooldown_seconds": draw(st.sampled_from([0, 300])), "hysteresis": draw(st.sampled_from([0.0, 0.25,
                                                                                                      0.5, 1.0])),
              "max_lend_share": draw(st.sampled_from([0.1, 0.25, 1.0, 1.0])), "pod_cores": pc,
              "notebook_headroom_cores": draw(st.sampled_from([0, 8]))}
    workers = draw(st.integers(1, 3))
    spec = make_spec(workers=workers, batch=batch, guaranteed=(prompt, *others), maximum=(top, batch, batch, batch),
                     broker=broker)
    old = NOW - 100_000.0
    nodes = [Node(f"kub-{i:03d}", "kub", NodeRole.WORKER, 48, 256 * 1024, since=old,
                  k8s_cores_requested=(req := float(draw(st.sampled_from([0, 0, 8, 24, 40])))),
                  k8s_memory_requested_mib=int(req * 1024)) for i in range(1, workers + 1)]
    startds: list[Startd] = []
    owners = ["prompt"] * prompt + [p for p, n in zip(("drp", "user", "general"), others, strict=True)
                                    for _ in range(n)]
    for i, pool in enumerate(owners, 1):
        _add(nodes, startds, batch_node(f"condor-{i:03d}", pool, busy=24))
    for k in range(1, draw(st.sampled_from([0, 0, 1, 2])) + 1):
        ready, draining = draw(st.sampled_from([True, True, False])), draw(st.integers(0, 4)) == 0
        startds.append(Startd(f"htcondor-kub-001-{k}", "kub-001", StartdKind.POD, "prompt", pc, 8192,
                              busy_cores=pc if ready else 0, since=old if ready else NOW - 30.0, ready=ready,
                              draining=draining))
    running = {p: sum(s.busy_cores for s in startds if s.pool == p) for p in ("prompt", "drp", "user", "general")}
    # What prompt needs beyond its standalone cores: none, a fraction of a pod, or some pods and a fraction.
    beyond = draw(st.sampled_from([0, 1, pc // 4, pc // 2, pc - 1, pc + 1, 2 * pc + pc // 2, 5 * pc, 5 * pc]))
    idle = {"prompt": max(0, 24 * prompt + beyond - running["prompt"]), "drp": 400, "user": 400, "general": 400}
    demand = {p: PoolDemand(idle_jobs=idle[p], idle_cores=idle[p], running_jobs=running[p], running_cores=running[p])
              for p in running}
    return spec, Observed(now=NOW, nodes=tuple(nodes), startds=tuple(startds), demand=demand)


@st.composite
def surplus_pods(draw: st.DrawFn) -> tuple[EnclaveSpec, Observed]:
    """By day prompt, guaranteed two batch nodes that it holds full, has one to four ready pods of 5, 8, 10 or 16
    cores on a roomy commons and needs some of them: from one core to all of them beyond its nodes, so what it holds
    beyond what it should borrow falls often between one pod and one pod and its hysteresis (0.25, 0.5 or 1), where
    the give-back hysteresis decides. ``borrowings`` lands there in few examples (a mutant ignoring the give-back
    hysteresis passed the properties at stop 55)."""
    pc = draw(st.sampled_from([5, 8, 10, 16]))
    pods = draw(st.integers(1, 4))
    spec = make_spec(workers=2, batch=4, guaranteed=(2, 2, 0, 0), maximum=(4, 4, 4, 4),
                     broker={"cooldown_seconds": 0, "hysteresis": draw(st.sampled_from([0.25, 0.5, 1.0])),
                             "max_lend_share": 1.0, "pod_cores": pc, "notebook_headroom_cores": 0})
    old = NOW - 100_000.0
    nodes = [Node(f"kub-{i:03d}", "kub", NodeRole.WORKER, 48, 256 * 1024, since=old) for i in (1, 2)]
    startds: list[Startd] = []
    for i, pool in enumerate(("prompt", "prompt", "drp", "drp"), 1):
        _add(nodes, startds, batch_node(f"condor-{i:03d}", pool, busy=24))
    beyond = draw(st.integers(1, pods * pc))
    busy = draw(st.integers(0, beyond // pc))  # pods running prompt's jobs, which the rest of its need waits for
    startds += [Startd(f"htcondor-kub-001-{k}", "kub-001", StartdKind.POD, "prompt", pc, pc * 4096,
                       busy_cores=pc if k <= busy else 0, since=old) for k in range(1, pods + 1)]
    idle = beyond - busy * pc
    demand = {"prompt": PoolDemand(idle_jobs=idle, idle_cores=idle, running_jobs=48 + busy * pc,
                                   running_cores=48 + busy * pc),
              "drp": PoolDemand(running_jobs=48, running_cores=48, idle_jobs=400, idle_cores=400)}
    return spec, Observed(now=NOW, nodes=tuple(nodes), startds=tuple(startds), demand=demand)


@st.composite
def notebook_reclaims(draw: st.DrawFn) -> tuple[EnclaveSpec, Observed]:
    """By day notebooks wait for more room than the commons have free, and prompt, the user pool and the general
    pool (priorities 100, 30, 10), all three lending pools (``broker.lend_to``), borrow one to three 8-core pods
    each, idle or busy, on one or two workers as far as they hold them; each needs all it borrows and more (DRP's
    guarantee is every batch node), so only the notebooks take pods back."""
    workers = draw(st.integers(1, 2))
    spec = make_spec(workers=workers, batch=2, guaranteed=(0, 2, 0, 0), maximum=(2, 2, 2, 2),
                     broker={"cooldown_seconds": 0, "max_lend_share": 1.0, "pod_cores": 8,
                             "notebook_headroom_cores": 0, "lend_to": ["prompt", "user", "general"]})
    old = NOW - 100_000.0
    nodes = [Node(f"kub-{i:03d}", "kub", NodeRole.WORKER, 48, 256 * 1024, since=old,
                  k8s_cores_requested=(req := float(draw(st.sampled_from([0, 8, 16])))),
                  k8s_memory_requested_mib=int(req * 1024)) for i in range(1, workers + 1)]
    startds: list[Startd] = []
    for i in (1, 2):
        _add(nodes, startds, batch_node(f"condor-{i:03d}", "drp", busy=24))
    running: Counter[str] = Counter()
    room = {n.name: int(n.cores - n.k8s_cores_requested) // 8 for n in nodes if n.role == NodeRole.WORKER}
    for pool in draw(st.permutations(["prompt", "user", "general"])):  # once the workers are full, the last go without
        for _ in range(draw(st.integers(1, 3))):
            worker = next((w for w, left in room.items() if left), None)
            if worker is None:
                break
            room[worker] -= 1
            busy = draw(st.sampled_from([0, 8]))
            running[pool] += busy
            startds.append(Startd(f"htcondor-{worker}-{pool}-{room[worker]}", worker, StartdKind.POD, pool, 8, 8192,
                                  busy_cores=busy, since=old))
    free = _commons_free(nodes, (s for s in startds if s.kind == StartdKind.POD))
    demand = {p: PoolDemand(idle_jobs=200, idle_cores=200, running_jobs=running[p], running_cores=running[p])
              for p in ("prompt", "user", "general")} | {"drp": PoolDemand(running_jobs=48, running_cores=48)}
    return spec, Observed(now=NOW, nodes=tuple(nodes), startds=tuple(startds), demand=demand,
                          notebook_pending_cores=max(free, 0) + draw(st.sampled_from([1, 8, 20, 40])))


def _removed(o: Observed, p: Plan) -> set[str]:
    """Borrowed startds the decision removes: pods deleted, and those of workers returned."""
    gone = {pod for a in p.actions if isinstance(a, DeletePods) for pod in a.pods}
    returned = {a.node for a in p.actions if isinstance(a, ReturnNode)}
    return gone | {s.name for s in o.startds if s.kind == StartdKind.NODE and s.node in returned}


@FAST
@given(case=cases(), starting=starting_pods())
def test_a_borrowed_startd_that_never_joined_is_given_up(case: tuple[EnclaveSpec, Observed],
                                                         starting: tuple[EnclaveSpec, Observed]) -> None:
    """``broker.start_timeout_seconds`` (600 s, as a Deployment's progressDeadlineSeconds): a borrowed startd that has
    not joined its pool that long after its pod was made, its pod not running, is given up — its pod deleted, or its
    worker returned, or drained first if it reports busy cores (``release``) — so its room and its pool's lending are
    free again. Only the move limit may leave it. ``starting``: ``starting_pods``."""
    _given_up_starts(*case)
    _given_up_starts(*starting)


def _given_up_starts(spec: EnclaveSpec, o: Observed) -> None:
    p = plan(spec, o)
    down = _down(o)
    due = {s.name for s in o.startds if s.kind != StartdKind.STANDALONE and not s.ready and not s.draining
           and not s.pod_up and s.node not in down and o.now - s.since >= spec.broker.start_timeout_seconds}
    given_up = _removed(o, p) | {a.startd for a in p.actions if isinstance(a, DrainStartd)}
    assert due <= given_up or p.capped, (due - given_up, p.actions)


@st.composite
def pod_drains(draw: st.DrawFn) -> tuple[EnclaveSpec, Observed]:
    """Prompt (which drains) and DRP (which vacates after 600 s) each borrow pods on a worker, some of them draining
    for 100 s to a day, busy or idle; each pool runs its two batch nodes full. ``cases`` has such pods in a few
    examples of a run, and none in some runs: a mutant ignoring the grace passed on 2 of 6 seeds (2026-12-03)."""
    spec = make_spec(workers=1, batch=4, guaranteed=(2, 2, 0, 0), maximum=(4, 4, 4, 4),
                     broker={"max_lend_share": 1.0, "lend_to": ["prompt", "drp"], "pod_cores": 8})
    nodes, startds = [Node("kub-001", "kub", NodeRole.WORKER, 48, 256 * 1024, since=NOW - 100_000)], []
    for i, pool in enumerate(("prompt", "prompt", "drp", "drp"), 1):
        _add(nodes, startds, batch_node(f"condor-00{i}", pool, busy=24))
    for k in range(1, draw(st.integers(1, 5)) + 1):
        pool = draw(st.sampled_from(["prompt", "drp"]))
        startds.append(Startd(f"htcondor-kub-001-{k}", "kub-001", StartdKind.POD, pool, 8, 8192,
                              busy_cores=draw(st.sampled_from([0, 8])), draining=draw(st.booleans()),
                              since=NOW - draw(st.sampled_from([100.0, 700.0, 100_000.0]))))
    running = {p: sum(s.busy_cores for s in startds if s.pool == p) for p in ("prompt", "drp")}
    demand = {p: PoolDemand(idle_jobs=8, idle_cores=8, running_jobs=r, running_cores=r) for p, r in running.items()}
    return spec, Observed(now=NOW, nodes=tuple(nodes), startds=tuple(startds),
                          demand=demand | {"user": PoolDemand(), "general": PoolDemand()})


@FAST
@given(case=cases(), drains=pod_drains())
def test_a_draining_borrowed_startd_goes_once_idle_or_past_its_grace(case: tuple[EnclaveSpec, Observed],
                                                                     drains: tuple[EnclaveSpec, Observed]) -> None:
    """docs/broker.md, phase 5 (``finish_drains``; BCS 3): a borrowed startd that was draining is removed once it runs
    nothing, or once its pool's grace period is over when the pool vacates (``take_away: vacate``: DRP's 600 s
    here, the startd's ``MaxJobRetirementTime``); a pool that drains lets its jobs finish. Only the move limit may
    leave it. ``drains``: ``pod_drains``."""
    _drains_finished(*case)
    _drains_finished(*drains)


def _drains_finished(spec: EnclaveSpec, o: Observed) -> None:
    p = plan(spec, o)
    down = _down(o)
    due = set()
    for s in o.startds:
        if s.kind == StartdKind.STANDALONE or not s.draining or s.node in down:
            continue
        grace = spec.pools[s.pool].vacate_grace if s.pool in spec.pools else None
        if s.busy_cores == 0 or (grace is not None and o.now - s.since >= grace):
            due.add(s.name)
    assert due <= _removed(o, p) or p.capped, (due - _removed(o, p), p.actions)


@st.composite
def stuck_drains(draw: st.DrawFn) -> tuple[EnclaveSpec, Observed]:
    """``worker_lendings`` with one or two of the workers draining for prompt, begun a moment, just under, just
    over, or long past ``drain_timeout_seconds`` (900 s) ago, or at 5,000 s (a mutant giving up at ten times the
    timeout passed on 1 of 6 seeds over ``cases`` alone, 2026-12-03), with 0, 8 or 24 cores of pods still to
    evict."""
    spec, o = draw(worker_lendings())
    workers = sorted(n.name for n in o.nodes if n.role == NodeRole.WORKER)
    draining = set(draw(st.lists(st.sampled_from(workers), min_size=1, max_size=2, unique=True)))
    ages = st.sampled_from([0.0, 899.0, 900.0, 1000.0, 5000.0, 100_000.0])
    nodes = tuple(replace(n, state=NodeState.DRAINING, since=o.now - draw(ages),
                          k8s_cores_requested=(req := float(draw(st.sampled_from([0, 8, 24])))),
                          k8s_memory_requested_mib=int(req * 1024)) if n.name in draining else n for n in o.nodes)
    return spec, replace(o, nodes=nodes)


@FAST
@given(case=cases(), drains=stuck_drains())
def test_a_drain_past_its_timeout_gives_the_worker_back(case: tuple[EnclaveSpec, Observed],
                                                        drains: tuple[EnclaveSpec, Observed]) -> None:
    """BCS 5 (``broker.drain_timeout_seconds``): a worker whose drain still has pods to evict that long after it began
    (a disruption budget that never allows an eviction, a pod that does not stop) goes back to the commons, as
    ``kubectl drain --timeout`` gives up, and is marked so (``drain_stuck``); HTCondor never starts on it. Only the
    move limit may leave it for the next decision. ``drains``: ``stuck_drains``."""
    _drain_given_up_past_its_timeout(*case)
    _drain_given_up_past_its_timeout(*drains)


def _drain_given_up_past_its_timeout(spec: EnclaveSpec, o: Observed) -> None:
    if spec.broker.lend_mode != LendMode.NODES:
        return
    p = plan(spec, o)
    timeout = spec.broker.drain_timeout_seconds
    stuck = {n.name for n in o.nodes if n.role == NodeRole.WORKER and n.state == NodeState.DRAINING
             and n.k8s_cores_to_move > 1e-9 and o.now - n.since >= timeout}
    returned = {a.node for a in p.actions if isinstance(a, ReturnNode) and a.drain_stuck}
    assert not stuck & {a.node for a in p.actions if isinstance(a, StartHTCondor)}, (stuck, p.actions)
    assert stuck <= returned or p.capped, (stuck, returned, p.actions)


@st.composite
def worker_lendings(draw: st.DrawFn) -> tuple[EnclaveSpec, Observed]:
    """By day prompt, lending workers whole (``lend_mode: nodes``), needs more than its batch node (DRP runs the
    other five full, its guarantee); two to four
    workers carry notebooks' requests, a headroom and waiting spawns that the rest of the commons may or may not hold
    once a worker is drained. ``cases`` drains a worker in 1 % of its examples, and a mutant ignoring the reserve
    passed on 6 of 6 seeds (stop 55). Prompt's maximum is two, three or six batch nodes (48, 72, 144 cores): its
    24 cores and a 48-core worker fill the first, and a second worker would pass the second."""
    workers = draw(st.integers(2, 4))
    spec = make_spec(workers=workers, batch=6, guaranteed=(1, 5, 0, 0),
                     maximum=(draw(st.sampled_from([2, 3, 6])), 6, 6, 6),
                     broker={"lend_mode": "nodes", "max_lend_share": 1.0, "cooldown_seconds": 0, "hysteresis": 0.0,
                             "notebook_headroom_cores": draw(st.sampled_from([0, 16, 48]))})
    nodes = [Node(f"kub-{i:03d}", "kub", NodeRole.WORKER, 48, 256 * 1024, since=NOW - 100_000,
                  k8s_cores_requested=(req := float(draw(st.sampled_from([0, 8, 24, 40])))),
                  k8s_memory_requested_mib=int(req * 1024)) for i in range(1, workers + 1)]
    startds: list[Startd] = []
    for i in range(1, 7):
        _add(nodes, startds, batch_node(f"condor-00{i}", "prompt" if i == 1 else "drp", busy=24))
    idle = draw(st.sampled_from([24, 48, 96]))
    demand = {"prompt": PoolDemand(idle_jobs=idle, idle_cores=idle, running_jobs=24, running_cores=24),
              "drp": PoolDemand(running_jobs=120, running_cores=120), "user": PoolDemand(), "general": PoolDemand()}
    pending = float(draw(st.sampled_from([0, 8, 24, 40])))
    return spec, Observed(now=NOW, nodes=tuple(nodes), startds=tuple(startds), demand=demand,
                          notebook_pending_cores=pending)


@FAST
@given(case=cases(), lending=worker_lendings())
def test_a_worker_is_drained_for_batch_only_while_the_rest_of_the_commons_hold_the_reserve(
        case: tuple[EnclaveSpec, Observed], lending: tuple[EnclaveSpec, Observed]) -> None:
    """BCS 5 (``_drain_for``): a worker is drained for HTCondor only if, its pods moved to the other workers, what
    the ready workers have left beside their requests still holds the notebook reserve (``notebook_headroom_cores``
    and the waiting spawns) — counting the pods every draining worker still has to move elsewhere. So a decision
    that drains leaves the commons holding the reserve. ``lending``: ``worker_lendings``."""
    _reserve_kept(*case)
    _reserve_kept(*lending)


@FAST
@given(lending=worker_lendings())
def test_a_worker_is_drained_for_a_pool_only_within_its_maximum(lending: tuple[EnclaveSpec, Observed]) -> None:
    """BCS 5 (``_drain_for``), "a cap is a cap": a worker is drained for a pool only if the pool, with it and the
    workers already on their way to it, stays within its maximum. In ``worker_lendings`` only prompt lacks
    capacity, so every draining worker is on its way to prompt: what prompt holds after the decision and the
    cores of every draining worker stay within its maximum. (``test_maxima_kept`` counts startds, which a drain
    makes none of; a mutant dropping the check passed every property at stop 55.)"""
    spec, o = lending
    p = plan(spec, o)
    after = project(o, p.actions)
    coming = sum(n.cores for n in after.nodes if n.role == NodeRole.WORKER and n.state == NodeState.DRAINING)
    held = _held(after).get("prompt", 0)
    assert held + coming <= max(p.pools["prompt"].maximum, _held(o).get("prompt", 0)), (held, coming, p.actions)


@st.composite
def kept_workers(draw: st.DrawFn) -> tuple[EnclaveSpec, Observed]:
    """``worker_lendings`` with what keeps BCS 5 off a worker: some workers' last lending was given up unfinished
    (``Node.drain_stuck``) a moment ago, just within ``drain_retry_seconds`` or past it, and zero to two notebook
    spawns wait, of 1, 16 or 64 cores, some pinned to one or two workers (``PendingSpawn.nodes``). In half the
    examples instead the first worker's notebooks request 40 of its 48 cores and one 16-core spawn is pinned to it
    (room only that worker, emptied, could give), and the other workers are mostly kept off by a recent give-up,
    so that the first is the one a drain could take."""
    spec, o = draw(worker_lendings())
    retry = spec.broker.drain_retry_seconds
    names = sorted(n.name for n in o.nodes if n.role == NodeRole.WORKER)
    crowded = draw(st.booleans())
    ages = st.sampled_from([None, 100.0, retry - 1] if crowded else [None, 100.0, retry - 1, retry, 10 * retry])
    nodes = [n if n.role != NodeRole.WORKER or (age := draw(ages)) is None else replace(n, drain_stuck=o.now - age)
             for n in o.nodes]
    if crowded:
        nodes = [replace(n, k8s_cores_requested=40.0, k8s_memory_requested_mib=40 * 1024, drain_stuck=-math.inf)
                 if n.name == names[0] else n for n in nodes]
        spawns = [PendingSpawn(cpu=16.0, memory_mib=16 * 2048, nodes=frozenset(names[:1]))]
    else:
        pins = st.none() | st.frozensets(st.sampled_from(names), min_size=1, max_size=2)
        spawns = [PendingSpawn(cpu=(cpu := draw(st.sampled_from([1.0, 16.0, 64.0]))), memory_mib=int(cpu * 2048),
                               nodes=draw(pins)) for _ in range(draw(st.integers(0, 2)))]
    return spec, replace(o, nodes=tuple(nodes), notebook_spawns=tuple(spawns))


@FAST
@given(kept=kept_workers())
def test_bcs5_drains_no_worker_kept_for_notebooks_or_lately_stuck(kept: tuple[EnclaveSpec, Observed]) -> None:
    """BCS 5 (``drain_for_batch``, ``_drain_for``): no worker is drained while a waiting spawn has room on some
    worker (the pods a drain evicts may take that room), none a waiting spawn is pinned to when some worker could
    hold it (the only room that spawn can have), and none whose lending was last given up unfinished less than
    ``drain_retry_seconds`` ago (what held it likely still does). Room and fit are counted here from the workers:
    a spawn has room on a ready worker it may go to whose notebooks' requests leave its cores and memory (these
    workers carry no pods to free); it fits some worker when one it may go to is large enough, empty."""
    spec, o = kept
    drained = {a.node for a in plan(spec, o).actions if isinstance(a, DrainNode)}
    if not drained:
        return
    workers = [n for n in o.nodes if n.role == NodeRole.WORKER]
    room = [sp for sp in o.notebook_spawns
            if any(n.state == NodeState.READY and sp.admits(n.name) and n.cores - n.k8s_cores_requested >= sp.cpu
                   and n.memory_mib - n.k8s_memory_requested_mib >= sp.memory_mib for n in workers)]
    assert not room, (room, drained)
    pinned = {name for sp in o.notebook_spawns if sp.nodes is not None
              and any(sp.admits(n.name) and n.cores >= sp.cpu and n.memory_mib >= sp.memory_mib for n in workers)
              for name in sp.nodes}
    assert not drained & pinned, (drained, pinned)
    stuck = {n.name for n in workers if o.now - n.drain_stuck < spec.broker.drain_retry_seconds}
    assert not drained & stuck, (drained, stuck)


def _reserve_kept(spec: EnclaveSpec, o: Observed) -> None:
    p = plan(spec, o)
    if spec.broker.lend_mode != LendMode.NODES or not any(isinstance(a, DrainNode) for a in p.actions):
        return
    after = project(o, p.actions)
    workers = [n for n in after.nodes if n.role == NodeRole.WORKER]
    left = sum(n.cores - n.k8s_cores_requested for n in workers if n.state == NodeState.READY) - sum(
        n.k8s_cores_to_move for n in workers if n.state == NodeState.DRAINING)
    reserve = spec.broker.notebook_headroom_cores + pending_notebook_cores(o)
    assert left >= reserve - 1e-9, (left, reserve, p.actions)


@FAST
@given(case=cases(), borrowing=borrowings())
def test_maxima_kept(case: tuple[EnclaveSpec, Observed], borrowing: tuple[EnclaveSpec, Observed]) -> None:
    """No decision takes a pool past its maximum, standalone and borrowed cores together ("a cap is a cap",
    ``_most_pods``), unless it held more before. ``borrowing``: ``borrowings``."""
    _maxima_kept(*case)
    _maxima_kept(*borrowing)


def _maxima_kept(spec: EnclaveSpec, o: Observed) -> None:
    p = plan(spec, o)
    before, after = _held(o), _held(project(o, p.actions))
    for name, ps in p.pools.items():
        assert after.get(name, 0) <= max(ps.maximum, before.get(name, 0)), (name, p.actions)


def _lent(o: Observed, pool: str | None = None) -> int:
    """Cores of borrowed startds (worker pods, whole workers) that are not on their way out, of ``pool`` or all."""
    return sum(s.cores for s in o.startds
               if s.kind != StartdKind.STANDALONE and not s.draining and pool in (None, s.pool))


@FAST
@given(case=cases(), borrowing=borrowings())
def test_lending_stays_within_its_share(case: tuple[EnclaveSpec, Observed],
                                        borrowing: tuple[EnclaveSpec, Observed]) -> None:
    """docs/broker.md, BCS 4 and 5: "At most ``max_lend_share`` of the worker cores is lent." A decision that lends
    (deploys pods, drains or starts HTCondor on a worker) leaves what is lent, and the workers on their way to
    HTCondor (nodes mode), within that share of all the workers' cores."""
    for spec, o in (case, borrowing):
        p = plan(spec, o)
        if not any(isinstance(a, (DeployPods, DrainNode, StartHTCondor)) for a in p.actions):
            continue
        after = project(o, p.actions)
        workers = [n for n in after.nodes if n.role == NodeRole.WORKER]
        on_their_way = sum(n.cores for n in workers if n.state == NodeState.DRAINING)
        share = spec.broker.max_lend_share * sum(n.cores for n in workers)
        assert _lent(after) + on_their_way <= share + 1e-9, (_lent(after), on_their_way, share, p.actions)


@FAST
@given(case=cases(), borrowing=borrowings())
def test_a_pool_borrows_a_pod_only_when_it_lacks_hysteresis_of_one(case: tuple[EnclaveSpec, Observed],
                                                                   borrowing: tuple[EnclaveSpec, Observed]) -> None:
    """docs/broker.md, "Hysteresis on give-back": "a pool borrows a pod when it lacks ``hysteresis`` of one". What a
    pool lacks is at most what it should borrow (its ``lend``) less what it has borrowed, so a pool given pods lacked
    that much, with what it kept of its borrowed startds (the decision may give up pods that never started); and it
    is given no pod beyond what it lacks (the last one may hold a fraction it does not need)."""
    for spec, o in (case, borrowing):
        p = plan(spec, o)
        pools, _ = pool_states(spec, o, p.night)
        deploys = [a for a in p.actions if isinstance(a, DeployPods)]
        kept = project(o, [a for a in p.actions if not isinstance(a, DeployPods)])
        for pool in {a.pool for a in deploys}:
            pod = max(a.cores_per_pod for a in deploys if a.pool == pool)
            lacking = pools[pool].lend - _lent(kept, pool)
            assert lacking >= spec.broker.hysteresis * pod - 1e-9, (pool, lacking, pools[pool], p.actions)
            cores = sum(len(a.pods) * a.cores_per_pod for a in deploys if a.pool == pool)
            assert cores < lacking + pod, (pool, cores, lacking, pools[pool], p.actions)


@FAST
@given(borrowing=borrowings(), surplus=surplus_pods())
def test_a_pool_that_should_still_borrow_gives_a_pod_back_only_beyond_hysteresis(
        borrowing: tuple[EnclaveSpec, Observed], surplus: tuple[EnclaveSpec, Observed]) -> None:
    """docs/broker.md, "Hysteresis on give-back": "while it should still borrow something, it gives one back only if
    it then keeps ``hysteresis`` of a pod beyond what it should borrow" (``give_back_surplus``). So when a pool
    whose ``lend`` is above 0 gives up one of its borrowed startds, what it keeps borrowed (joined or starting, not on
    its way out) is at least its ``lend`` plus ``hysteresis`` of the largest it gave up. In ``borrowings`` no notebook
    waits and no pod has outlived its start; asked only where the commons hold what is lent (within
    ``max_lend_share``, the notebook headroom left free), every give-up is one of these. ``surplus``:
    ``surplus_pods``."""
    _gives_back_beyond_hysteresis(*borrowing)
    _gives_back_beyond_hysteresis(*surplus)


def _gives_back_beyond_hysteresis(spec: EnclaveSpec, o: Observed) -> None:
    workers = sum(n.cores for n in o.nodes if n.role == NodeRole.WORKER)
    free = _commons_free(o.nodes, (s for s in o.startds if s.kind == StartdKind.POD))
    if _lent(o) > spec.broker.max_lend_share * workers or free < spec.broker.notebook_headroom_cores:
        return
    p = plan(spec, o)
    pools, _ = pool_states(spec, o, p.night)
    startds = {s.name: s for s in o.startds}
    gone = [startds[n] for a in p.actions if isinstance(a, (DeletePods, DrainStartd)) for n in _targets(a)
            if not startds[n].draining]  # a drained pod deleted was on its way out already
    after = project(o, p.actions)
    for pool in {s.pool for s in gone}:
        if pools[pool].lend > 0:
            largest = max(s.cores for s in gone if s.pool == pool)
            kept = _lent(after, pool)
            assert kept >= pools[pool].lend + spec.broker.hysteresis * largest - 1e-9, (pool, kept, pools[pool],
                                                                                         p.actions)


@FAST
@given(reclaim=notebook_reclaims())
def test_notebooks_take_borrowed_capacity_back_lowest_priority_pool_first(
        reclaim: tuple[EnclaveSpec, Observed]) -> None:
    """docs/broker.md, BCS 3 (``reclaim_for_notebooks``): "notebooks waiting for room take borrowed capacity back
    before anything else ... lowest-priority pool first". So no borrowed startd of a pool is given back while one of
    a pool of lower priority stays. In ``notebook_reclaims`` every pool needs all it borrows, so the notebooks are
    the only reason to give one back; and they get room: the commons hold the waiting cores afterwards, or nothing
    borrowed is left to give."""
    spec, o = reclaim
    p = plan(spec, o)
    prio = {name: ps.priority for name, ps in p.pools.items()}
    borrowed = {s.name: s for s in o.startds if s.kind == StartdKind.POD}
    gone = {n for a in p.actions if isinstance(a, (DeletePods, DrainStartd)) for n in _targets(a)}
    kept = [s for n, s in borrowed.items() if n not in gone]
    for n in gone:
        lower = [s.name for s in kept if prio[s.pool] < prio[borrowed[n].pool]]
        assert not lower, (n, lower, p.actions)
    free = _commons_free(o.nodes, kept)
    assert free >= o.notebook_pending_cores or not kept, (free, o.notebook_pending_cores, p.actions)


@FAST
@given(cases())
def test_moves_bounded_and_each_thing_touched_once(case: tuple[EnclaveSpec, Observed]) -> None:
    spec, o = case
    actions = plan(spec, o).actions
    assert len(actions) <= spec.broker.max_moves_per_cycle
    touched = [t for a in actions for t in _targets(a)]
    assert len(touched) == len(set(touched)), actions


@FAST
@given(case=cases(), handover=handovers())
def test_a_startd_moved_within_the_cooldown_moves_again_only_for_a_promise(
        case: tuple[EnclaveSpec, Observed], handover: tuple[EnclaveSpec, Observed]) -> None:
    """docs/broker.md, step 3: "*Demand:* ... A startd is not moved again within ``cooldown_seconds``", while a
    "*Promise:* a pool below its guarantee takes startds at once; cooldown and hysteresis do not apply"; and
    surplus borrowed startds go back "those out of cooldown only" (``give_back_surplus``). So a startd changed within
    the cooldown is relabelled only by a promise (or redirected in the same decision from the move that took it:
    ``_redirect_surplus``), and no surplus give-back takes one."""
    for spec, o in (case, handover):
        by_name = {s.name: s for s in o.startds}
        for a in plan(spec, o).actions:
            names = [a.startd] if isinstance(a, Relabel) else (
                _targets(a) if isinstance(a, (DeletePods, DrainStartd)) and "borrowed cores" in a.reason else [])
            for name in names:
                s = by_name.get(name)
                if s is None or o.now - s.since >= spec.broker.cooldown_seconds:
                    continue
                assert isinstance(a, Relabel) and ("below its guarantee" in a.reason or "goes to it" in a.reason), a


def _given_back(o: Observed, a: object) -> list[Startd]:
    """The borrowed startds an action gives back: drained (``DrainStartd``), or removed at once because nothing
    runs there or the pool vacates at once (``DeletePods`` of a worker pod, ``ReturnNode`` of a worker whose
    startd joined in nodes mode): docs/broker.md step 5, ``decide.release``."""
    match a:
        case DrainStartd(startd=name):
            names = {name}
        case DeletePods(pods=pods):
            names = set(pods)
        case ReturnNode(node=node):
            names = {s.name for s in o.startds if s.node == node and s.kind == StartdKind.NODE}
        case _:
            return []
    return [s for s in o.startds if s.name in names and s.kind != StartdKind.STANDALONE]


def _replaced(spec: EnclaveSpec, o: Observed, first: Plan, a: object) -> bool:
    """The other follow-up allowed, make before break's second step: a latency pool gives back a ready borrowed
    startd that it had to keep in the first decision — without it, what it ran then was below its need — and
    that startds relabelled to it by that same decision (after the give-back phase) now replace.

    docs/broker.md, "Make before break": "a ready borrowed startd is given back as surplus only if what stays
    ready still covers the need" — a worker pod (``lend_mode: pods``) or a whole worker's startd
    (``lend_mode: nodes``) alike (``give_back_surplus`` holds back any borrowed startd); and the give-back is a
    drain, or the removal at once when nothing runs there (step 5)."""
    startds = _given_back(o, a)
    if not startds:
        return False
    # What each pool ran once the first decision's give-backs were done (they come before its relabels): a
    # startd was held back if giving it too would have left less than the need.
    left = project(o, [b for b in first.actions if _given_back(o, b)])
    for s in startds:
        ps = first.pools.get(s.pool)
        if not s.ready or s.draining or ps is None or not ps.latency:
            return False
        if not _running(spec, left, s.pool) - s.cores < ps.need:
            return False  # it was not held back: the first decision should have given it already
        if not any(isinstance(r, Relabel) and r.to_pool == s.pool for r in first.actions):
            return False
    return True


def _own_jobs_there(s: Startd) -> bool:
    """Whether ``s`` runs jobs of its own pool: a job's pool is its own or, not reported, the startd's
    (``victims.pool_of``); a busy startd that reports no jobs is taken to run its pool's (``on_own_slots``
    cannot tell whose they are)."""
    return any(pool_of(s, j) == s.pool for j in s.jobs) or (s.busy_cores > 0 and not s.jobs)


def gave_its_own_jobs(spec: EnclaveSpec, o: Observed, first: Plan) -> set[str]:
    """The pools whose need may fall on the result of ``first`` (``on_own_slots``' exception to "deciding again
    changes nothing", docs/broker.md step 2): those without a latency objective and with nothing queued that
    gave, in ``first``, a startd where their own jobs run — relabelled to another pool (its jobs stay on it,
    ``effects.project``, as guests) or given back to the commons (its jobs stay on a startd that is leaving).
    Either way "they run where they are" and need none of the pool's capacity, so its need falls by them."""
    by_name = {s.name: s for s in o.startds}
    gave = {a.from_pool for a in first.actions if isinstance(a, Relabel) and _own_jobs_there(by_name[a.startd])}
    gave |= {s.pool for a in first.actions for s in _given_back(o, a) if _own_jobs_there(s)}
    return _on_own_slots_only(spec, o, gave)


def _on_own_slots_only(spec: EnclaveSpec, o: Observed, pools: set[str]) -> set[str]:
    """Those of ``pools`` whose need counts only their jobs on their own startds (``decide.on_own_slots``): without
    a latency objective and with nothing queued."""
    return {p for p in pools if p in spec.pools and o.demand.get(p, PoolDemand()).idle_jobs == 0
            and spec.pools[p].latency_objective is None}


def took_its_own_jobs(spec: EnclaveSpec, o: Observed, first: Plan) -> set[str]:
    """The pools whose need may rise on the result of ``first`` (``on_own_slots``' second exception, docs/broker.md
    step 2): those without a latency objective and with nothing queued that took, in ``first``, a startd where
    their own jobs run as guests. Such a pool's need is met (it counts its borrowed startds' jobs), but its
    standalone target may not be: a promise brings it a standalone startd, and the guests there now run on its
    own slots, so its need rises by them."""
    by_name = {s.name: s for s in o.startds}
    took = {a.to_pool for a in first.actions if isinstance(a, Relabel)
            and any(pool_of(by_name[a.startd], j) == a.to_pool for j in by_name[a.startd].jobs)}
    return _on_own_slots_only(spec, o, took)


def _after_a_risen_need(first: Plan, second: Plan, rose: set[str], a: object) -> bool:
    """A follow-up of a need that rose (``took_its_own_jobs``): the pool's target rises with it and the surplus
    left for the others falls (docs/broker.md step 2), so a pool whose target fell may be taken from, and a
    lending pool whose borrowing rose as its standalone target fell borrows more (found at stop 51: general's
    promise took in 3 cores of its guests, its need rose 4 -> 7, and prompt's target fell 101 -> 98, its lend
    rose 19 -> 22, for two more pods) — nothing else, the mirror of ``_after_a_fallen_need``."""
    if not rose:
        return False
    if isinstance(a, Relabel):
        return second.pools[a.from_pool].target < first.pools[a.from_pool].target
    return isinstance(a, DeployPods) and second.pools[a.pool].lend > first.pools[a.pool].lend


def _after_a_fallen_need(o: Observed, first: Plan, second: Plan, fell: set[str], a: object) -> bool:
    """A follow-up of a need that fell (``gave_its_own_jobs``): targets are set from needs (docs/broker.md step
    2), so the pool whose need fell may give a startd, a pool whose target rose with the surplus it left may take
    one (found at 800 examples, seed 39: DRP gave back a pod where 2 of its jobs ran, its target fell 2 → 0, and
    the user pool's rose 1 → 3, enough for a batch node without hysteresis), and a pool whose borrowing fell (a
    latency pool whose standalone target rose with what the other gave up) gives borrowed startds back — nothing
    else."""
    if not fell:
        return False
    if isinstance(a, Relabel):
        return a.from_pool in fell or second.pools[a.to_pool].target > first.pools[a.to_pool].target
    startds = _given_back(o, a)
    return bool(startds) and all(second.pools[s.pool].lend < first.pools[s.pool].lend for s in startds)


def _room_from_replaced(spec: EnclaveSpec, o: Observed, first: Plan, second: Plan, a: object) -> bool:
    """A relabel to a latency pool that the first decision did not make, which make before break's second step
    (``_replaced``) now allows: the borrowed startds the first decision held back go in the second, and they
    counted in the first
    - toward the pool's maximum (borrowed cores count toward it, docs/broker.md step 1), which refused it; or
    - as ready capacity, so that its promise stopped: a latency pool's promise bypasses the cooldown only while
      what it holds ready is below what its jobs need now (``PoolState.urgent``; found at 5,000 examples, seed
      99: two ready pods kept prompt at 96 of the 88 cores its jobs needed, and given back they leave 80)."""
    if not isinstance(a, Relabel):
        return False
    freed = sum(s.cores for r in second.actions if _replaced(spec, o, first, r) for s in _given_back(o, r)
                if s.pool == a.to_pool)
    cores_of = {s.name: s.cores for s in o.startds}
    cores = cores_of[a.startd]
    after = project(o, first.actions)
    held, ready = _held(after).get(a.to_pool, 0), _running(spec, after, a.to_pool)
    ps = first.pools[a.to_pool]
    by_maximum = held + cores > ps.maximum >= held - freed + cores
    # Only the relabels that bring the pool back up to what its jobs need: each one while what it has ready, with
    # the relabels to it before this one, is still short of that.
    before = sum(cores_of[r.startd] for r in second.actions[:second.actions.index(a)]
                 if isinstance(r, Relabel) and r.to_pool == a.to_pool)
    by_urgency = ps.latency and ready >= ps.now_need > ready - freed + before
    return freed > 0 and (by_maximum or by_urgency)


def unexplained_follow_ups(spec: EnclaveSpec, o: Observed, first: Plan, second: Plan) -> list[Action]:
    """The actions of ``second`` (deciding on the result of ``first``) that no documented follow-up allows:
    BCS 5 step 2 on a worker the first decision drained and that had no pods to move (the projection cannot
    know evictions take time, so it is empty at once); make before break's second step (``_replaced``) and the
    relabel it makes room for (``_room_from_replaced``); and, with a pool's own jobs left where they run, the
    moves its fallen need allows (``gave_its_own_jobs``, ``_after_a_fallen_need``); with a pool's own jobs
    taken in as guests, the moves its risen need allows (``took_its_own_jobs``, ``_after_a_risen_need``)."""
    drained = {a.node for a in first.actions if isinstance(a, DrainNode)}
    fell = {p for p in gave_its_own_jobs(spec, o, first) if second.pools[p].need < first.pools[p].need}
    rose = {p for p in took_its_own_jobs(spec, o, first) if second.pools[p].need > first.pools[p].need}
    return [a for a in second.actions
            if not (isinstance(a, StartHTCondor) and a.node in drained) and not _replaced(spec, o, first, a)
            and not _room_from_replaced(spec, o, first, second, a)
            and not _after_a_fallen_need(o, first, second, fell, a)
            and not _after_a_risen_need(first, second, rose, a)]


@FAST
@given(case=cases(), mixed=mixed_cases(), handover=handovers(), surplus=surplus_pods())
@example(case=overshoot_case(), mixed=None, handover=None, surplus=None)  # the review's (``test_phases``): the
# strategy finds its kind at most seeds
def test_deciding_again_on_the_result_changes_nothing(case: tuple[EnclaveSpec, Observed],
                                                      mixed: tuple[EnclaveSpec, Observed] | None,
                                                      handover: tuple[EnclaveSpec, Observed] | None,
                                                      surplus: tuple[EnclaveSpec, Observed] | None) -> None:
    """Deciding again on the result of a decision changes nothing but the follow-ups documented
    (``unexplained_follow_ups``), and never undoes it. ``mixed``: also with batch nodes of two sizes and mostly no
    hysteresis (``mixed_cases``), where a pool may take a small node within its target and a large one past it
    (found in review: the small one then moved again, to a pool still short, a cycle later), by a move toward its
    target or by a promise (some pools there have guarantees). ``handover``: a latency pool at risk or not as its
    pods have joined and the nodes relabelled to it still run donors' jobs, where a promise goes on past a busy node
    (``PoolState.urgent``). ``surplus``: pods held beyond what the pool should borrow, around the give-back
    hysteresis (``surplus_pods``), where a pod given back must not be deployed again."""
    for spec, o in (c for c in (case, mixed, handover, surplus) if c is not None):
        _changes_nothing(spec, o)


def _changes_nothing(spec: EnclaveSpec, o: Observed) -> None:
    first = plan(spec, o)
    second: Plan = plan(spec, project(o, first.actions))
    if not first.capped:
        rest = unexplained_follow_ups(spec, o, first, second)
        assert rest == [], (first.actions, second.actions, o, first.pools, second.pools)
    # Even when capped, the second decision never undoes the first.
    relabelled = {a.startd: a.from_pool for a in first.actions if isinstance(a, Relabel)}
    for a in second.actions:
        if isinstance(a, Relabel):
            assert relabelled.get(a.startd) != a.to_pool, (first.actions, second.actions)
        deployed = {p for b in first.actions if isinstance(b, DeployPods) for p in b.pods}
        if isinstance(a, DeletePods):
            assert not deployed & set(a.pods)


@FAST
@given(cases())
def test_deterministic(case: tuple[EnclaveSpec, Observed]) -> None:
    spec, o = case
    assert plan(spec, o).actions == plan(spec, o).actions


@FAST
@given(cases())
def test_targets_respect_shares(case: tuple[EnclaveSpec, Observed]) -> None:
    spec, o = case
    pools, base = pool_states(spec, o, None)
    assert sum(ps.target for ps in pools.values()) <= base
    for name, ps in pools.items():
        if name in spec.pools:
            assert ps.target + ps.lend <= ps.maximum
            if ps.has_work:
                assert ps.target >= _promised(ps)


@st.composite
def contested(draw: st.DrawFn) -> tuple[EnclaveSpec, Observed]:
    """Surplus shared by weight and contested: every pool but prompt may take the whole batch, the guarantees (0 to
    3 nodes each) leave 3 nodes or more over, prompt (a latency pool, served first) may take at most a node more than
    its guarantee, and ``observed_states``' queues of hundreds want it all. ``cases`` caps most pools
    below their need and ``mixed_cases`` has few guarantees, so between them a pool with a guarantee was still short
    while another took surplus in 15 of 600 examples, and surplus shared equally passed every property
    (2026-12-03)."""
    batch = draw(st.integers(6, 16))
    guaranteed = [draw(st.integers(0, 2)), *(draw(st.integers(0, 3)) for _ in range(3))]
    while sum(guaranteed) > batch - 3:
        guaranteed[guaranteed.index(max(guaranteed))] -= 1
    broker = {"surplus": "weighted", "max_moves_per_cycle": 30, "hysteresis": draw(st.sampled_from([0.0, 0.5]))}
    spec = make_spec(workers=draw(st.integers(0, 2)), batch=batch, guaranteed=tuple(guaranteed),
                     maximum=(guaranteed[0] + 1, batch, batch, batch), broker=broker)
    return spec, draw(observed_states(spec, jobs=draw(st.booleans())))


@FAST
@given(case=cases(), mixed=mixed_cases(), contest=contested())
def test_weighted_surplus_is_shared_by_guarantee(case: tuple[EnclaveSpec, Observed],
                                                  mixed: tuple[EnclaveSpec, Observed],
                                                  contest: tuple[EnclaveSpec, Observed]) -> None:
    """``broker.surplus: weighted`` (issue 15, item 4; ``share_weighted``): after the promises, the latency pools'
    needs first; then the other pools still short of their need share what is left in proportion to their
    guarantees, as HTCondor's group quotas share surplus by quota (GROUP_ACCEPT_SURPLUS) and Kueue's fair sharing
    by weight. So while a pool with a guarantee is still short, no other pool got more surplus per core of
    guarantee than it, and a pool with no guarantee only a rounding leftover."""
    for spec, o in (case, mixed, contest):
        if spec.broker.surplus == Surplus.WEIGHTED:
            _shared_by_weight(spec, o)


def _shared_by_weight(spec: EnclaveSpec, o: Observed) -> None:
    night = current_night(spec, o.now)  # as ``plan`` takes it
    pools, _ = pool_states(spec, o, night)
    cover = prewarm_cover(spec, o, pools, set(lending_pools(spec)), night=night)
    working = [ps for ps in pools.values() if ps.name in spec.pools and ps.has_work]
    short = {ps.name: ps.need - cover.get(ps.name, 0) - ps.target for ps in working}
    # Surplus: what a pool holds beyond its promise (``promised``: a latency pool its guarantee, another its
    # guarantee up to its need).
    extra = {ps.name: ps.target - min(ps.guaranteed, ps.need) for ps in working if not ps.latency}
    if any(e > 0 for e in extra.values()):
        assert all(short[ps.name] <= 0 for ps in working if ps.latency), (pools, cover)
    # Rounding: each round of the sharing gives whole cores (less than one short of a pool's exact share), and what
    # the rounds leave, less than one core per pool, goes in priority order: a few cores, whatever the guarantees.
    slack = 2 * len(spec.pools) + 2
    for j in working:
        if j.latency or j.guaranteed <= 0 or short[j.name] <= 0:
            continue
        for i in working:
            if i.latency or i is j:
                continue
            if i.guaranteed <= 0:
                assert extra[i.name] <= len(spec.pools), (i, j)
            else:
                assert extra[i.name] * j.guaranteed <= (extra[j.name] + slack) * i.guaranteed + slack * j.guaranteed, (
                    i, j)


def _running(spec: EnclaveSpec, o: Observed, pool: str) -> int:
    """Cores ``pool`` runs jobs on now: standalone startds that are up and borrowed ones whose startds have
    joined (``ready``), none on its way out — less, on the standalone ones, the cores other pools' jobs still
    hold: a relabel lets the donor's jobs finish, so the node runs none of the pool's jobs until they end
    (``_others_hold``)."""
    down = _down(o)
    return sum(s.cores - (_others_hold(spec, o, s) if s.kind == StartdKind.STANDALONE else 0)
               for s in o.startds if s.pool == pool and s.ready and not s.draining and s.node not in down)


def _others_hold(spec: EnclaveSpec, o: Observed, s: Startd) -> int:
    """Cores of standalone startd ``s`` that jobs of pools other than its own hold (docs/broker.md, "Make before
    break"): its reported jobs of another pool (one of unknown pool is its own, ``victims.pool_of``); without
    reported jobs, its busy cores if it was relabelled within the cooldown, else none."""
    if s.jobs:
        return sum(j.cores for j in s.jobs if pool_of(s, j) != s.pool)
    return s.busy_cores if o.now - s.since < spec.broker.cooldown_seconds else 0


def _keeps_running_what_it_needs(spec: EnclaveSpec, o: Observed, p: Plan) -> None:
    """``p`` (decided on ``o``) leaves each latency pool running at least its need, or what it ran when it ran less
    (``test_make_before_break_a_latency_pool_keeps_running_what_it_needs``); nothing asked when the commons are
    short."""
    _, live = _live(o)
    if Commons.observe(spec, o, live).short() > 1e-9:
        return
    after = project(o, p.actions)
    for_spawns = _taken_for_spawns(o, p)
    for name, ps in p.pools.items():
        if name not in spec.pools or spec.pools[name].latency_objective is None:
            continue
        before = _running(spec, o, name) - for_spawns[name]
        assert _running(spec, after, name) >= min(ps.need - for_spawns[name], before), (name, before, ps, p.actions)


@st.composite
def prewarms(draw: st.DrawFn) -> tuple[EnclaveSpec, Observed]:
    """The night's pre-warm: prompt holds a few idle batch nodes and the commons could cover it, so its standalone
    target falls below them, and DRP, with a backlog, holds the rest of the nodes busy; some of prompt's pods are
    already there, joined or still starting. Make before break keeps prompt's nodes until the pods run
    (``test_make_before_break.py``'s state, drawn). Some of prompt's nodes were relabelled to it a minute ago and
    still run DRP's jobs (``occupied``: they run none of prompt's; a mutant leaving them out of the floor passed the
    properties on 1 of 6 seeds, 2026-12-04)."""
    batch = draw(st.integers(4, 10))
    held = draw(st.integers(1, 3))
    workers = draw(st.integers(1, 3))
    spec = make_spec(workers=workers, batch=batch, guaranteed=(held, 0, 0, 0), maximum=(batch,) * 4,
                     broker={"cooldown_seconds": draw(st.sampled_from([0, 900])),
                             "hysteresis": draw(st.sampled_from([0.0, 0.5]))})
    night, old = NOW + 10 * 3600, NOW - 100_000
    nodes = [Node(f"kub-{i:03d}", "kub", NodeRole.WORKER, 48, 256 * 1024, since=old) for i in range(1, workers + 1)]
    startds: list[Startd] = []
    occupied = draw(st.integers(0, held))
    for i in range(1, batch + 1):
        _add(nodes, startds, batch_node(f"condor-{i:03d}", "prompt" if i <= held else "drp", 0 if i <= held else 24))
        if i <= occupied:  # relabelled to prompt a minute ago, DRP's jobs still there
            startds[-1] = replace(startds[-1], busy_cores=24, since=night - 60,
                                  jobs=tuple(RunningJob(1, night - 3600, "drp") for _ in range(24)))
    pc = spec.broker.pod_cores
    for k in range(1, draw(st.integers(0, 4)) + 1):
        ready = draw(st.booleans())
        startds.append(Startd(f"htcondor-kub-001-{k}", "kub-001", StartdKind.POD, "prompt", pc, 32768,
                              since=old if ready else night - 30, ready=ready))
    drp = 24 * (batch - held + occupied)
    return spec, Observed(now=night, nodes=tuple(nodes), startds=tuple(startds),
                          demand={"drp": PoolDemand(idle_jobs=1000, idle_cores=1000, running_jobs=drp,
                                                    running_cores=drp)})


@st.composite
def after_prewarms(draw: st.DrawFn) -> tuple[EnclaveSpec, Observed]:
    """``prewarms`` after the night's last visit: prompt had visits since evening twilight, has no job left and
    none new for ``prewarm_quiet_seconds`` or more (``observing_done``), and the need window still holds their
    need; of its pods some have joined, some still start."""
    spec, o = draw(prewarms())
    night = current_night(spec, o.now)
    assert night is not None
    now = night.start + draw(st.sampled_from([1, 4, 8])) * 3600
    last = draw(st.floats(night.start, now - spec.broker.prewarm_quiet_seconds))
    # The pods still starting were made just now, as ``prewarms`` makes them.
    startds = tuple(s if s.ready else replace(s, since=now - 30) for s in o.startds)
    prompt = PoolDemand(peak_cores=draw(st.integers(1, 96)), newest_submit=last)
    return spec, replace(o, now=now, startds=startds, demand={**o.demand, "prompt": prompt})


@FAST
@given(case=cases(), after=after_prewarms())
def test_after_the_prewarm_only_joined_pods_cover_a_latency_pool(case: tuple[EnclaveSpec, Observed],
                                                                 after: tuple[EnclaveSpec, Observed]) -> None:
    """docs/broker.md step 2 (``prewarm_cover``): once the pre-warm is over, while the night and its learned need
    last, "only the pods that run cover it": a latency pool whose jobs come again takes a batch node at once
    rather than waiting for a pod to start. So the cover of a pool that is not pre-warmed is at most its pods
    that have joined, counted here from the startds (``_ready_borrowed``). ``after``: ``after_prewarms``, where
    the pre-warm is over by construction. (A mutant counting the pods still starting passed every property at
    stop 55.)"""
    for (spec, o), ended in ((case, False), (after, True)):
        night = current_night(spec, o.now)  # as ``plan`` takes it
        pools, _ = pool_states(spec, o, night)
        cover = prewarm_cover(spec, o, pools, set(lending_pools(spec)), night=night)
        if ended:
            assert not pools["prompt"].prewarm and pools["prompt"].need > 0
        for name, cores in cover.items():
            if not pools[name].prewarm:
                assert cores <= _ready_borrowed(o, name), (name, cores, _ready_borrowed(o, name))


@FAST
@given(case=cases(), handover=handovers(), prewarm=prewarms(), after=after_prewarms())
def test_make_before_break_a_latency_pool_keeps_running_what_it_needs(
        case: tuple[EnclaveSpec, Observed], handover: tuple[EnclaveSpec, Observed] | None,
        prewarm: tuple[EnclaveSpec, Observed] | None, after: tuple[EnclaveSpec, Observed] | None) -> None:
    """During any transition a latency pool's running capacity never drops below its need (or below what it
    ran, when it ran less): what it gives up goes only once what replaces it has joined — and runs its jobs, not
    the donor's still running there. Waiting notebooks come first (docs/broker.md: they reclaim borrowed capacity
    before anything else), so states where the commons are short are left out.

    Also on the result of the decision, as the next one sees it: the nodes relabelled to the pool run the donor's
    jobs still (``effects.project`` keeps them), and a pod they are to replace must stay (found in review: the
    second decision gave prompt's only running pod back as soon as two busy user nodes were relabelled to it).
    ``handover``: a state of that kind (``handovers``), which ``case`` all but never is; ``prewarm``: the night's
    pre-warm with idle latency nodes beside a busy donor (``prewarms``); ``after``: the same night after its last
    visit, the learned need still held (``after_prewarms``)."""
    for spec, o in (c for c in (case, handover, prewarm, after) if c is not None):
        first = plan(spec, o)
        _keeps_running_what_it_needs(spec, o, first)
        result = project(o, first.actions)
        _keeps_running_what_it_needs(spec, result, plan(spec, result))


def _taken_for_spawns(o: Observed, p: Plan) -> Counter[str]:
    """Cores of ready borrowed startds each pool gives up because a waiting notebook spawn fits on a worker only
    without them (``hold_room_for_spawns``): notebooks come first even when the commons are short on one worker
    only, which the aggregate ``Commons.short`` above does not see."""
    pods = {s.name: s for s in o.startds}
    whole = {s.node: s.name for s in o.startds if s.kind == StartdKind.NODE}
    taken: Counter[str] = Counter()
    for a in p.actions:
        if "notebook spawn" not in a.reason:
            continue
        # A worker lent whole goes back for a spawn no ready worker holds (``decide._WholeWorkers``): its startd.
        names = (a.pods if isinstance(a, DeletePods) else (a.startd,) if isinstance(a, DrainStartd)
                 else (whole[a.node],) if isinstance(a, ReturnNode) and a.node in whole else ())
        for name in names:
            s = pods[name]
            if s.ready and not s.draining:
                taken[s.pool] += s.cores
    return taken


@FAST
@given(cases())
def test_room_for_a_spawn_is_made_only_where_a_spawn_may_go(case: tuple[EnclaveSpec, Observed]) -> None:
    """A worker pod freed, or a worker lent whole given back, for one waiting spawn is on a worker some spawn's node
    selector admits (``PendingSpawn.nodes``): the scheduler would place none elsewhere (docs/broker.md step 5)."""
    spec, o = case
    node_of = {s.name: s.node for s in o.startds}
    for a in plan(spec, o).actions:
        if "a notebook spawn of" not in a.reason:  # one spawn's (the commons-wide reserve's say "spawns wait")
            continue
        names = a.pods if isinstance(a, DeletePods) else (a.startd,) if isinstance(a, DrainStartd) else ()
        nodes = [node_of[n] for n in names] if names else [a.node] if isinstance(a, ReturnNode) else []
        assert nodes, a
        for node in nodes:
            assert any(sp.admits(node) for sp in o.notebook_spawns), (node, a, o.notebook_spawns)


@st.composite
def memory_spawns(draw: st.DrawFn) -> tuple[EnclaveSpec, Observed]:
    """By day one to three workers run prompt's and DRP's worker pods of 8 cores and 32 or 64 GiB (some busy, some
    within the cooldown) beside notebooks' requests, and a notebook spawn of 1 to 8 cores at 8 to 32 GiB a core
    waits, maybe pinned to some workers: where it fits by its cores and not by its memory, only freeing a pod places
    it.
    ``cases``' pods hold 8 GiB and its spawns 4 GiB a core, so memory all but never binds: a mutant judging a spawn's
    room by cores alone passed every property (stop 53; a hand-built case caught it)."""
    workers = draw(st.integers(1, 3))
    spec = make_spec(workers=workers, batch=2, guaranteed=(1, 1, 0, 0), maximum=(2, 2, 2, 2),
                     broker={"cooldown_seconds": 900, "notebook_headroom_cores": 0, "max_lend_share": 1.0,
                             "pod_cores": 8, "pod_memory_mib": 64 * 1024})
    nodes, startds = [], []
    for i in (1, 2):
        _add(nodes, startds, batch_node(f"condor-00{i}", "prompt" if i == 1 else "drp", busy=24))
    for i in range(1, workers + 1):
        name, req = f"kub-{i:03d}", draw(st.sampled_from([0, 4, 8, 16]))
        nodes.append(Node(name, "kub", NodeRole.WORKER, 48, 256 * 1024, k8s_cores_requested=float(req),
                          k8s_memory_requested_mib=req * draw(st.sampled_from([1024, 8192])), since=NOW - 100_000))
        for k in range(1, draw(st.integers(1, 4)) + 1):
            pool = draw(st.sampled_from(["prompt", "drp"]))
            startds.append(Startd(f"htcondor-{name}-{k}", name, StartdKind.POD, pool, 8,
                                  draw(st.sampled_from([32, 64])) * 1024, busy_cores=draw(st.sampled_from([0, 8])),
                                  since=NOW - draw(st.sampled_from([100.0, 100_000.0]))))
    names = [n.name for n in nodes if n.role == NodeRole.WORKER]
    cpu = draw(st.sampled_from([1.0, 2.0, 4.0, 8.0]))
    spawns = (PendingSpawn(cpu, int(cpu * draw(st.sampled_from([8, 16, 32])) * 1024),
                           draw(st.one_of(st.none(), st.frozensets(st.sampled_from(names), min_size=1)))),)
    running = {p: sum(s.busy_cores for s in startds if s.pool == p) for p in ("prompt", "drp")}
    demand = {p: PoolDemand(idle_jobs=8, idle_cores=8, running_jobs=running[p], running_cores=running[p])
              for p in running} | {"user": PoolDemand(), "general": PoolDemand()}
    return spec, Observed(now=NOW, nodes=tuple(nodes), startds=tuple(startds), demand=demand,
                          notebook_pending_cores=sum(sp.cpu for sp in spawns), notebook_spawns=spawns)


@FAST
@given(case=cases(), spawning=memory_spawns())
def test_a_spawn_some_worker_could_hold_has_room_after_the_decision(case: tuple[EnclaveSpec, Observed],
                                                                     spawning: tuple[EnclaveSpec, Observed]) -> None:
    """Notebooks first (seed §7.1; docs/broker.md step 5): a lone waiting spawn that a worker its node selector admits
    could hold once that worker's pods were gone fits, after the decision, on some such worker beside what stays
    there — in cores and in memory, as kube-scheduler places a pod only where both fit (NodeResourcesFit,
    https://kubernetes.io/docs/concepts/scheduling-eviction/kube-scheduler/#kube-scheduler-implementation). Pods
    draining count as gone; only the move limit may leave it for the next decision. Pods mode: there every worker
    stays ready. Several spawns compete for the same room, which the broker shares largest first
    (``_room_for_spawns``): one that fits only if another were not placed may be left waiting, so each is not
    asked alone. ``spawning``: ``memory_spawns``."""
    for spec, o in (case, spawning):
        if spec.broker.lend_mode == LendMode.PODS and len(o.notebook_spawns) == 1:
            _spawns_have_room(spec, o)


def _spawns_have_room(spec: EnclaveSpec, o: Observed) -> None:
    p = plan(spec, o)
    if p.capped:
        return
    after = project(o, p.actions)
    workers = [n for n in after.nodes if n.role == NodeRole.WORKER and n.state == NodeState.READY]
    pods: dict[str, list[Startd]] = {}
    for s in after.startds:
        if s.kind == StartdKind.POD and not s.draining:
            pods.setdefault(s.node, []).append(s)
    for sp in o.notebook_spawns:
        could = [n for n in workers if sp.admits(n.name) and n.cores - n.k8s_cores_requested >= sp.cpu
                 and n.memory_mib - n.k8s_memory_requested_mib >= sp.memory_mib]
        if could:
            assert any(n.cores - n.k8s_cores_requested - sum(s.cores for s in pods.get(n.name, ())) >= sp.cpu
                       and n.memory_mib - n.k8s_memory_requested_mib
                       - sum(s.memory_mib for s in pods.get(n.name, ())) >= sp.memory_mib for n in could), (
                sp, p.actions)
