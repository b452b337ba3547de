from __future__ import annotations

import json

import pytest

from enclave.errors import IntegrityError
from enclave.spec.models import EnclaveSpec
from enclave.twin.metrics import compute, conservation
from enclave.twin.run import simulate, with_changes
from enclave.twin.scenario import Loaded, load_scenario, parse
from enclave.twin.sim import EV_BLOCK, RUNNING
from enclave.twin.workloads import Arrival

from .conftest import make_sim, small_text


def _metrics(loaded: Loaded, policy: str = "static") -> str:
    sim = make_sim(loaded, policy)
    sim.run()
    return json.dumps(compute(sim), sort_keys=True)


@pytest.mark.parametrize("policy", ["static", "quotas"])
def test_same_seed_same_metrics(small: Loaded, policy: str) -> None:
    assert _metrics(small, policy) == _metrics(small, policy)


def test_another_seed_changes_the_run(small: Loaded) -> None:
    assert _metrics(small) != _metrics(with_changes(small, seed=5))


@pytest.mark.parametrize("policy", ["static", "quotas"])
def test_conservation_and_no_double_booking_under_failures(ldf: EnclaveSpec, policy: str) -> None:
    text = small_text(failures="{storms: [{at_h: 1.0, nodes: 6, group: condor, repair_h: 0.5}, "
                               "{at_h: 1.2, nodes: 3, group: kub, repair_h: 0.5}], node_mtbf_days: 2}")
    sim = make_sim(parse(text, "f.yaml", spec=ldf), policy, audit=True)  # check() after every event but job ends
    sim.run()
    sim.check()
    c = conservation(sim)
    assert c["submitted"] == c["finished"] + c["running"] + c["queued"] + c["held"] > 0
    assert sim.counters.failures >= 9 and sim.counters.evicted_jobs > 0
    # Each job finished at most once: the done counters equal the number of ids in state DONE.
    assert sum(sim.done.values()) == c["finished"]


def test_check_catches_a_double_booked_slot(small: Loaded) -> None:
    sim = make_sim(small)
    sim.run_until(3600)
    busy = next(s for s in sim.startds.values() if s.running)
    busy.free_cores += 1  # corrupt the books: a core both claimed and free
    with pytest.raises(IntegrityError, match="claimed"):
        sim.check()


def test_check_catches_a_job_running_twice(small: Loaded) -> None:
    sim = make_sim(small)
    sim.run_until(3600)
    a, b = [s for s in sim.startds.values() if s.running][:2]
    b.running.add(next(iter(a.running)))
    with pytest.raises(IntegrityError):
        sim.check()


def test_evicted_jobs_keep_their_ids_and_finish_once(ldf: EnclaveSpec) -> None:
    text = small_text(failures="{storms: [{at_h: 1.0, nodes: 20, group: condor, repair_h: 0.2}]}")
    sim = make_sim(parse(text, "e.yaml", spec=ldf))
    sim.run()
    assert sim.counters.evicted_jobs > 0
    assert sim.state.count(RUNNING) == len(sim.running)
    assert conservation(sim)["submitted"] == len(sim.state)


@pytest.mark.parametrize("matching", ["instant", "negotiator"])
def test_prompt_meets_its_deadline_with_enough_capacity(small: Loaded, matching: str) -> None:
    _, m = simulate(with_changes(small, htcondor={"matching": matching}), "static")
    assert m["prompt"]["visits_finished"] == m["prompt"]["visits"] == 120
    if matching == "instant":
        # Frictionless matching on enough cores: every visit ends with its longest job, <= 45 s after readout.
        assert m["prompt"]["visits_within_deadline"] == 1.0
    # The clairvoyant bound is a bound: no run does better.
    lower = m["bounds"]["prompt_visit_latency_lower_s"]
    for q in ("p50", "p95", "p99"):
        assert m["prompt"]["visit_latency_s"][q] >= lower[q]
    assert m["utilization"]["batch"] <= m["utilization"]["batch_upper"]
    assert 0 < m["utilization"]["batch_memory"] <= 1
    assert m["utilization"]["enclave"] <= m["bounds"]["utilization_upper_all_cores"] + 1e-9


def test_static_partition_starves_a_pool_with_no_nodes(minimal: EnclaveSpec) -> None:
    # minimal.yaml guarantees 0 to 'user': the static partition gives it no node, so its jobs never run.
    text = "name: m\nduration_hours: 2\nprompt: null\ndrp: {backlog_jobs: 10, jobs_per_hour: 0}\nnotebooks: null\n" \
           "user_batch: {bursts_per_day: 200, jobs_per_burst: 5}\n"
    loaded = parse(text, "m.yaml", spec=minimal)
    _, static = simulate(loaded, "static")
    _, quotas = simulate(loaded, "quotas")
    assert static["pools"]["user"]["finished"] == 0 and static["pools"]["user"]["queued"] > 0
    assert quotas["pools"]["user"]["finished"] > 0  # surplus sharing lets it use idle capacity


def test_quotas_serve_the_most_starved_group_first(small: Loaded) -> None:
    sim = make_sim(small, "quotas")
    sim.run_until(600)
    for p in sim.pools:
        sim.busy[p] = 0
    sim.busy["drp"] = 500
    order = sim.policy.order(sim, ["drp", "prompt", "user"])
    assert order[0] == "prompt" and order[-1] == "drp"
    # How much each may then take is the group quotas' allocation: tests/twin/test_groups.py.


def test_notebooks_are_refused_when_the_commons_is_full(ldf: EnclaveSpec) -> None:
    text = small_text().replace("peak_concurrent: 200", "peak_concurrent: 700")
    _, m = simulate(parse(text, "n.yaml", spec=ldf), "static")
    nb = m["notebooks"]
    assert nb["refused"] > 0 and nb["placed"] + nb["refused"] + nb["pending_at_end"] == nb["requested"]


def test_pods_layout_places_pods_with_startup_delay(ldf: EnclaveSpec) -> None:
    text = small_text(layout="{batch: pods, pod_cores: 8, pod_batch_share: 0.5, pod_startup_s: 120}")
    sim = make_sim(parse(text, "p.yaml", spec=ldf), audit=True)
    pods = [s for s in sim.startds.values() if s.kind.value == "pod"]
    assert pods and all(not p.ready for p in pods)
    sim.run_until(119)
    assert all(not p.ready for p in pods)
    sim.run_until(121)
    assert all(p.ready for p in pods)
    assert sum(p.cores for p in pods) <= 0.5 * sum(n.cores - n.svc_cpu for n in sim.nodes.values()
                                                  if n.role.value == "worker")


def test_one_week_runs_reduced() -> None:
    loaded = load_scenario("one-week")
    sc = loaded.scenario
    assert sc.prompt is not None and sc.drp is not None
    reduced = with_changes(loaded, duration_hours=40, prompt={**sc.prompt.model_dump(), "nights": 2,
                                                              "visits_per_night": 150},
                           drp={**sc.drp.model_dump(), "backlog_jobs": 3000, "jobs_per_hour": 300})
    sim, m = simulate(reduced, "quotas")
    assert m["prompt"]["visits"] == 300
    c = m["jobs"]
    assert c["submitted"] == c["finished"] + c["running"] + c["queued"] + c["held"]
    assert m["simulated_hours"] == 40 and m["moves"]["failures"] >= 0


ONE_DRP_JOB = """
name: waits
duration_hours: 1
prompt: null
user_batch: null
notebooks: null
drp: {backlog_jobs: 0, jobs_per_hour: 0, mix: [{name: t, weight: 1, memory_gib: 1, runtime: {dist: fixed, mean: 1000}}]}
htcondor: {matching: instant}
"""


def test_a_restarted_job_has_one_wait_its_first(minimal: EnclaveSpec) -> None:
    """A pool's waits are each job's submit to first start (review, stop 53: a job evicted at 100 and started again
    at once had two, 0 and 100 s, and a median of 50 s that was no job's wait)."""
    sim = make_sim(parse(ONE_DRP_JOB, "w.yaml", spec=minimal))
    sim.q.push(0.0, EV_BLOCK, Arrival(0.0, 0, [1000.0]))
    sim.run_until(100.0)
    sim._evict(sim.running[0][0])
    sim.run()
    m = compute(sim)
    assert m["moves"]["evicted_jobs"] == 1 and m["jobs"]["finished"] == 1
    assert sim.waits["drp"] == [0.0] and m["pools"]["drp"]["wait_s"]["p50"] == 0.0


def test_jobs_their_owner_s_transition_removes_are_no_evicted_work(minimal: EnclaveSpec) -> None:
    """``moves.wasted_core_hours`` ("evicted core-hours") is the work of jobs evicted before their end; jobs an account
    transition removes (condor_rm) count under ``account_transitions`` (review, stop 53: in both)."""
    sim = make_sim(parse(ONE_DRP_JOB, "w.yaml", spec=minimal))
    sim.q.push(0.0, EV_BLOCK, Arrival(0.0, 0, [1000.0] * 2))
    sim.run_until(360.0)
    assert sim.end_jobs(sorted(sim.running), ["drp"], running=True, hold=False) == 2
    sim.run()
    m = compute(sim)
    assert m["moves"]["wasted_core_hours"] == 0.0 and m["account_transitions"]["jobs_removed"] == 2
