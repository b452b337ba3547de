"""Invariants of decide() over random observed states (hypothesis)."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from enclave.broker.decide import Commons, Plan, PoolState, _live, plan, pool_states
from enclave.broker.effects import project
from enclave.domain.capacity import (
    Action,
    DeletePods,
    DeployPods,
    DrainNode,
    DrainStartd,
    NodeState,
    Observed,
    Relabel,
    ReturnNode,
    StartdKind,
    StartHTCondor,
)
from enclave.spec import EnclaveSpec
from enclave.spec.models import NodeRole
from tests.broker.conftest import observed_states, specs

# Shrinking these wide states takes minutes, so it is off: a failure prints the whole unshrunk case.
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                phases=[Phase.explicit, Phase.reuse, Phase.generate])


@st.composite
def cases(draw: st.DrawFn) -> tuple[EnclaveSpec, Observed]:
    """A spec and an observation of it, with each startd's running jobs reported (as the twin and live backends
    do) or not (a backend that tells only busy cores)."""
    spec = draw(specs())
    return spec, draw(observed_states(spec, jobs=draw(st.booleans())))


def _held(o: Observed, standalone_only: bool = False) -> dict[str, int]:
    """Cores each pool holds in startds that are up and not on their way out."""
    down = {n.name for n in o.nodes if n.state == NodeState.DOWN}
    held: Counter[str] = Counter()
    for s in o.startds:
        if standalone_only and s.kind != StartdKind.STANDALONE:
            continue
        if not s.draining and s.node not in down:
            held[s.pool] += s.cores
    return dict(held)


def _targets(a: Action) -> list[str]:
    match a:
        case Relabel(startd=s) | DrainStartd(startd=s):
            return [s]
        case DeletePods(pods=pods):
            return list(pods)
        case DeployPods(node=n) | DrainNode(node=n) | StartHTCondor(node=n) | ReturnNode(node=n):
            return [n]
    raise AssertionError(a)


def _promised(ps: PoolState) -> int:
    """What a pool with work is promised: a latency pool its whole guarantee; another pool its guarantee up to
    its need, lending the rest until it asks (Kueue: unused nominal quota is borrowed within the cohort and
    reclaimed on demand)."""
    return ps.guaranteed if ps.latency else min(ps.guaranteed, ps.need)


@FAST
@given(cases())
def test_guarantees_kept_while_a_pool_has_work(case: tuple[EnclaveSpec, Observed]) -> None:
    spec, o = case
    p = plan(spec, o)
    after = _held(project(o, p.actions))
    for name, ps in p.pools.items():
        if not ps.has_work or name not in spec.pools:
            continue
        if after.get(name, 0) >= _promised(ps) or p.capped:
            continue
        if not ps.urgent():
            continue  # a latency pool whose jobs do not wait moves toward its guarantee with cooldown (issue 15)
        # Below its guarantee only when no startd could be taken without breaking another promise or a cap.
        left = _held(project(o, p.actions), standalone_only=True)
        moved = {a.startd for a in p.actions if isinstance(a, Relabel)}
        for s in project(o, p.actions).startds:
            q = p.pools.get(s.pool)
            if s.pool == name or s.draining or s.kind != StartdKind.STANDALONE or q is None or s.name in moved:
                continue
            if any(n.name == s.node and n.state == NodeState.DOWN for n in o.nodes):
                continue
            # A latency pool gives up no standalone startd before what replaces it runs (make before break),
            # not even for another pool's promise: its floor is kept like a guarantee.
            keep = max(q.guaranteed if q.has_work else 0, q.floor())
            fits = after.get(name, 0) + s.cores <= ps.maximum
            assert not (fits and left.get(s.pool, 0) - s.cores >= keep and left[s.pool] > q.target), (
                f"{name} holds {after.get(name, 0)} < promise {_promised(ps)} although {s.name} "
                f"({s.pool}) could be taken: {p.actions}; pools {p.pools}; base {p.standalone_cores}")


@FAST
@given(cases())
def test_maxima_kept(case: tuple[EnclaveSpec, Observed]) -> None:
    spec, o = case
    p = plan(spec, o)
    before, after = _held(o), _held(project(o, p.actions))
    for name, ps in p.pools.items():
        assert after.get(name, 0) <= max(ps.maximum, before.get(name, 0)), (name, p.actions)


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


@FAST
@given(cases())
def test_moves_bounded_and_each_thing_touched_once(case: tuple[EnclaveSpec, Observed]) -> None:
    spec, o = case
    actions = plan(spec, o).actions
    assert len(actions) <= spec.broker.max_moves_per_cycle
    touched = [t for a in actions for t in _targets(a)]
    assert len(touched) == len(set(touched)), actions


def _replaced(o: Observed, first: Plan, a: object) -> bool:
    """The other follow-up allowed, make before break's second step: a latency pool gives back a ready borrowed
    pod that it had to keep in the first decision — without the pod, what it ran then was below its need — and
    that startds relabelled to it by that same decision (after the give-back phase) now replace."""
    if not isinstance(a, DrainStartd):
        return False
    pod = next((s for s in o.startds if s.name == a.startd and s.kind == StartdKind.POD), None)
    if pod is None or not pod.ready or not first.pools[pod.pool].latency:
        return False
    ran = _running(o, pod.pool)
    held_back = ran - pod.cores < first.pools[pod.pool].need
    return held_back and any(isinstance(r, Relabel) and r.to_pool == pod.pool for r in first.actions)


@FAST
@given(cases())
def test_deciding_again_on_the_result_changes_nothing(case: tuple[EnclaveSpec, Observed]) -> None:
    spec, o = case
    first = plan(spec, o)
    second: Plan = plan(spec, project(o, first.actions))
    if not first.capped:
        # The one follow-up allowed: BCS 5 step 2 on a worker the first decision drained and that had no pods
        # to move (the projection cannot know evictions take time, so it is empty at once).
        drained = {a.node for a in first.actions if isinstance(a, DrainNode)}
        rest = [a for a in second.actions if not (isinstance(a, StartHTCondor) and a.node in drained)
                and not _replaced(o, first, a)]
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


def _running(o: Observed, pool: str) -> int:
    """Cores ``pool`` runs jobs on now: standalone startds that are up and borrowed ones whose startds have
    joined (``ready``), none on its way out."""
    down = {n.name for n in o.nodes if n.state == NodeState.DOWN}
    return sum(s.cores for s in o.startds
               if s.pool == pool and s.ready and not s.draining and s.node not in down)


@FAST
@given(cases())
def test_make_before_break_a_latency_pool_keeps_running_what_it_needs(case: tuple[EnclaveSpec, Observed]) -> None:
    """During any transition a latency pool's running capacity never drops below its need (or below what it
    ran, when it ran less): what it gives up goes only once what replaces it has joined. Waiting notebooks
    come first (docs/broker.md: they reclaim borrowed capacity before anything else), so states where the
    commons are short are left out."""
    spec, o = case
    _, live = _live(o)
    if Commons.observe(spec, o, live).short() > 1e-9:
        return
    p = plan(spec, o)
    after = project(o, p.actions)
    for_spawns = _taken_for_spawns(o, p)
    for name, ps in p.pools.items():
        if name not in spec.pools or spec.pools[name].latency_objective is None:
            continue
        before = _running(o, name) - for_spawns[name]
        assert _running(after, name) >= min(ps.need - for_spawns[name], before), (name, before, ps, p.actions)


def _taken_for_spawns(o: Observed, p: Plan) -> Counter[str]:
    """Cores of ready borrowed startds each pool gives up because a waiting notebook spawn fits on a worker only
    without them (``hold_room_for_spawns``): notebooks come first even when the commons are short on one worker
    only, which the aggregate ``Commons.short`` above does not see."""
    pods = {s.name: s for s in o.startds}
    taken: Counter[str] = Counter()
    for a in p.actions:
        if "notebook spawn" not in a.reason:
            continue
        names = a.pods if isinstance(a, DeletePods) else (a.startd,) if isinstance(a, DrainStartd) else ()
        for name in names:
            s = pods[name]
            if s.ready and not s.draining:
                taken[s.pool] += s.cores
    return taken
