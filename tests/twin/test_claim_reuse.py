"""A claim whose job ended runs the submitter's oldest idle job that fits its dynamic slot (schedd.cpp
``FindRunnableJobForClaim`` → qmgmt.cpp ``FindRunnableJob``, htcondor 7491a14), and that job holds the whole
dynamic slot, which keeps its first job's size. What follows from that for the accountant, the metrics, the
broker's view and the queue order, on hand-built timelines.

The enclave is the minimal spec: DRP's partitionable slot has 8 cores and 32 GiB (4 GiB a core). Cycles every
60 s last 3.5 s with one submitter and one idle autocluster, and a start takes S = 3 s (as in test_htcondor.py).
"""

from __future__ import annotations

import pytest

from enclave.spec.models import EnclaveSpec
from enclave.twin.backend import TwinBackend
from enclave.twin.metrics import compute, dominant_demand_core_s
from enclave.twin.scenario import parse
from enclave.twin.sim import EV_BLOCK, EV_CALL, HELD, RUNNING, Sim
from enclave.twin.workloads import Arrival

from .conftest import make_sim

S = 3.0
FIRST = 60 + 3.5 + S  # where jobs submitted before the 60 s cycle start


def _sim(minimal: EnclaveSpec, mix: str, policy: str = "static") -> Sim:
    text = f"""
name: claim-reuse
duration_hours: 1
prompt: null
user_batch: null
notebooks: null
drp: {{backlog_jobs: 0, jobs_per_hour: 0, mix: {mix}}}
htcondor: {{cycle_base_s: 2, cycle_per_submitter_s: 1, cycle_per_autocluster_s: 0.5, job_startup_s: {S},
           reschedule_on_submit: never}}
"""
    return make_sim(parse(text, "c.yaml", spec=minimal), policy, audit=True)


def _task(name: str, gib: int, runtime: float, cpus: int = 1) -> str:
    return f"{{name: {name}, weight: 1, cpus: {cpus}, memory_gib: {gib}, runtime: {{dist: fixed, mean: {runtime}}}}}"


def _ac(sim: Sim, name: str) -> int:
    return next(a.index for a in sim.acs if a.kind == f"drp:{name}")


def _submit(sim: Sim, t: float, ac: int, runtimes: list[float]) -> None:
    sim.q.push(t, EV_BLOCK, Arrival(t, ac, runtimes))


def test_the_accountant_charges_a_reused_claim_its_dynamic_slots_weight(minimal: EnclaveSpec) -> None:
    """Usage is in SLOT_WEIGHT of the matched dynamic slots (render.slot_weight: max(Cpus, Memory / 4 GiB)):
    a 1 GiB job on a 16 GiB claim weighs 4, not 1."""
    sim = _sim(minimal, f"[{_task('big', 16, 100)}, {_task('small', 1, 500)}]", "quotas-preempt-mem")
    big, small = _ac(sim, "big"), _ac(sim, "small")
    _submit(sim, 30.0, big, [100.0] * 4)  # 4 x 16 GiB fill both DRP-reachable 32 GiB slots
    _submit(sim, 100.0, small, [500.0] * 2)  # no memory left: they wait for the big jobs' claims
    sim.run_until(FIRST + 100 + 1)
    assert len(sim.share) == 2  # both small jobs run on 16 GiB claims; the other two claims ended
    assert sim.policy.used(sim, "drp") == pytest.approx(2 * 4.0)


def test_the_bound_and_the_claimed_memory_count_what_reused_claims_hold(minimal: EnclaveSpec) -> None:
    """Two 16 GiB jobs of 100 s, then twenty 1 GiB jobs of 100 s on their two claims, ten after ten: the slot
    holds 16 GiB (4 dominant cores at 4 GiB a core) for each job, not the small ones' 1 core."""
    sim = _sim(minimal, f"[{_task('big', 16, 100)}, {_task('small', 1, 100)}]")
    big, small = _ac(sim, "big"), _ac(sim, "small")
    _submit(sim, 30.0, big, [100.0] * 2)
    _submit(sim, 100.0, small, [100.0] * 20)
    sim.run()
    assert sim.reuses == 20
    # The slot holds each of the 22 jobs' 4 dominant cores from its match: S of start-up, then 100 s.
    assert sim.dominant_core_s() == pytest.approx(22 * 4 * (S + 100))
    # The bound counts running time: the work (2 x 4 x 100 + 20 x 1 x 100) and the 3 cores more each small
    # job held for its 100 s; so it falls short of what the slot held by the start-ups only.
    assert dominant_demand_core_s(sim) == pytest.approx(2 * 4 * 100 + 20 * 100 + 20 * 3 * 100)
    assert dominant_demand_core_s(sim) + 22 * 4 * S == pytest.approx(sim.dominant_core_s())
    # Claimed memory over running time: 16 GiB for every job's 100 s.
    u = compute(sim)["utilization"]
    assert u["batch_memory"] * sim.mem_cap_s == pytest.approx(22 * 16 * 1024 * 100, rel=1e-3)


def test_evicted_jobs_requeue_oldest_first_and_a_claim_takes_the_oldest(minimal: EnclaveSpec) -> None:
    """PrioRec orders a submitter's jobs by cluster.proc (qmgmt.cpp ``prio_compar``): after an eviction the
    oldest of the evicted jobs is first again."""
    sim = _sim(minimal, f"[{_task('big', 8, 100)}, {_task('small', 1, 100)}]")
    big, small = _ac(sim, "big"), _ac(sim, "small")
    _submit(sim, 30.0, big, [20.0, 500.0])  # ids 0, 1
    _submit(sim, 35.0, small, [500.0])  # id 2
    _submit(sim, 38.0, big, [500.0, 20.0])  # ids 3, 4
    sim.run_until(79.0)  # the 60 cycle matched 0, 1, 3, 4: four 8 GiB jobs fill the slot; 2 waits
    s = sim.running[0][0]
    sim.q.push(80.0, EV_CALL, lambda: sim._evict(s, only={1, 3}))
    sim.run_until(81.0)
    assert [b.first + b.pos for b in sim.queues[big]] == [1, 3]
    sim.run_until(90.0)  # 0 and 4 end at FIRST + 20 = 86.5: their 8 GiB claims take ids 1 and 2, in id order
    assert [j for j in (1, 2, 3) if sim.state[j] == RUNNING] == [1, 2]


def test_the_broker_sees_dynamic_slots_and_requests_as_live_reports_them(minimal: EnclaveSpec) -> None:
    """Live reads each dynamic slot's Cpus for a startd's jobs (batch.live), and the schedd's RequestCpus and
    RequestMemory for a pool's demand (batch.live.demand_of): a 1-core job on a 4-core claim shows as 4 cores on
    the startd and 1 in the demand."""
    sim = _sim(minimal, f"[{_task('big', 16, 100, cpus=4)}, {_task('small', 1, 500)}]")
    big, small = _ac(sim, "big"), _ac(sim, "small")
    _submit(sim, 30.0, big, [100.0] * 2)  # 2 x (4 cores, 16 GiB) fill DRP's slot
    _submit(sim, 100.0, small, [500.0] * 2)
    sim.run_until(200.0)
    obs = TwinBackend(sim).observe()
    startd = next(st for st in obs.startds if st.pool == "drp" and st.jobs)
    assert [j.cores for j in startd.jobs] == [4, 4]
    d = obs.demand["drp"]
    assert (d.running_jobs, d.running_cores, d.running_memory_mib) == (2, 2, 2 * 1024)


def test_a_released_retry_queues_by_id(minimal: EnclaveSpec) -> None:
    """A held job released by periodic_release keeps its cluster.proc: in its autocluster's queue it goes before
    younger jobs released earlier."""
    sim = _sim(minimal, f"[{_task('small', 1, 100)}]")
    sim.audit = False  # the held jobs are made by hand, not by a run
    ac = _ac(sim, "small")
    sim.state.extend(bytes(8))
    for jid in (7, 2, 5):
        sim.state[jid] = HELD
        sim._release((jid, ac, 0.0, -1, 100.0))
    assert [b.first + b.pos for b in sim.queues[ac]] == [2, 5, 7]
