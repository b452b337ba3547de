"""Memory as jobs use it, on hand-built timelines: every expected time below is derived from the rules cited in
``enclave.twin.scenario.Memory`` and ``Sim._oom_end`` / ``Sim._oom_kill``, never read off a run.

The rules: a job's use rises linearly from 0 at its start to its peak at the end of its runtime R, so a job
whose peak P exceeds its hard limit L (its request, CGROUP_MEMORY_LIMIT_POLICY = hard) is killed at
start + R x L / P. It is held, and released at the schedd's next periodic evaluation (the first multiple of
PERIODIC_EXPR_INTERVAL after the kill) with request min(int(request x memoryMultiplier^k), memoryLimit) after
its k-th kill, while k <= numberOfRetries and the request that failed was below memoryLimit; else held for good.

The enclave is the minimal spec under the static policy: DRP owns one 8-core, 32 GiB standalone slot
(batch-002). Matching is instant (no negotiation cycles, no start-up), so a released job starts at once.
"""

from __future__ import annotations

import pytest

from enclave.spec.models import EnclaveSpec
from enclave.twin.scenario import parse
from enclave.twin.sim import DONE, HELD, RUNNING, Sim

from .conftest import make_sim

R = 100.0
INTERVAL = 60.0

BASE = """
name: memory-rules
duration_hours: 1
prompt: null
user_batch: null
notebooks: null
htcondor: {{matching: instant}}
drp: {{backlog_jobs: {jobs}, jobs_per_hour: 0,
      mix: [{{name: t, weight: 1, memory_gib: 2, runtime: {{dist: fixed, mean: 100}},
             memory_use: {{dist: fixed, mean: {peak_gib}}}}}]}}
memory: {{{memory}}}
"""


def _sim(minimal: EnclaveSpec, peak_gib: float, jobs: int = 1, **memory: object) -> Sim:
    body = ", ".join(f"{k}: {v}" for k, v in {"periodic_expr_interval_s": INTERVAL, **memory}.items())
    sim = make_sim(parse(BASE.format(jobs=jobs, peak_gib=peak_gib, memory=body), "m.yaml", spec=minimal))
    assert sim.cap["drp"] == 8 and sim.acs[0].memory_mib == 2048
    return sim


def _state_at(sim: Sim, t: float, jid: int = 0) -> int:
    sim.run_until(t)
    return sim.state[jid]


def test_a_job_over_its_request_is_killed_and_retried_larger(minimal: EnclaveSpec) -> None:
    sim = _sim(minimal, peak_gib=3, multiplier=2, retries=5)
    # Start at 0 with L = 2048 MiB, P = 3072 MiB: killed at 100 x 2048 / 3072 = 66.67 s.
    kill = R * 2048 / 3072
    assert _state_at(sim, kill - 0.01) == RUNNING
    assert _state_at(sim, kill + 0.01) == HELD
    assert sim.counters.oom_kills == 1 and sim.counters.oom_wasted_core_s == pytest.approx(kill)
    # Released at the first periodic evaluation after 66.67 s: 60 x 2 = 120, asking 2048 x 2 = 4096 MiB.
    assert _state_at(sim, 119.99) == HELD
    assert _state_at(sim, 120.01) == RUNNING
    slot, end, ac = sim.running[0][:3]
    assert sim.acs[ac].memory_mib == 4096 and sim.acs[ac].kind == "drp:t" and slot.name == "batch-002"
    # 4096 MiB is above the 3072 MiB peak: the second run completes, R after its start.
    assert end == pytest.approx(120 + R)
    assert _state_at(sim, 120 + R + 0.01) == DONE
    assert _each_start(sim) == [0.0, 120.0] and sim.waits["drp"] == [0.0]  # the job's wait is its first start's
    assert (sim.counters.oom_kills, sim.counters.oom_retries, sim.counters.oom_held) == (1, 1, 0)
    sim.check()


def test_the_retry_limit_holds_a_job(minimal: EnclaveSpec) -> None:
    sim = _sim(minimal, peak_gib=30, multiplier=2, retries=2, limit_gib=16)
    p = 30 * 1024
    # Run 1 at 0 with 2048: killed at 100 x 2048 / P; released at 60 with 4096.
    # Run 2 at 60: killed at 60 + 100 x 4096 / P = 73.33; released at 120 with 8192 (2 starts <= 2 retries).
    # Run 3 at 120: killed at 120 + 100 x 8192 / P = 146.67; 3 starts > 2 retries: held for good.
    kills = [R * 2048 / p, 60 + R * 4096 / p, 120 + R * 8192 / p]
    assert _state_at(sim, kills[2] - 0.01) == RUNNING
    assert sim.acs[sim.running[0][2]].memory_mib == 8192
    assert _state_at(sim, 3600) == HELD
    assert _each_start(sim) == [0.0, 60.0, 120.0]
    assert (sim.counters.oom_kills, sim.counters.oom_retries, sim.counters.oom_held) == (3, 2, 1)
    assert sim.counters.oom_wasted_core_s == pytest.approx(kills[0] + (kills[1] - 60) + (kills[2] - 120))
    assert sim.held_jobs == {0}
    sim.check()


def test_memory_limit_stops_the_retries(minimal: EnclaveSpec) -> None:
    sim = _sim(minimal, peak_gib=30, multiplier=2, retries=5, limit_gib=4)
    # Run 1 (2048) killed; released at 60 asking min(4096, 4096). Run 2 fails at the limit itself, which
    # BPS's periodic_release refuses (min(...) < memoryLimit is false): held for good after 2 kills.
    assert _state_at(sim, 3600) == HELD
    assert (sim.counters.oom_kills, sim.counters.oom_retries, sim.counters.oom_held) == (2, 1, 1)


def test_policy_none_kills_nobody(minimal: EnclaveSpec) -> None:
    sim = _sim(minimal, peak_gib=30, policy="none")
    assert _state_at(sim, R + 0.01) == DONE and sim.counters.oom_kills == 0


def test_a_peak_within_the_request_is_never_killed(minimal: EnclaveSpec) -> None:
    sim = _sim(minimal, peak_gib=2, jobs=8)  # a peak equal to the 2 GiB request does not cross it
    sim.run_until(R + 0.01)
    assert sim.state.count(DONE) == 8 and sim.counters.oom_kills == 0 and not sim.peak_over


def test_partitionable_slot_split_uses_the_retry_request(minimal: EnclaveSpec) -> None:
    # 8 jobs of 2 GiB fit the 32 GiB slot at once (8 cores). Each is killed at 100 x 2048 / 12288 = 16.67 s and
    # released at 60 asking 16 GiB (multiplier 8): the slot carves two 16 GiB dynamic slots, so two run and six
    # wait although six cores are free.
    sim = _sim(minimal, peak_gib=12, jobs=8, multiplier=8)
    sim.run_until(16.6)
    assert sim.state.count(RUNNING) == 8
    sim.run_until(60.01)
    assert sim.state.count(RUNNING) == 2 and sim.state.count(0) == 6
    slot = sim.nodes["batch-002"].startd
    assert slot is not None and slot.free_mem == 0 and slot.free_cores == 6
    # Each runs to its end (16 GiB > 12 GiB peak), R = 100 s: the next two start at 160, 260, 360.
    sim.run_until(3600)
    assert sim.state.count(DONE) == 8
    assert _each_start(sim) == [0.0] * 8 + [60.0] * 2 + [160.0] * 2 + [260.0] * 2 + [360.0] * 2
    assert sim.counters.oom_wasted_core_s == pytest.approx(8 * R * 2048 / 12288)
    sim.check()


@pytest.mark.parametrize("policy", ["static", "quotas", "broker"])
def test_kills_retries_and_failures_keep_every_job_accounted_for(ldf: EnclaveSpec, policy: str) -> None:
    from enclave.twin.metrics import compute

    from .conftest import small_text

    text = small_text(failures="{storms: [{at_h: 1.0, fraction: 0.2, group: condor, repair_h: 0.5}]}",
                      memory="{retries: 1, multiplier: 1.5}")
    text = text.replace("prompt: {nights: 1,", "prompt: {memory_use: {dist: uniform, low: 1, high: 2.5}, nights: 1,")
    text = text.replace("user_batch: {bursts_per_day: 48, jobs_per_burst: 100}",
                        "user_batch: {bursts_per_day: 48, jobs_per_burst: 100, "
                        "memory_use: {dist: lognormal, mean: 5, sigma: 0.8}}")
    sim = make_sim(parse(text, "k.yaml", spec=ldf), policy, audit=True)
    sim.run()
    sim.check()
    m = compute(sim)
    jobs, mem = m["jobs"], m["memory"]
    assert jobs["submitted"] == jobs["finished"] + jobs["running"] + jobs["queued"] + jobs["held"]
    # Prompt peaks above 2 GiB (a third of its jobs) are killed once and retried at 3 GiB (multiplier 1.5), which
    # covers the 2.5 GiB ceiling; user jobs may need more than one retry and, with 1 allowed, some stay held.
    assert mem["by_kind"]["prompt"]["held"] == 0 and mem["oom_kills"] >= mem["retries"] > 0
    assert mem["held"] == sum(row["held"] for row in mem["by_kind"].values())
    assert mem["wasted_core_hours"] > 0 and m["moves"]["failures"] >= 1


def test_a_released_job_waits_for_the_next_negotiation_cycle(minimal: EnclaveSpec) -> None:
    # Negotiator timing as in test_htcondor: a cycle lasts 2 s idle, 3.5 s with one submitter and one autocluster
    # idle; start-up 3 s; no reschedule on submit. The job submitted at 0 is matched by the cycle 0-3.5 and starts
    # at 6.5; killed at 6.5 + 100 x 2048 / 3072 = 73.17. Cycles: 60-62 (nothing idle), then 62 + max(20, 58) = 120.
    # Released at 100 (periodic evaluation every 50 s), it is matched by the cycle 120-123.5 and starts at 126.5.
    text = BASE.format(jobs=1, peak_gib=3, memory="periodic_expr_interval_s: 50").replace(
        "htcondor: {matching: instant}", "htcondor: {cycle_base_s: 2, cycle_per_submitter_s: 1, "
        "cycle_per_autocluster_s: 0.5, job_startup_s: 3, reschedule_on_submit: never}")
    sim = make_sim(parse(text, "n.yaml", spec=minimal))
    kill = 6.5 + R * 2048 / 3072
    assert _state_at(sim, kill - 0.01) == RUNNING
    assert _state_at(sim, kill + 0.01) == HELD
    assert _state_at(sim, 100.01) == 0  # QUEUED: released, waiting for a cycle
    assert _state_at(sim, 126.49) == RUNNING and sim.running[0][1] == pytest.approx(126.5 + R)
    assert _each_start(sim) == [6.5, 126.5]
    assert _state_at(sim, 126.5 + R + 0.01) == DONE


def test_a_released_job_asks_for_a_cycle(minimal: EnclaveSpec) -> None:
    # As above, with a 26.x schedd's reschedules (schedd-idle). The schedd's start-up timeout at 0 counted nothing,
    # so the cycle at 0 finds no submitter ad (0-2). The submit at 0 asks: the timeout runs at 0 + 5
    # (SCHEDD_MIN_INTERVAL) and sends RESCHEDULE; the cycle waits for 2 + 20 = 22 (22-25.5) and the job starts
    # at 28.5. Satisfied, the schedd runs its timeout again at 25.5 (5 + 5 has passed): nothing idle. The timer's
    # cycles: 25.5 + 56.5 = 82 (82-84, no ad shows idle jobs), then 84 + 58 = 142. The job is killed at
    # 28.5 + 100 x 2048 / 3072 = 95.17 and released at 100; the release ends with needReschedule (schedd.cpp
    # releaseJob): the timeout runs at once, counts it, sends RESCHEDULE; the cycle starts at 84 + 20 = 104, lasts
    # 3.5 s, and the job starts at 110.5 (not at 142 + 3.5 + 3 = 148.5, as it would waiting for the timer).
    text = BASE.format(jobs=1, peak_gib=3, memory="periodic_expr_interval_s: 50").replace(
        "htcondor: {matching: instant}", "htcondor: {cycle_base_s: 2, cycle_per_submitter_s: 1, "
        "cycle_per_autocluster_s: 0.5, job_startup_s: 3, reschedule_on_submit: schedd-idle}")
    sim = make_sim(parse(text, "r.yaml", spec=minimal))
    assert _state_at(sim, 100.01) == 0  # QUEUED: released
    assert _each_start(sim) == [28.5]
    assert _state_at(sim, 110.51) == RUNNING and sim.running[0][1] == pytest.approx(110.5 + R)
    assert _each_start(sim) == [28.5, 110.5]


def _each_start(sim: Sim) -> list[float]:
    """Submit-to-start of every start of DRP's jobs, restarts included (``Sim.waits`` has each job's first only)."""
    return sorted(sim.waits["drp"] + sim.restart_waits["drp"])
