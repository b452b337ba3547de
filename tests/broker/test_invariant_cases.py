"""Hand-built cases for issue 15's invariants that the generated ones did not reach. A mutation check (stop 53)
changed one line at a time in the decision code; each of these mutants passed every test until the case here was
added. Each expected result follows from the rule quoted in its test, not from the program's output."""

from __future__ import annotations

from enclave.broker.decide import plan
from enclave.broker.effects import project
from enclave.domain.capacity import (
    DeletePods,
    DrainStartd,
    Node,
    Observed,
    PendingSpawn,
    PoolDemand,
    Relabel,
    RunningJob,
    Startd,
    StartdKind,
)
from enclave.spec.models import NodeRole
from tests.broker.conftest import NOW, make_spec
from tests.broker.test_make_before_break import _state

OLD = NOW - 100_000


def _held(o: Observed, pool: str) -> float:
    return sum(s.cores for s in o.startds if s.pool == pool and not s.draining)


def test_a_promise_never_takes_a_donor_with_work_below_its_guarantee() -> None:
    """docs/broker.md, Relabel: "The donor pool never drops below its own guarantee". Three 24-core nodes, prompt,
    DRP and users each guaranteed one. Prompt holds two and runs 48 cores; the users hold one and run a job; DRP,
    with 400 jobs queued, holds none and is below its guarantee, but no donor can give without going below its own.
    (Mutant: a promise took the users' only node.)"""
    spec = make_spec(workers=0, batch=3, guaranteed=(1, 1, 1, 0), maximum=(3, 3, 3, 3),
                     broker={"cooldown_seconds": 0})
    owner = {"condor-001": "prompt", "condor-002": "prompt", "condor-003": "user"}
    nodes = tuple(Node(n, "condor", NodeRole.BATCH_ONLY, 24, 128 * 1024, since=OLD) for n in owner)
    startds = tuple(Startd(n, n, StartdKind.STANDALONE, p, 24, 128 * 1024, busy_cores=24 if p == "prompt" else 1,
                           since=OLD) for n, p in owner.items())
    demand = {"prompt": PoolDemand(running_jobs=48, running_cores=48), "drp": PoolDemand(idle_jobs=400, idle_cores=400),
              "user": PoolDemand(running_jobs=1, running_cores=1), "general": PoolDemand()}
    o = Observed(now=NOW, nodes=nodes, startds=startds, demand=demand)
    p = plan(spec, o)
    assert not [a for a in p.actions if isinstance(a, Relabel) and a.from_pool == "user"]
    assert _held(project(o, p.actions), "user") >= 24


def test_a_surplus_borrowed_pod_given_back_is_the_one_that_loses_least() -> None:
    """docs/broker.md, "Least work lost": of a donor's startds, those whose jobs would lose the least go first. DRP
    may borrow and needs 8 cores (2 running, 6 queued) while holding two ready 8-core pods, each running one job:
    one started 100,000 s ago, the other 100 s ago. One pod is surplus: the one whose job has run 100 s.
    (Mutant: the order was reversed for give-backs, which only relabels were checked for.)"""
    spec = make_spec(workers=1, batch=2, guaranteed=(0, 0, 0, 0), maximum=(2, 2, 2, 2),
                     broker={"cooldown_seconds": 0, "hysteresis": 0.0, "pod_cores": 8, "max_lend_share": 1.0,
                             "notebook_headroom_cores": 0, "lend_to": ["prompt", "drp"]})
    nodes = (Node("kub-001", "kub", NodeRole.WORKER, 48, 256 * 1024, since=OLD),
             *(Node(f"condor-00{i}", "condor", NodeRole.BATCH_ONLY, 24, 128 * 1024, since=OLD) for i in (1, 2)))
    startds = (*(Startd(f"condor-00{i}", f"condor-00{i}", StartdKind.STANDALONE, "prompt", 24, 128 * 1024,
                        busy_cores=24, since=OLD, jobs=tuple(RunningJob(1, NOW - 50, "prompt") for _ in range(24)))
                 for i in (1, 2)),
               Startd("htcondor-kub-001-1", "kub-001", StartdKind.POD, "drp", 8, 8192, busy_cores=1, since=OLD,
                      jobs=(RunningJob(1, NOW - 100_000, "drp"),)),
               Startd("htcondor-kub-001-2", "kub-001", StartdKind.POD, "drp", 8, 8192, busy_cores=1, since=OLD,
                      jobs=(RunningJob(1, NOW - 100, "drp"),)))
    demand = {"prompt": PoolDemand(running_jobs=48, running_cores=48),
              "drp": PoolDemand(running_jobs=2, running_cores=2, idle_jobs=6, idle_cores=6),
              "user": PoolDemand(), "general": PoolDemand()}
    p = plan(spec, Observed(now=NOW, nodes=nodes, startds=startds, demand=demand))
    given = [a.startd for a in p.actions if isinstance(a, DrainStartd)] + [
        pod for a in p.actions if isinstance(a, DeletePods) for pod in a.pods]
    assert given == ["htcondor-kub-001-2"]


def test_pods_kept_beside_standalone_nodes_stay_within_the_pools_maximum() -> None:
    """docs/broker.md, the pools: a pool never holds more than its maximum. The night's pre-warm of
    test_make_before_break (prompt holds 3 idle nodes, DRP 7 busy ones; make before break keeps prompt's nodes while
    its pods start) with prompt's maximum at 4 nodes, 96 cores: its pods may add at most 24. (Mutant: the pods
    were sized against the maximum without the standalone cores it keeps.)"""
    spec = make_spec(workers=2, batch=10, maximum=(4, 9, 5, 5), broker={"cooldown_seconds": 900})
    o = _state()
    p = plan(spec, o)
    assert p.pools["prompt"].maximum == 96
    assert _held(project(o, p.actions), "prompt") <= 96


def test_room_for_a_spawn_is_made_where_its_memory_fits_too() -> None:
    """docs/broker.md, notebook spawns: the broker frees room on a worker where the spawn fits once a pod goes, cores
    and memory (kube-scheduler places a pod only where both fit). kub-001 (48 cores, 256 GiB) runs three prompt pods
    of 8 cores and 64 GiB, in cooldown: 24 cores and 64 GiB are free. A spawn of 4 cores and 100 GiB fits the cores
    and not the memory, so a pod must go. (Mutant: the room was judged by cores alone, and nothing was freed.)"""
    spec = make_spec(workers=1, batch=1, guaranteed=(1, 0, 0, 0), maximum=(1, 1, 1, 1),
                     broker={"cooldown_seconds": 900, "notebook_headroom_cores": 0, "max_lend_share": 1.0})
    nodes = (Node("kub-001", "kub", NodeRole.WORKER, 48, 256 * 1024, since=OLD),
             Node("condor-001", "condor", NodeRole.BATCH_ONLY, 24, 128 * 1024, since=OLD))
    startds = (Startd("condor-001", "condor-001", StartdKind.STANDALONE, "prompt", 24, 128 * 1024, busy_cores=24,
                      since=OLD),
               *(Startd(f"htcondor-kub-001-{k}", "kub-001", StartdKind.POD, "prompt", 8, 64 * 1024, busy_cores=8,
                        since=NOW - 100) for k in (1, 2, 3)))
    spawn = PendingSpawn(4.0, 100 * 1024)
    demand = {"prompt": PoolDemand(running_jobs=48, running_cores=48), "drp": PoolDemand(), "user": PoolDemand(),
              "general": PoolDemand()}
    p = plan(spec, Observed(now=NOW, nodes=nodes, startds=startds, demand=demand, notebook_pending_cores=4.0,
                            notebook_spawns=(spawn,)))
    freed = [a.startd for a in p.actions if isinstance(a, DrainStartd)] + [
        pod for a in p.actions if isinstance(a, DeletePods) for pod in a.pods]
    assert len(freed) == 1 and freed[0].startswith("htcondor-kub-001-")


def test_a_latency_pool_at_risk_is_promised_past_a_node_that_still_runs_the_donors_jobs() -> None:
    """docs/broker.md, "Cooldown only bypassed at risk": a promise to a latency pool moves startds at once while its
    jobs need more than it holds ready now; and "Make before break": a node relabelled to it runs none of its jobs
    until the donor's have ended. By day prompt, guaranteed two of four 24-core nodes, holds none and one ready
    8-core pod running 4 jobs, with 8 more queued: it needs 12 and runs 8. The users and the general pool hold two
    nodes each, every core busy with their own jobs, each node relabelled 100 s ago (cooldown 900 s). The first
    node the promise takes still runs its donor's 24 jobs, so prompt still runs 8 of the 12 it needs: the promise
    goes on to its guarantee, 48 cores. (Found by the guarantee property once it counted readiness itself: the rule
    counted the donor's busy node as ready and stopped after one, leaving the rest to wait out the cooldown.)"""
    spec = make_spec(workers=1, batch=4, guaranteed=(2, 0, 0, 0), maximum=(4, 4, 4, 4),
                     broker={"cooldown_seconds": 900, "pod_cores": 8, "notebook_headroom_cores": 0,
                             "max_lend_share": 1.0})
    owner = {"condor-001": "user", "condor-002": "user", "condor-003": "general", "condor-004": "general"}
    nodes = (Node("kub-001", "kub", NodeRole.WORKER, 48, 256 * 1024, since=OLD),
             *(Node(n, "condor", NodeRole.BATCH_ONLY, 24, 128 * 1024, since=OLD) for n in owner))
    startds = (*(Startd(n, n, StartdKind.STANDALONE, p, 24, 128 * 1024, busy_cores=24, since=NOW - 100,
                        jobs=tuple(RunningJob(1, NOW - 100, p) for _ in range(24))) for n, p in owner.items()),
               Startd("htcondor-kub-001-1", "kub-001", StartdKind.POD, "prompt", 8, 8192, busy_cores=4, since=OLD,
                      jobs=tuple(RunningJob(1, NOW - 10, "prompt") for _ in range(4))))
    demand = {"prompt": PoolDemand(running_jobs=4, running_cores=4, idle_jobs=8, idle_cores=8),
              "drp": PoolDemand(), "user": PoolDemand(running_jobs=48, running_cores=48),
              "general": PoolDemand(running_jobs=48, running_cores=48)}
    o = Observed(now=NOW, nodes=nodes, startds=startds, demand=demand)
    p = plan(spec, o)
    taken = [a.startd for a in p.actions if isinstance(a, Relabel) and a.to_pool == "prompt"]
    assert len(taken) == 2
    assert sum(s.cores for s in project(o, p.actions).startds
               if s.pool == "prompt" and s.kind == StartdKind.STANDALONE) == 48
