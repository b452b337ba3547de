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
    Observed,
    PendingSpawn,
    PoolDemand,
    Startd,
    StartdKind,
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


def test_bcs5_never_drains_the_worker_a_spawn_is_held_on() -> None:
    """lend_mode nodes, three workers of 48 cores: kub-001 empty, kub-002 and kub-003 with 10 cores of notebooks
    (38 free each). A 40-core spawn fits on kub-001 only: its room is held there. Prompt (guarantee 72, DRP's 168
    with work) needs 240 and lacks 168, so BCS 5 drains workers, fewest Kubernetes cores first — kub-001, which
    would leave the spawn no worker with room, though the commons' total would keep its 40 (124 − 48 = 76). So
    kub-002 drains (76 ≥ 40), and then kub-003 may not (76 − 48 = 28 < 40). Until stop 36 kub-001 was drained."""
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
    assert [a.node for a in p.actions if isinstance(a, DrainNode)] == ["kub-002"]
