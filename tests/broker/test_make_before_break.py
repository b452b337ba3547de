"""Make before break (issue 15): a latency pool's standalone nodes go only once what replaces them runs.

Spec: ``make_spec`` with 2 workers (48 cores each) and 10 batch nodes of 24 cores (240 cores): prompt is
guaranteed 3 nodes (72 cores) and has a latency objective; drp may hold up to 9 nodes (216 cores). Pods are
the spec's default 8 cores. At night prompt is pre-warmed: it needs its guarantee (72 cores), which the idle
commons cover (``prewarm_cover``), so its standalone target falls to 0 and drp's rises to its maximum.
"""

from __future__ import annotations

from dataclasses import replace

from enclave.broker.decide import plan
from enclave.broker.effects import project
from enclave.domain.capacity import DeployPods, Node, Observed, PoolDemand, Relabel, Startd, StartdKind
from enclave.spec.models import NodeRole
from tests.broker.conftest import NOW, make_spec

NIGHT = NOW + 10 * 3600  # 23:20 UTC = 20:20 local at Cerro Pachón: after evening twilight in April
OLD = NIGHT - 100_000.0


def _state() -> Observed:
    nodes = [Node(f"kub-{i:03d}", "kub", NodeRole.WORKER, 48, 256 * 1024, since=OLD) for i in (1, 2)]
    nodes += [Node(f"condor-{i:03d}", "condor", NodeRole.BATCH_ONLY, 24, 128 * 1024, since=OLD) for i in range(1, 11)]
    startds = [Startd(f"condor-{i:03d}", f"condor-{i:03d}", StartdKind.STANDALONE, "prompt" if i <= 3 else "drp",
                      24, 128 * 1024, busy_cores=0 if i <= 3 else 24, since=OLD) for i in range(1, 11)]
    return Observed(now=NIGHT, nodes=tuple(nodes), startds=tuple(startds),
                    demand={"drp": PoolDemand(idle_jobs=1000, idle_cores=1000, running_jobs=168, running_cores=168)})


def test_pods_deployed_first_nodes_kept_until_their_startds_join() -> None:
    spec = make_spec(workers=2, batch=10, broker={"cooldown_seconds": 900})
    first = plan(spec, _state())
    # Pre-warm: prompt's 72 cores come from the commons (9 pods of 8), and its 3 nodes stay for now.
    assert sum(len(a.pods) * a.cores_per_pod for a in first.actions if isinstance(a, DeployPods)) == 72
    assert not [a for a in first.actions if isinstance(a, Relabel)]
    # Pods Kubernetes runs but whose startds have not joined: still nothing to hand away.
    starting = project(_state(), first.actions)
    assert all(not s.ready for s in starting.startds if s.kind == StartdKind.POD)
    assert plan(spec, replace(starting, now=NIGHT + 60)).actions == []
    # Once they have joined, drp takes prompt's nodes up to its target: its maximum 216 − the 168 it holds = 48.
    joined = replace(starting, now=NIGHT + 120, startds=tuple(replace(s, ready=True) for s in starting.startds))
    moves = [a for a in plan(spec, joined).actions if isinstance(a, Relabel)]
    assert {(a.from_pool, a.to_pool) for a in moves} == {("prompt", "drp")}
    assert len(moves) * 24 == 48


def test_a_running_pod_is_not_given_back_before_the_standalone_that_replaces_it_runs() -> None:
    # Day time, no pre-warm: prompt runs 8 cores of jobs in one borrowed pod and holds no node. Its guarantee
    # (72) covers its need (8) from standalone, so it should borrow nothing (lend 0) and the pod is surplus on
    # paper; but it is all prompt runs on until the nodes relabelled to it this cycle (still running drp's
    # jobs) are its own: the pod stays.
    spec = make_spec(workers=2, batch=10, broker={"cooldown_seconds": 900})
    o = _state()
    day = NOW
    startds = [replace(s, pool="drp", since=day - 100_000) for s in o.startds]
    pod = Startd("htcondor-kub-001-1", "kub-001", StartdKind.POD, "prompt", 8, 32768, busy_cores=8,
                 since=day - 100_000)
    o = replace(o, now=day, startds=(*startds, pod),
                demand={**o.demand, "prompt": PoolDemand(running_jobs=8, running_cores=8)})
    p = plan(spec, o)
    assert any(isinstance(a, Relabel) and a.to_pool == "prompt" for a in p.actions)
    assert not any(getattr(a, "pods", None) == (pod.name,) or getattr(a, "startd", None) == pod.name
                   for a in p.actions)


def test_memory_aware_need_counts_the_jobs_memory() -> None:
    """32 prompt jobs of 1 core / 8 GiB wait (issue 15). Pods of the spec's 8 cores / 32 GiB would run 4 of them
    each; the broker fits its pods to the jobs instead (``pod_shape``: 8 cores / 64 GiB), so the thinnest shape
    prompt may run on is a batch-only node, 24 cores / 128 GiB, which runs 16 of them: prompt needs 48 cores,
    not 32. Prompt's guarantee is 0 here, drp holds all ten nodes (240 cores) and wants more."""
    spec = make_spec(workers=2, batch=10, guaranteed=(0, 4, 1, 0), maximum=(10, 9, 5, 5),
                     broker={"cooldown_seconds": 900, "latency_headroom": 0})  # memory alone, no margin
    nodes = [Node(f"kub-{i:03d}", "kub", NodeRole.WORKER, 48, 256 * 1024, since=OLD) for i in (1, 2)]
    nodes += [Node(f"condor-{i:03d}", "condor", NodeRole.BATCH_ONLY, 24, 128 * 1024, since=OLD) for i in range(1, 11)]
    startds = [Startd(f"condor-{i:03d}", f"condor-{i:03d}", StartdKind.STANDALONE, "drp", 24, 128 * 1024,
                      busy_cores=24, since=OLD) for i in range(1, 11)]
    o = Observed(now=NOW, nodes=tuple(nodes), startds=tuple(startds), demand={
        "drp": PoolDemand(idle_jobs=1000, idle_cores=1000, running_jobs=240, running_cores=240),
        "prompt": PoolDemand(idle_jobs=32, idle_cores=32, idle_memory_mib=32 * 8192)})
    p = plan(spec, o)
    # Memory: 256 GiB at 128/24 GiB per core of a batch node (the thinnest shape) = 48 cores; cores: 32.
    assert p.pools["prompt"].need == 48
    assert p.pools["prompt"].pod == (8, 64 * 1024)
    # Prompt (priority 100) is served first: its standalone target is all of its need, drp's the rest (192).
    assert (p.pools["prompt"].target, p.pools["drp"].target) == (48, 192)
    # Moves toward a target: 2 nodes (48 cores), prompt's whole target.
    moved = [a for a in p.actions if isinstance(a, Relabel) and a.to_pool == "prompt"]
    assert len(moved) == 2
