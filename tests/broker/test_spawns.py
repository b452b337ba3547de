"""Waiting notebook spawns get room on one worker: free cores scattered over the commons do not place a pod."""

from __future__ import annotations

from dataclasses import replace

from enclave.broker.decide import plan
from enclave.broker.effects import project
from enclave.broker.layout import initial_state
from enclave.domain.capacity import (
    DeletePods,
    DeployPods,
    DrainNode,
    DrainStartd,
    NodeState,
    Observed,
    PendingSpawn,
    PoolDemand,
    ReturnNode,
    Startd,
    StartdKind,
    StartHTCondor,
)
from enclave.spec import EnclaveSpec
from enclave.spec.models import NodeRole
from tests.broker.conftest import NOW, make_spec


def _commons(spec: EnclaveSpec, busy: int = 0) -> Observed:
    """Two workers of 48 cores, each with 38 cores of notebooks and one 8-core prompt pod: 2 cores free on
    each, 4 in all. The pods were deployed 100 s ago, so the cooldown keeps them from going back as surplus: whatever
    is freed here is freed for the spawns."""
    o = initial_state(spec, NOW - 100_000)
    nodes = tuple(replace(n, k8s_cores_requested=38.0, k8s_memory_requested_mib=38 * 1024)
                  if n.role == NodeRole.WORKER else n for n in o.nodes)
    pods = tuple(Startd(f"htcondor-{n.name}-1", n.name, StartdKind.POD, "prompt", 8, 32768,
                        busy_cores=busy if n.name == "kub-001" else 0, since=NOW - 100)
                 for n in nodes if n.role == NodeRole.WORKER)
    return replace(o, now=NOW, nodes=nodes, startds=o.startds + pods)


def test_a_spawn_gets_a_whole_worker_freed_not_scattered_cores() -> None:
    spec = make_spec(workers=2, broker={"cooldown_seconds": 900, "max_moves_per_cycle": 50})
    o = _commons(spec)
    # 4 cores wait and 4 are free, but 2 on each worker: counting the total, nothing would be freed.
    spawn = replace(o, notebook_spawns=(PendingSpawn(4.0, 8192),), notebook_pending_cores=4.0)
    p = plan(spec, spawn)
    deleted = [pod for a in p.actions if isinstance(a, DeletePods) for pod in a.pods]
    assert len(deleted) == 1
    assert "fits on" in next(a.reason for a in p.actions if isinstance(a, DeletePods))
    # No pod goes back into the room just freed in the same cycle.
    assert not any(isinstance(a, DeployPods) for a in p.actions)
    # Deciding again on the result: the spawn fits, nothing more to free.
    again = plan(spec, project(spawn, p.actions))
    assert not any(isinstance(a, DeletePods | DrainStartd) for a in again.actions)


def test_a_busy_pod_is_drained_for_a_spawn_and_its_room_counts_as_coming() -> None:
    spec = make_spec(workers=2, broker={"cooldown_seconds": 900, "max_moves_per_cycle": 50})
    o = _commons(spec, busy=8)
    # Neither worker has 4 cores free; kub-002's pod is idle, kub-001's busy: the idle one is cheaper to free.
    one = replace(o, notebook_spawns=(PendingSpawn(4.0, 8192),), notebook_pending_cores=4.0)
    p = plan(spec, one)
    assert [a.pods for a in p.actions if isinstance(a, DeletePods)] == [("htcondor-kub-002-1",)]
    assert not any(isinstance(a, DrainStartd) for a in p.actions)
    # Two spawns of 8 cores: one per worker, so kub-001's busy pod drains too (its jobs finish first) ...
    two = replace(o, notebook_spawns=(PendingSpawn(8.0, 8192), PendingSpawn(8.0, 8192)),
                  notebook_pending_cores=16.0)
    p = plan(spec, two)
    assert [a.pods for a in p.actions if isinstance(a, DeletePods)] == [("htcondor-kub-002-1",)]
    assert [a.startd for a in p.actions if isinstance(a, DrainStartd)] == ["htcondor-kub-001-1"]
    # ... and its room counts as coming: the drain is not repeated, nothing else is taken.
    again = plan(spec, project(two, p.actions))
    assert not any(isinstance(a, DrainStartd | DeletePods) for a in again.actions)


def test_a_spawn_larger_than_any_worker_frees_nothing() -> None:
    spec = make_spec(workers=2, broker={"cooldown_seconds": 900, "max_moves_per_cycle": 50})
    o = _commons(spec)
    # No worker could ever hold 64 cores: nothing the broker gives back would place it, so nothing is.
    big = replace(o, notebook_spawns=(PendingSpawn(64.0, 8192),), notebook_pending_cores=64.0)
    assert not any(isinstance(a, DeletePods | DrainStartd) for a in plan(spec, big).actions)
    # A backend that only tells the total cannot say so, and pods go back until the total fits.
    total = replace(o, notebook_pending_cores=64.0)
    assert any(isinstance(a, DeletePods | DrainStartd) for a in plan(spec, total).actions)


def test_a_pinned_spawn_gets_room_only_where_its_selector_admits() -> None:
    """A spawn of a profile pinned to some workers (``PendingSpawn.nodes``, from its node selector) is placed only
    there: the scheduler would not use room freed elsewhere. Unpinned, the tie (one idle pod on each worker) goes to
    the first worker by name, kub-001; pinned to kub-002, kub-002's pod goes. Pinned to no worker, nothing is
    freed, as for a spawn larger than any worker."""
    spec = make_spec(workers=2, broker={"cooldown_seconds": 900, "max_moves_per_cycle": 50})
    o = _commons(spec)
    for nodes, freed in ((None, [("htcondor-kub-001-1",)]), (frozenset({"kub-002"}), [("htcondor-kub-002-1",)]),
                         (frozenset(), [])):
        spawn = replace(o, notebook_spawns=(PendingSpawn(4.0, 8192, nodes),), notebook_pending_cores=4.0)
        p = plan(spec, spawn)
        assert [a.pods for a in p.actions if isinstance(a, DeletePods)] == freed, nodes
        assert not any(isinstance(a, DrainStartd) for a in p.actions)
        assert not any(isinstance(a, DeletePods | DrainStartd) for a in plan(spec, project(spawn, p.actions)).actions)


def test_bcs5_drains_nothing_while_a_spawn_waits_for_the_room_held_for_it() -> None:
    """lend_mode nodes, three workers of 48 cores: kub-001 empty, kub-002 and kub-003 with 10 cores of notebooks
    (38 free each). A 40-core spawn fits on kub-001 only: its room is held there. Prompt (guarantee 72, DRP's 168
    with work) needs 240 and lacks 168. While the spawn waits, BCS 5 drains nothing: the pods a drain evicts go
    where the scheduler puts them, and kub-001 could take them and leave the spawn no worker (until stop 36 kub-001
    itself was drained, until stop 37 kub-002). Once the spawn runs there (kub-001 at 40 cores requested), the
    drains go fewest Kubernetes cores first: kub-002 (8 + 38 + 38 = 84 cores free, 84 − 48 = 36 ≥ 0 kept for
    notebooks), then kub-003 may not (36 − 48 < 0), nor kub-001."""
    spec = make_spec(workers=3, batch=10, guaranteed=(3, 7, 0, 0), maximum=(10, 9, 5, 5),
                     broker={"lend_mode": "nodes", "cooldown_seconds": 0, "max_moves_per_cycle": 50})
    o = initial_state(spec, NOW - 100_000)
    k8s = {"kub-001": 0, "kub-002": 10, "kub-003": 10}
    nodes = tuple(replace(n, k8s_cores_requested=float(k8s[n.name]), k8s_memory_requested_mib=k8s[n.name] * 1024)
                  if n.name in k8s else n for n in o.nodes)
    o = replace(o, now=NOW, nodes=nodes, notebook_spawns=(PendingSpawn(40.0, 40 * 1024),), notebook_pending_cores=40.0,
                demand={"prompt": PoolDemand(idle_jobs=400, idle_cores=400),
                        "drp": PoolDemand(idle_jobs=400, idle_cores=400)})
    p = plan(spec, o)
    assert p.pools["prompt"].lend == 168
    assert not any(isinstance(a, DrainNode) for a in p.actions)
    running = replace(o, notebook_spawns=(), notebook_pending_cores=0.0, nodes=tuple(
        replace(n, k8s_cores_requested=40.0, k8s_memory_requested_mib=40 * 1024) if n.name == "kub-001" else n
        for n in o.nodes))
    assert [a.node for a in plan(spec, running).actions if isinstance(a, DrainNode)] == ["kub-002"]
    # Pinned to kub-002 (38 free cores, no worker pod to free, no worker lent whole), the spawn fits nowhere the
    # broker could make room: it is not held on kub-001, where the scheduler would not place it, and BCS 5 goes on
    # (until stop 39 it paused until JupyterHub gave the spawn up), but never drains kub-002, the one worker it may
    # have; nor is it in the commons-wide reserve, which room elsewhere would fill. kub-001 drains (124 − 48 = 76
    # free cores left), then kub-003 (28 left, no headroom kept).
    pinned = replace(o, notebook_spawns=(PendingSpawn(40.0, 40 * 1024, frozenset({"kub-002"})),))
    assert [a.node for a in plan(spec, pinned).actions if isinstance(a, DrainNode)] == ["kub-001", "kub-003"]


def test_a_spawn_no_worker_could_hold_keeps_bcs5_off_no_worker() -> None:
    """A 64-core spawn, larger than every 48-core worker, that a taint keeps off kub-004 (a worker dedicated to
    other work: it may go to the three others). No room the broker makes places it, so it holds BCS 5 back nowhere:
    the drains are those made with no spawn waiting. Until stop 40 the workers it may go to — all but one — were
    kept from BCS 5 until JupyterHub gave it up (review)."""
    spec = make_spec(workers=4, batch=10, guaranteed=(3, 7, 0, 0), maximum=(10, 9, 5, 5),
                     broker={"lend_mode": "nodes", "cooldown_seconds": 0, "max_moves_per_cycle": 50})
    o = initial_state(spec, NOW - 100_000)
    o = replace(o, now=NOW, demand={"prompt": PoolDemand(idle_jobs=400, idle_cores=400),
                                    "drp": PoolDemand(idle_jobs=400, idle_cores=400)})
    alone = [a.node for a in plan(spec, o).actions if isinstance(a, DrainNode)]
    assert alone and set(alone) & {"kub-001", "kub-002", "kub-003"}
    big = replace(o, notebook_spawns=(PendingSpawn(64.0, 8192, frozenset({"kub-001", "kub-002", "kub-003"})),))
    assert [a.node for a in plan(spec, big).actions if isinstance(a, DrainNode)] == alone


def _nodes_mode(workers: int, requested: dict[str, float], lent: dict[str, int], spawns: list[float], *,
                headroom: float = 0.0, drained: tuple[str, ...] = ()) -> tuple[EnclaveSpec, Observed]:
    """lend_mode nodes, workers of 48 cores / 256 GiB: ``requested`` cores of notebooks on ready ones, ``lent`` ones
    lent whole to prompt with that many busy cores, ``drained`` ones drained for batch (empty, HTCondor not started
    yet); spawns of ``spawns`` cores at 1 GiB per core. Prompt (400 cores queued, guarantee 72, maximum 240) lacks
    what DRP's and user's work leave it, so BCS 5 would drain for it."""
    spec = make_spec(workers=workers, batch=10, maximum=(10, 9, 5, 5), broker={
        "lend_mode": "nodes", "cooldown_seconds": 900, "notebook_headroom_cores": headroom, "max_moves_per_cycle": 50})
    o = initial_state(spec, NOW - 100_000)
    nodes = tuple(replace(n, state=NodeState.HTCONDOR) if n.name in lent
                  else replace(n, state=NodeState.DRAINING) if n.name in drained
                  else replace(n, k8s_cores_requested=requested.get(n.name, 0.0),
                               k8s_memory_requested_mib=int(requested.get(n.name, 0.0) * 1024))
                  if n.role == NodeRole.WORKER else n for n in o.nodes)
    whole = tuple(Startd(name, name, StartdKind.NODE, "prompt", 48, 256 * 1024, busy_cores=busy, since=NOW - 100_000)
                  for name, busy in lent.items())
    return spec, replace(o, now=NOW, nodes=nodes, startds=o.startds + whole,
                         notebook_spawns=tuple(PendingSpawn(c, int(c * 1024)) for c in spawns),
                         notebook_pending_cores=sum(spawns), demand={
                             "prompt": PoolDemand(idle_jobs=400, idle_cores=400),
                             "drp": PoolDemand(idle_jobs=400, idle_cores=400, running_jobs=96, running_cores=96),
                             "user": PoolDemand(idle_jobs=40, idle_cores=40, running_jobs=24, running_cores=24)})


_MOVES = DrainStartd | ReturnNode | DeletePods | DrainNode


def test_a_spawn_no_ready_worker_holds_gets_a_whole_lent_worker_back() -> None:
    """kub-001 to kub-003 have 38 cores of notebooks each: 30 free cores hold the 16-core spawn in total (headroom 0),
    so the total alone gives nothing back, yet no ready worker has 16, and none runs a worker pod to free. kub-004
    is lent whole to prompt, which lacks more still. Until stop 37 the spawn waited for ever."""
    spec, busy = _nodes_mode(4, {"kub-001": 38, "kub-002": 38, "kub-003": 38}, {"kub-004": 8}, [16.0])
    p = plan(spec, busy)
    assert p.pools["prompt"].lend > p.pools["prompt"].lent  # prompt lacks capacity: BCS 5 would drain for it
    # Its jobs run: drained, they finish first (prompt's take_away is drain), then the worker goes back.
    assert [(a.startd, "notebook spawn" in a.reason) for a in p.actions if isinstance(a, DrainStartd)] == [
        ("kub-004", True)]
    # No replacement is drained while the spawn waits: its pods could take the room the spawn waits for.
    assert not any(isinstance(a, DrainNode) for a in p.actions)
    # Deciding again while it drains: it is counted as coming back for the spawn, nothing else goes.
    assert not any(isinstance(a, _MOVES) for a in plan(spec, project(busy, p.actions)).actions)
    # Idle, it goes back at once, and on the result the spawn has its room there.
    spec, idle = _nodes_mode(4, {"kub-001": 38, "kub-002": 38, "kub-003": 38}, {"kub-004": 0}, [16.0])
    p = plan(spec, idle)
    assert [a.node for a in p.actions if isinstance(a, ReturnNode | DrainNode)] == ["kub-004"]
    assert not any(isinstance(a, _MOVES) for a in plan(spec, project(idle, p.actions)).actions)


def test_spawns_share_the_worker_that_comes_back() -> None:
    """Four ready workers with 38 cores of notebooks each: 40 free cores hold two 16-core spawns in total, but no
    worker holds one. They fit together on one 48-core worker: one of three idle lent workers goes back, the first
    by pool priority, then busy cores, then name (kub-005), and the second spawn counts on it too."""
    ready = {f"kub-00{i}": 38.0 for i in range(1, 5)}
    spec, two = _nodes_mode(7, ready, {"kub-005": 0, "kub-006": 0, "kub-007": 0}, [16.0, 16.0])
    p = plan(spec, two)
    assert [a.node for a in p.actions if isinstance(a, ReturnNode | DrainNode)] == ["kub-005"]
    assert not any(isinstance(a, _MOVES) for a in plan(spec, project(two, p.actions)).actions)


def test_a_worker_the_notebooks_already_reclaimed_counts_for_the_spawn() -> None:
    """With 20 cores kept for notebooks the commons' 30 free cores fall short of 20 + 16 in total, so the first phase
    drains a lent worker (the least busy: kub-004, 2 busy cores against kub-005's 8); the spawn, which no ready worker
    holds, counts on that one coming back: no second worker goes."""
    spec, o = _nodes_mode(5, {"kub-001": 38, "kub-002": 38, "kub-003": 38}, {"kub-004": 2, "kub-005": 8}, [16.0],
                          headroom=20.0)
    p = plan(spec, o)
    assert [a.startd for a in p.actions if isinstance(a, DrainStartd)] == ["kub-004"]
    assert not any(isinstance(a, ReturnNode | DrainNode) for a in p.actions)


def test_a_drained_worker_on_its_way_to_htcondor_goes_back_for_a_spawn() -> None:
    """kub-001 was drained for prompt by an earlier decision and is empty; HTCondor has not started there. A 24-core
    spawn fits on no ready worker (kub-002 to kub-004 have 10, 10 and 18 cores free): kub-001 goes back rather than
    starting HTCondor, as nothing runs there yet. Deciding again on the result moves nothing."""
    spec, o = _nodes_mode(4, {"kub-002": 38, "kub-003": 38, "kub-004": 30}, {}, [24.0], drained=("kub-001",))
    p = plan(spec, o)
    assert [(type(a).__name__, a.node) for a in p.actions if isinstance(a, ReturnNode | StartHTCondor | DrainNode)] \
        == [("ReturnNode", "kub-001")]
    assert not any(isinstance(a, _MOVES | StartHTCondor) for a in plan(spec, project(o, p.actions)).actions)


def test_what_is_back_soonest_serves_a_spawn_first() -> None:
    """One 16-core spawn that no ready worker holds (kub-001 to kub-003 at 38 cores of notebooks). Lent to prompt,
    whose jobs are drained (not vacated): kub-004 already draining with 8 busy cores, kub-005 with 20 busy and
    kub-006 with 4. Nothing idle is lent, so the draining kub-004 is counted and nothing moves; were kub-004 not
    draining, the least busy lent worker would drain (kub-006, 4 < 20); with kub-007 lent and idle, it goes back at
    once rather than the spawn waiting for kub-004's jobs."""
    ready = {"kub-001": 38.0, "kub-002": 38.0, "kub-003": 38.0}
    spec, o = _nodes_mode(6, ready, {"kub-004": 8, "kub-005": 20, "kub-006": 4}, [16.0])
    draining = replace(o, startds=tuple(replace(s, draining=True) if s.name == "kub-004" else s for s in o.startds))
    assert not any(isinstance(a, _MOVES) for a in plan(spec, draining).actions)
    assert [a.startd for a in plan(spec, o).actions if isinstance(a, DrainStartd)] == ["kub-006"]
    spec, o = _nodes_mode(7, ready, {"kub-004": 8, "kub-005": 20, "kub-006": 4, "kub-007": 0}, [16.0])
    draining = replace(o, startds=tuple(replace(s, draining=True) if s.name == "kub-004" else s for s in o.startds))
    p = plan(spec, draining)
    assert [a.node for a in p.actions if isinstance(a, ReturnNode)] == ["kub-007"]
    assert not any(isinstance(a, DrainStartd | DrainNode) for a in p.actions)


def test_spawns_are_placed_again_with_a_worker_back_among_the_ready_ones() -> None:
    """Spawns of 26, 24 and 24 cores; kub-002 has 26 cores free, kub-003 to kub-007 have 20; kub-001, kub-008 and
    kub-009 are lent whole and idle. Largest first, 26 goes on kub-002 and 24 fits nowhere, so kub-001 goes back. On
    the result kub-001 is ready and first by name: 26 goes there (22 left), 24 on kub-002, and the last 24 fits
    nowhere, so kub-008 goes back too. The decision places the spawns again with each worker back among the ready
    ones, as the next decision will: both go back at once, and deciding again moves nothing (a second reviewer's
    case: until then kub-008 went back a decision later)."""
    ready = {"kub-002": 22.0, **{f"kub-00{i}": 28.0 for i in range(3, 8)}}
    spec, o = _nodes_mode(9, ready, {"kub-001": 0, "kub-008": 0, "kub-009": 0}, [24.0, 24.0, 26.0])
    p = plan(spec, o)
    assert [a.node for a in p.actions if isinstance(a, ReturnNode | DrainNode)] == ["kub-001", "kub-008"]
    assert not any(isinstance(a, _MOVES) for a in plan(spec, project(o, p.actions)).actions)


def test_pods_are_freed_only_for_the_placement_that_stands() -> None:
    """A 24-core and a 20-core spawn. kub-003 has 16 cores of notebooks and three busy 8-core prompt pods (8 cores
    free): the 24-core spawn fits there once two pods go. kub-002 and kub-004 to kub-006 have 10 cores free each
    (the commons' 48 free cores hold both spawns in total, so the notebooks' first phase reclaims nothing), and
    kub-001 is lent whole and idle. The 20-core spawn fits on no ready worker even without pods, so kub-001 goes
    back at once; on the result it is ready and first by name, and both spawns fit there (24 + 20 of its 48 cores).
    The placement is made again with it, as the next decision makes it, and kub-003's pods stay: until stop 38 the
    first placement had already drained two of them for nothing (a third review's case)."""
    ready = {"kub-002": 38.0, "kub-003": 16.0, **{f"kub-00{i}": 38.0 for i in range(4, 7)}}
    spec, o = _nodes_mode(6, ready, {"kub-001": 0}, [20.0, 24.0])
    pods = tuple(Startd(f"htcondor-kub-003-{i}", "kub-003", StartdKind.POD, "prompt", 8, 8192, busy_cores=8,
                        since=NOW - 100_000) for i in (1, 2, 3))
    o = replace(o, startds=o.startds + pods)
    p = plan(spec, o)
    assert [(type(a).__name__, getattr(a, "node", None)) for a in p.actions if isinstance(a, _MOVES)] == [
        ("ReturnNode", "kub-001")]
    assert not any(isinstance(a, _MOVES) for a in plan(spec, project(o, p.actions)).actions)


def test_a_worker_on_its_way_back_is_neither_claimed_nor_returned_again() -> None:
    """kub-004 is labelled for HTCondor with no startd at all: its node pod was deleted by a return (live keeps the
    label until the pod is gone, ``KubeCluster.return_node``), or lost. A worker where HTCondor was started is listed
    with its startd, one not reported yet too. So it is not on its way to HTCondor: no pool claims it, and no second
    ReturnNode (a no-op) goes out for it every cycle (review: both happened until stop 38)."""
    spec, o = _nodes_mode(4, {"kub-001": 38, "kub-002": 38, "kub-003": 38}, {}, [])
    o = replace(o, nodes=tuple(replace(n, state=NodeState.HTCONDOR) if n.name == "kub-004" else n for n in o.nodes))
    assert not [a for a in plan(spec, o).actions if getattr(a, "node", None) == "kub-004"]  # prompt lacks cores
    idle = replace(o, demand={})  # and with no pool lacking (no claim), it is not returned again either
    assert not [a for a in plan(spec, idle).actions if getattr(a, "node", None) == "kub-004"]
