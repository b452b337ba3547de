"""The review's bookkeeping findings, each on the reviewer's reproduction: every expected figure is derived by hand
or recounted from the jobs, sessions and events themselves, never read off the figure under test.

- a relabel that ends a drain takes the drain's deadline with it, and the event queue refuses an event in the past;
- a relabel's deadline is stale once the startd serves that pool again, or a later relabel from it replaced it;
- ``end_jobs`` on queued jobs keeps the memory check of the jobs it leaves queued;
- a failing node takes no notebook spawn and no evicted job while its pods go;
- ended jobs are counted as ENDED, and in conservation;
- running jobs count their core-seconds from their first second, not their match;
- the peak of concurrent notebook sessions is a running maximum, not the largest sample.
"""

from __future__ import annotations

import pytest

from enclave.spec.models import EnclaveSpec
from enclave.twin.engine import EventQueue
from enclave.twin.metrics import compute, conservation
from enclave.twin.scenario import parse
from enclave.twin.sim import DONE, ENDED, EV_BLOCK, HELD, QUEUED, RUNNING, Sim, SimStartd
from enclave.twin.workloads import Arrival

from .conftest import make_sim, small_text

DRP_ONLY = """
name: review
seed: 5
duration_hours: 4
prompt: null
user_batch: null
notebooks: null
drp: {backlog_jobs: 20000, jobs_per_hour: 1500}
"""


def _drp_pod(sim: Sim) -> SimStartd:
    return next(s for s in sim.startds.values() if s.kind.value == "pod" and s.running and s.pool == "drp")


def _drp_startd(sim: Sim, jobs: int = 4) -> SimStartd:
    return next(s for s in sim.startds.values() if s.pool == "drp" and len(s.running) > jobs)


def _recording_clock(sim: Sim) -> list[float]:
    """Every event time the loop takes, in order (through the audit hook, which runs after each non-end event)."""
    times: list[float] = []
    check = sim.check

    def record() -> None:
        times.append(sim.now)
        check()

    sim.audit = True
    sim.check = record  # type: ignore[method-assign]
    return times


# ---------------------------------------------------------------- 1. a relabel that ends a drain (f6)


def test_the_event_queue_refuses_an_event_before_its_clock() -> None:
    q = EventQueue()
    q.push(5.0, 1, "a")
    q.push(9.0, 1, "b")
    assert q.pop()[3] == "a"
    q.push(5.0, 1, "same time: fine")
    with pytest.raises(ValueError, match="before the clock"):
        q.push(4.5, 1, "in the past")
    assert [q.pop()[3] for _ in range(2)] == ["same time: fine", "b"]


def test_a_relabel_that_ends_a_drain_takes_its_deadline_with_it(ldf: EnclaveSpec) -> None:
    sim = make_sim(parse(DRP_ONLY + "layout: {batch: pods, pod_cores: 8}\n", "s.yaml", spec=ldf))
    sim.run_until(1800)
    s = _drp_pod(sim)
    sim.drain_startd(s.name, 600)  # deadline 2400
    sim.run_until(1810)
    sim.relabel(s.name, "user")  # ends the drain: the pod accepts work again
    sim.relabel(s.name, "drp")
    assert (s.removing, s.accepting, s.due) == (None, True, None)
    sim.run_until(5000)  # long past the old deadline: the pod serves on
    assert s.running and sim.startds[s.name] is s
    jobs = {j: sim.running[j][6] for j in s.running}
    wasted, dom = sim.counters.wasted_core_s, dict(sim.dom_pool_s)
    times = _recording_clock(sim)
    sim.delete_pods((s.name,))
    assert all(e[0] >= 5000 for e in sim.q.events())
    sim.run_until(5001)
    # DRP's grace is 600 s, no more than the vacate time: a deleted pod's DRP jobs are vacated at the deletion
    # (docs/twin.md, "Pod termination"), each losing what it ran since its match (1 core each). Requeued, a
    # job may take over a claim another DRP job ends elsewhere within that second (the oldest job first).
    assert all(sim.state[j] == QUEUED or (sim.running[j][0] is not s and sim.running[j][6] >= 5000) for j in jobs)
    assert sim.counters.wasted_core_s - wasted == pytest.approx(sum(5000 - t for t in jobs.values()))
    assert times == sorted(times) and times[0] >= 5000
    assert all(sim.dom_pool_s[p] >= dom[p] for p in dom)


def test_a_drain_a_relabel_ended_evicts_nothing_at_its_old_deadline(ldf: EnclaveSpec) -> None:
    sim = make_sim(parse(DRP_ONLY, "s.yaml", spec=ldf))
    sim.run_until(1800)
    s = _drp_startd(sim)
    sim.drain_startd(s.name, 120)  # deadline 1920
    sim.relabel(s.name, "user")  # ends that drain
    sim.relabel(s.name, "drp")
    sim.drain_startd(s.name, None)  # a new drain, with no deadline: its jobs retire, none is evicted
    evicted = sim.counters.evicted_jobs
    sim.run_until(1919.999)
    assert s.running
    sim.run_until(1921)
    assert sim.counters.evicted_jobs == evicted


# ---------------------------------------------------------------- 2. a relabel's pending vacate (f9)


def test_a_relabel_back_before_the_deadline_keeps_the_jobs(ldf: EnclaveSpec) -> None:
    sim = make_sim(parse(DRP_ONLY, "s.yaml", spec=ldf))
    sim.run_until(1800)
    s = _drp_startd(sim)
    sim.relabel(s.name, "user", vacate_after=600)  # DRP's jobs may run until 2400
    sim.run_until(1900)
    sim.relabel(s.name, "drp")  # home again: the rendered PREEMPT never evicts the pool the startd serves
    sim.run_until(2399)
    on = set(s.running)
    evicted = sim.counters.evicted_jobs
    sim.run_until(2401)
    assert on and sim.counters.evicted_jobs == evicted
    assert all(j in s.running or sim.state[j] == DONE for j in on)


def test_a_later_relabel_from_the_same_pool_replaces_its_deadline(ldf: EnclaveSpec) -> None:
    sim = make_sim(parse(DRP_ONLY, "s.yaml", spec=ldf))
    sim.run_until(1800)
    s = _drp_startd(sim)
    sim.relabel(s.name, "user", vacate_after=120)  # deadline 1920 ...
    sim.run_until(1810)
    sim.relabel(s.name, "drp")
    sim.relabel(s.name, "user", vacate_after=120)  # ... replaced by 1930 (the slot's entry for drp)
    evicted = sim.counters.evicted_jobs
    sim.run_until(1921)
    assert sim.counters.evicted_jobs == evicted
    sim.run_until(1929.999)
    drp_left = {j for j in s.running if sim.acs[sim.running[j][2]].pool == "drp"}
    assert drp_left
    sim.run_until(1931)
    assert sim.counters.evicted_jobs - evicted == len(drp_left)
    assert not drp_left & s.running


def test_a_relabel_on_to_a_third_pool_keeps_the_first_deadline(ldf: EnclaveSpec) -> None:
    # The slot's deadline entry is per pool: a relabel from user does not touch drp's (batch/policy.vacate_clauses).
    sim = make_sim(parse(DRP_ONLY, "s.yaml", spec=ldf))
    sim.run_until(1800)
    s = _drp_startd(sim)
    sim.relabel(s.name, "user", vacate_after=120)  # drp's jobs: until 1920
    sim.run_until(1810)
    sim.relabel(s.name, "general")
    sim.run_until(1919.999)
    drp_left = {j for j in s.running if sim.acs[sim.running[j][2]].pool == "drp"}
    evicted = sim.counters.evicted_jobs
    assert drp_left
    sim.run_until(1921)
    assert sim.counters.evicted_jobs - evicted == len(drp_left)
    assert not drp_left & s.running


# ---------------------------------------------------------------- 3. end_jobs keeps Block.oom (f2)


def test_removing_queued_jobs_keeps_the_memory_check_of_the_rest(ldf: EnclaveSpec) -> None:
    text = """
name: oomflag
seed: 3
duration_hours: 3
user_batch: {bursts_per_day: 48, jobs_per_burst: 400, memory_use: {dist: fixed, mean: 64}}
timing: {sample_s: 120}
"""
    sim = make_sim(parse(text, "s.yaml", spec=ldf))
    while not any(b.oom for q in sim.queues for b in q):
        sim.run_until(sim.q.next_time())
    removed = {b.first + b.pos + 1 for q in sim.queues for b in q if b.oom and b.n - b.pos > 2}
    assert removed
    sim.end_jobs(removed, sim.pools, running=False, hold=False)
    # Every job still queued that peaks above its request sits in a block whose starts check the limit.
    for q in sim.queues:
        for b in q:
            over = [b.first + i for i in range(b.pos, b.n) if b.first + i in sim.peak_over]
            assert not over or b.oom
    sim.run()
    sim.check()
    # Under the hard limit, a job that peaks above its request never finishes without being killed first.
    assert not [j for j in sim.peak_over if sim.state[j] == DONE and j not in sim.kills]


# ---------------------------------------------------------------- 4, 7. a failing node (f5, f4)


def test_a_failing_node_takes_no_waiting_notebook_spawn(ldf: EnclaveSpec) -> None:
    text = """
name: nbfail
seed: 2
duration_hours: 4
drp: {backlog_jobs: 20000, jobs_per_hour: 1500}
notebooks: {peak_concurrent: 2000, peak_hour: 2, session_mean_s: 7200}
layout: {batch: pods, pod_cores: 8, pod_batch_share: 0.9}
"""
    sim = make_sim(parse(text, "s.yaml", spec=ldf))
    t = 600.0
    while not sim.nb_pending:
        sim.run_until(t)
        t += 60
    n = next(m for m in sim.nodes.values() if m.pods)
    on_node = set(n.notebooks)
    pending = set(sim.nb_pending)
    c = sim.counters
    placed, evicted = c.nb_placed, c.nb_evicted
    sim._fail(n, 3600)
    sim.check()
    # Only the sessions that ran there are evicted; every waiting spawn still waits, or runs on another node.
    assert c.nb_evicted - evicted == len(on_node)
    assert c.nb_placed - placed == len(pending - set(sim.nb_pending))
    assert all(sim.nb_node[i] is not n for i in pending - set(sim.nb_pending))
    assert not n.notebooks


def test_a_failing_nodes_jobs_are_evicted_once_not_rematched_on_its_other_pods(ldf: EnclaveSpec) -> None:
    text = """
name: refill
seed: 5
duration_hours: 3
drp: {backlog_jobs: 0, jobs_per_hour: 300}
user_batch: {bursts_per_day: 24, jobs_per_burst: 50}
htcondor: {matching: instant}
layout: {batch: pods, pod_cores: 8}
"""
    sim = make_sim(parse(text, "s.yaml", spec=ldf))
    sim.run_until(3600)
    n = next(m for m in sim.nodes.values() if len(m.pods) >= 2 and any(p.running for p in m.pods.values())
             and any(p.free_cores > 0 for p in m.pods.values()))
    on_node = set().union(*(p.running for p in n.pods.values()))
    evicted, wasted = sim.counters.evicted_jobs, sim.counters.wasted_core_s
    lost = sum((sim.now - sim.running[j][6]) * sim.acs[sim.running[j][2]].cpus for j in on_node)
    sim._fail(n, 1800)
    sim.check()
    assert sim.counters.evicted_jobs - evicted == len(on_node)
    assert sim.counters.wasted_core_s - wasted == pytest.approx(lost)
    assert all(sim.running[j][0].node is not n for j in on_node if j in sim.running)


# ---------------------------------------------------------------- 5. ended jobs (f1)


def test_ended_jobs_are_counted_as_ended_and_conserved(ldf: EnclaveSpec) -> None:
    sim = make_sim(parse(small_text(), "s.yaml", spec=ldf))
    sim.run_until(3600)
    queued = [j for j in range(len(sim.state)) if sim.state[j] == QUEUED][:50]
    running = [j for j in range(len(sim.state)) if sim.state[j] == RUNNING][:20]
    assert len(queued) == 50 and len(running) == 20
    sim.end_jobs(queued, sim.pools, running=False, hold=False)
    sim.end_jobs(running, sim.pools, running=True, hold=False)
    sim.run()
    sim.check()
    jobs = compute(sim)["jobs"]
    # The 70 jobs removed by hand, never to run again.
    assert jobs["ended"] == 70
    assert jobs["finished"] == sim.state.count(DONE) and jobs["held"] == sim.state.count(HELD)
    assert jobs["submitted"] == jobs["finished"] + jobs["running"] + jobs["queued"] + jobs["held"] + jobs["ended"]
    assert conservation(sim)["ended"] == sim.state.count(ENDED) == 70


# ---------------------------------------------------------------- 6. busy from the start, not the match (f7)

THROTTLED = """
name: throttle
duration_hours: 1
prompt: null
user_batch: null
notebooks: null
drp: {backlog_jobs: 0, jobs_per_hour: 0,
      mix: [{name: t, weight: 1, memory_gib: 1, runtime: {dist: fixed, mean: 100}}]}
htcondor: {cycle_base_s: 2, cycle_per_submitter_s: 1, cycle_per_autocluster_s: 0.5, job_startup_s: 3,
           reschedule_on_submit: never, job_start_count: 1, job_start_delay_s: 20}
"""


def test_a_running_job_counts_from_its_first_second_not_its_match(minimal: EnclaveSpec) -> None:
    sim = make_sim(parse(THROTTLED, "t.yaml", spec=minimal))
    sim.q.push(30.0, EV_BLOCK, Arrival(30.0, 0, [100.0] * 5))
    # The cycle at 60 (the first, at 0, found nothing idle) lasts 2 + 1 + 0.5: all five are matched at 63.5. The
    # schedd starts one, then waits 20 s: they begin at 63.5 + 3 (start-up) + 0, 20, 40, 60, 80.
    sim.run_until(100.0)
    begins = [66.5, 86.5, 106.5, 126.5, 146.5]
    assert len(sim.running) == 5
    cores = sum(max(0.0, 100.0 - b) for b in begins)  # 33.5 + 13.5 = 47 core-seconds (1 core each)
    assert sim.running_core_s()["drp"] == pytest.approx(cores)
    assert sim.running_core_s(memory=True)["drp"] == pytest.approx(cores * sim.acs[0].memory_mib)


def test_busy_core_hours_count_no_job_the_throttle_holds_past_the_horizon(ldf: EnclaveSpec) -> None:
    text = DRP_ONLY.replace("duration_hours: 4", "duration_hours: 2") + \
        "htcondor: {job_start_count: 1, job_start_delay_s: 1}\n"
    sim = make_sim(parse(text, "s.yaml", spec=ldf))
    sim.run()
    m = compute(sim)
    # Recount: a running job has run from end − runtime (its first second) to the horizon, if it has begun.
    ran = sum(max(0.0, sim.horizon - (end - rt)) * sim.acs[ac].cpus
              for _, end, ac, _, _, rt, _, _ in sim.running.values() if sim.acs[ac].pool == "drp")
    assert any(end - rt >= sim.horizon for _, end, _, _, _, rt, _, _ in sim.running.values())
    assert m["pools"]["drp"]["busy_core_hours"] == pytest.approx((sim.core_s["drp"] + ran) / 3600, abs=0.006)


# ---------------------------------------------------------------- 8. the notebook peak (f8)


def test_the_notebook_peak_is_the_most_sessions_at_once_whatever_the_sampling(ldf: EnclaveSpec) -> None:
    text = """
name: nbpeak
seed: 1
duration_hours: 24
prompt: null
drp: null
user_batch: null
notebooks: {peak_concurrent: 300, session_mean_s: 1800}
timing: {sample_s: 300}
"""
    sim = make_sim(parse(text, "s.yaml", spec=ldf))
    # Recount: +1 at every placement, -1 at every end of a placed session; the peak is the largest count.
    count, peak = [0], [0]
    place, end = sim._place_notebook, sim._end_notebook

    def placed(i: int) -> bool:
        ok = place(i)
        count[0] += ok
        peak[0] = max(peak[0], count[0])
        return ok

    def ended(i: int) -> None:
        count[0] -= i in sim.nb_node
        end(i)

    sim._place_notebook = placed  # type: ignore[method-assign]
    sim._end_notebook = ended  # type: ignore[method-assign]
    sim.run()
    assert peak[0] > max(s.notebooks for s in sim.samples)  # the 300 s samples miss it here
    assert compute(sim)["notebooks"]["peak_concurrent"] == peak[0]
