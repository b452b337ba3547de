"""Borrowed pods counted in cores of need (issue 15, item 2: ``decide.cores_of_need``, ``PoolState.borrowed``).

A pool's need counts its jobs' memory in cores of the thinnest shape it may run on (``memory_cores``): for jobs of
1 core / 8 GiB that is a batch-only node of 24 cores / 128 GiB (16 jobs, so 1.5 cores a job). HTCondor starts a
job only where both its cores and its memory fit (HTCondor manual, "Submitting a job": ``RequestCpus`` and
``RequestMemory`` against the slot's ``Cpus`` and ``Memory``), so a pod of 8 cores / 64 GiB (``pod_shape`` for
those jobs) runs 8 of them: 12 cores of need. Counted as its 8 cores, the pool borrowed half as much again as its
jobs used. Expected results below are worked out from that rule.
"""

from __future__ import annotations

from dataclasses import replace

from enclave.broker.decide import Cycle, cores_of_need, give_back_surplus, plan
from enclave.broker.effects import project
from enclave.domain.capacity import DeployPods, Node, Observed, PoolDemand, Relabel, Startd, StartdKind
from enclave.spec.models import NodeRole
from tests.broker.conftest import NOW, make_spec
from tests.broker.test_phases import _commons, _pool, _what, _worker

GIB = 1024
BATCH = 128 * GIB / 24  # MiB per core of make_spec's batch-only nodes: the thinnest shape for fat jobs
NIGHT = NOW + 10 * 3600  # 23:20 UTC = 20:20 local at Cerro Pachón: prompt is pre-warmed
OLD = NIGHT - 100_000.0


def test_a_pod_fitted_to_fat_jobs_covers_their_memory_in_batch_cores() -> None:
    # 8 cores / 64 GiB runs 8 jobs of 8 GiB; the need counts each as 8 GiB / (128/24 GiB) = 1.5 cores.
    assert cores_of_need(8, 64 * GIB, 8 * GIB, BATCH) == 12
    # The spec's default 8 cores / 32 GiB runs 4 of them: 6.
    assert cores_of_need(8, 32 * GIB, 8 * GIB, BATCH) == 6
    # A pod smaller than one job runs none.
    assert cores_of_need(4, 4 * GIB, 8 * GIB, BATCH) == 0


def test_for_jobs_no_fatter_than_the_thinnest_shape_a_pod_covers_what_its_memory_holds() -> None:
    # 2 GiB jobs, pods of 16 cores / 32 GiB (the thinnest shape is then the pod, 2 GiB a core): 16.
    assert cores_of_need(16, 32 * GIB, 2 * GIB, 2 * GIB) == 16
    # The spec's 8 cores / 32 GiB for those jobs: 8, its cores (its memory would hold 16).
    assert cores_of_need(8, 32 * GIB, 2 * GIB, 2 * GIB) == 8


def _night(prompt: PoolDemand, pods: tuple[Startd, ...] = ()) -> Observed:
    """Two idle workers, ten batch nodes held by drp, which has a backlog."""
    nodes = [Node(f"kub-{i:03d}", "kub", NodeRole.WORKER, 48, 256 * GIB, since=OLD) for i in (1, 2)]
    nodes += [Node(f"condor-{i:03d}", "condor", NodeRole.BATCH_ONLY, 24, 128 * GIB, since=OLD) for i in range(1, 11)]
    startds = [Startd(f"condor-{i:03d}", f"condor-{i:03d}", StartdKind.STANDALONE, "drp", 24, 128 * GIB,
                      busy_cores=24, since=OLD) for i in range(1, 11)]
    return Observed(now=NIGHT, nodes=tuple(nodes), startds=(*startds, *pods), demand={
        "drp": PoolDemand(idle_jobs=1000, idle_cores=1000, running_jobs=240, running_cores=240),
        "prompt": prompt})


def _jobs_8g(n: int) -> PoolDemand:
    return PoolDemand(idle_jobs=n, idle_cores=n, idle_memory_mib=n * 8 * GIB)


def test_the_pre_warmed_pool_borrows_pods_for_its_jobs_not_for_their_cores_of_need() -> None:
    """48 prompt jobs of 8 GiB wait. Need: 48 · 8 GiB at 128/24 GiB a core = 72 cores (also prompt's guarantee,
    3 of 10 nodes, the pre-warm's default). A pod of 8 cores / 64 GiB covers 12 of them, and each idle worker
    (48 cores / 256 GiB) holds 4 such pods by memory: the commons cover all 72, so prompt takes no batch node
    and borrows 72 / 12 = 6 pods (48 cores, one per job) — not 9 pods of 8 counted as 72 cores."""
    spec = make_spec(workers=2, batch=10, broker={"cooldown_seconds": 900})
    p = plan(spec, _night(_jobs_8g(48)))
    prompt = p.pools["prompt"]
    assert (prompt.need, prompt.target, prompt.lend) == (72, 0, 72)
    deployed = [a for a in p.actions if isinstance(a, DeployPods)]
    assert {(a.cores_per_pod, a.memory_mib_per_pod) for a in deployed} == {(8, 64 * GIB)}
    assert sum(len(a.pods) for a in deployed) == 6
    assert not [a for a in p.actions if isinstance(a, Relabel) and a.to_pool == "prompt"]
    # Deciding again on the result changes nothing: the 6 pods count 72 cores of need, starting or not.
    assert plan(spec, project(_night(_jobs_8g(48)), p.actions)).actions == []


def test_pods_of_another_shape_count_what_they_run() -> None:
    """Prompt holds 6 ready pods of the spec's 8 cores / 32 GiB, deployed before its jobs' memory was known. For
    the same 48 jobs of 8 GiB each covers 6 cores of need (4 jobs): 36 of the 72. It borrows 36 / 12 = 3 pods
    of 8 cores / 64 GiB more; the old ones are not surplus (36 + 36 = 72 is what it should borrow)."""
    spec = make_spec(workers=2, batch=10, broker={"cooldown_seconds": 900})
    old = tuple(Startd(f"htcondor-kub-00{w}-{k}", f"kub-00{w}", StartdKind.POD, "prompt", 8, 32 * GIB, ready=True,
                       since=OLD) for w in (1, 2) for k in (1, 2, 3))
    p = plan(spec, _night(_jobs_8g(48), old))
    # After the decision: 36 + 3 · 12 cores of need, 48 + 3 · 8 cores.
    assert (p.pools["prompt"].lent, p.pools["prompt"].lent_cores) == (72, 72)
    deployed = [a for a in p.actions if isinstance(a, DeployPods)]
    assert sum(len(a.pods) for a in deployed) == 3
    assert {(a.cores_per_pod, a.memory_mib_per_pod) for a in deployed} == {(8, 64 * GIB)}
    assert not [a for a in p.actions if getattr(a, "startd", None) in {s.name for s in old}]


def test_give_back_counts_a_pod_by_the_cores_of_need_it_covers() -> None:
    """Prompt should borrow 24 cores of need and holds 4 ready pods of 8 cores / 64 GiB for 8 GiB jobs: 48 (32
    cores). Surplus 24; with hysteresis 0.5 a pod (12) goes while 24 ≥ 12 · 1.5, then 12 < 18: one pod goes.
    Counted by cores (32 − 24 = 8 < 8 · 1.5) none would."""
    spec = make_spec(workers=2, batch=10, broker={"cooldown_seconds": 900, "hysteresis": 0.5})
    pods = [Startd(f"p{k}", "w1", StartdKind.POD, "prompt", 8, 64 * GIB, ready=True, since=OLD) for k in range(4)]
    prompt = _pool("prompt", 100, lend=24, lent=48, ready_lent=48, lent_cores=32, need=24, latency=True,
                   fit=(8.0 * GIB, BATCH))
    c = Cycle.start(spec, NOW, "broker", {"prompt": prompt})
    give_back_surplus(c, _commons(spec, [_worker("w1")], pods))
    assert _what(c.actions) == [("delete", "p0")]
    assert (prompt.lent, prompt.ready_lent, prompt.lent_cores) == (36, 36, 24)


def test_the_maximum_counts_the_pods_cores() -> None:
    """A cap is a cap in cores, whatever the pods cover. Prompt (maximum 6 nodes: 144 cores) holds 3 batch nodes
    (72) and 8 ready pods of 8 cores / 32 GiB filling kub-001 (64 cores; 4 jobs of 8 GiB each: 48 cores of
    need), with 120 jobs of 8 GiB waiting (180 cores of need, capped at 144). It lacks 48 cores of need, 4 pods
    of 8 cores / 64 GiB on kub-002; but 72 + 64 + 8 = 144 allows one pod only (counting the old pods at the 48
    they cover would allow three: 160 cores)."""
    spec = make_spec(workers=2, batch=10, broker={"cooldown_seconds": 900})
    o = _night(_jobs_8g(120), tuple(Startd(f"htcondor-kub-001-{k}", "kub-001", StartdKind.POD, "prompt", 8,
                                          32 * GIB, ready=True, since=OLD) for k in range(1, 9)))
    o = replace(o, startds=tuple(replace(s, pool="prompt") if s.name in {"condor-001", "condor-002", "condor-003"}
                                 else s for s in o.startds))
    p = plan(spec, o)
    prompt = p.pools["prompt"]
    # After the decision: 48 + 12 cores of need, 64 + 8 cores.
    assert (prompt.maximum, prompt.need, prompt.lent, prompt.lent_cores) == (144, 144, 60, 72)
    deployed = [a for a in p.actions if isinstance(a, DeployPods)]
    assert [(a.node, len(a.pods), a.cores_per_pod) for a in deployed] == [("kub-002", 1, 8)]
    held = sum(s.cores for s in project(o, p.actions).startds if s.pool == "prompt" and not s.draining)
    assert held == 144
