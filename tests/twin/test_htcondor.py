"""HTCondor as it schedules, on hand-built timelines: every expected time below is derived from the rules
cited in ``enclave.twin.scenario.HTCondor`` (negotiator timer, cycle delay, reschedule, claim reuse, start
throttle), never read off a run.

The enclave is the minimal spec under the static policy: DRP owns one 8-core, 32 GiB partitionable slot
(batch-002). Each test submits jobs of one DRP autocluster (1 core, 1 GiB, R = 100 s) at a chosen time.
The cycle-length terms are set so that a cycle with nothing idle lasts B = 2 s and one with one submitter
and one autocluster idle lasts B + 1 + 0.5 = 3.5 s; the shadow and starter take S = 3 s.
"""

from __future__ import annotations

import pytest

from enclave.spec.models import EnclaveSpec
from enclave.twin.scenario import parse
from enclave.twin.sim import EV_BLOCK, Sim
from enclave.twin.workloads import Arrival

from .conftest import make_sim

R = 100.0
S = 3.0
IDLE_CYCLE = 2.0
BUSY_CYCLE = 3.5

BASE = """
name: htcondor-rules
duration_hours: 1
prompt: null
user_batch: null
notebooks: null
drp: {backlog_jobs: 0, jobs_per_hour: 0,
      mix: [{name: t, weight: 1, memory_gib: 1, runtime: {dist: fixed, mean: 100}}]}
"""


def _sim(minimal: EnclaveSpec, **htcondor: object) -> Sim:
    settings = {"cycle_base_s": IDLE_CYCLE, "cycle_per_submitter_s": 1.0, "cycle_per_autocluster_s": 0.5,
                "job_startup_s": S, "reschedule_on_submit": False, **htcondor}
    body = ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in settings.items())
    sim = make_sim(parse(BASE + f"htcondor: {{{body}}}\n", "h.yaml", spec=minimal))
    assert sim.cap["drp"] == 8 and sim.acs[0].pool == "drp"
    return sim


def _submit(sim: Sim, t: float, jobs: int) -> None:
    sim.q.push(t, EV_BLOCK, Arrival(t, 0, [R] * jobs))


def _waits(sim: Sim, until: float = 1000.0) -> list[float]:
    """Submit-to-start of each DRP job that started, in start order."""
    sim.run_until(until)
    return sorted(sim.waits["drp"])


def test_a_job_waits_for_the_next_cycle(minimal: EnclaveSpec) -> None:
    sim = _sim(minimal)
    _submit(sim, 30.0, 1)
    # Cycle 1 at t = 0 (the timer fires at once) finds nothing idle: ends at 2; the timer is re-armed for
    # 2 + max(20, 60 - 2) = 60. That cycle lasts 3.5 s; the schedd claims at 63.5, the job starts at 66.5.
    assert _waits(sim) == [pytest.approx(60 + BUSY_CYCLE + S - 30)]


def test_a_long_cycle_delays_the_next_by_the_cycle_delay_only(minimal: EnclaveSpec) -> None:
    sim = _sim(minimal, cycle_base_s=50)
    _submit(sim, 1.0, 1)
    # Cycle 1: 0 to 50; next at 50 + max(20, 60 - 50) = 70, lasting 50 + 1.5; the job starts at 121.5 + S.
    assert _waits(sim) == [pytest.approx(70 + 51.5 + S - 1)]


def test_a_submit_sends_a_reschedule(minimal: EnclaveSpec) -> None:
    sim = _sim(minimal, reschedule_on_submit=True)
    _submit(sim, 30.0, 1)
    # The reschedule at 30 is past 2 + 20 (cycle delay) and 0 + 5 (min interval): a cycle starts at once.
    assert _waits(sim, until=100) == [pytest.approx(BUSY_CYCLE + S)]
    # The timer armed for 60 was superseded: cycles ran 0-2, 30-33.5, then 33.5 + max(20, 56.5) = 90-92.
    assert sim.cycles == 3


def test_a_reschedule_waits_out_the_cycle_delay(minimal: EnclaveSpec) -> None:
    sim = _sim(minimal, reschedule_on_submit=True)
    _submit(sim, 10.0, 1)
    # At 10 the last cycle finished at 2: the next may start at 2 + 20 = 22 (condor_reschedule(1)).
    assert _waits(sim) == [pytest.approx(22 + BUSY_CYCLE + S - 10)]


def test_a_claimed_slot_runs_the_next_job_without_a_cycle(minimal: EnclaveSpec) -> None:
    sim = _sim(minimal)
    _submit(sim, 30.0, 9)  # one more job than the slot's 8 cores
    # Eight start at 66.5 and end at 166.5; the ninth is idle. Its autocluster's claim (made at 63.5, 103 s
    # old, under CLAIM_WORKLIFE's 1200) is reused at 166.5: it starts S later, with no negotiation.
    first = 60 + BUSY_CYCLE + S
    assert _waits(sim) == [pytest.approx(first - 30)] * 8 + [pytest.approx(first + R + S - 30)]
    assert sim.reuses == 1


@pytest.mark.parametrize("worklife", [0, 100])
def test_an_expired_claim_is_released_and_the_job_waits_for_a_cycle(minimal: EnclaveSpec, worklife: int) -> None:
    sim = _sim(minimal, claim_worklife_s=worklife)
    _submit(sim, 30.0, 9)
    # The claims are 103 s old at 166.5, past the worklife: released. Cycles start every 60 s (each shorter
    # than 40 s): the one at 180 (3.5 s, one idle job) matches the ninth job, which starts at 183.5 + S.
    first = 60 + BUSY_CYCLE + S
    assert _waits(sim) == [pytest.approx(first - 30)] * 8 + [pytest.approx(180 + BUSY_CYCLE + S - 30)]
    assert sim.reuses == 0


@pytest.mark.parametrize(("count", "offsets"), [(1, [0, 2, 4, 6, 8]), (2, [0, 0, 2, 2, 4])])
def test_the_start_throttle_spaces_starts(minimal: EnclaveSpec, count: int, offsets: list[float]) -> None:
    sim = _sim(minimal, job_start_count=count, job_start_delay_s=2)
    _submit(sim, 30.0, 5)
    # All five are matched at 63.5; the schedd starts JOB_START_COUNT of them, then waits JOB_START_DELAY.
    assert _waits(sim) == [pytest.approx(60 + BUSY_CYCLE + S - 30 + o) for o in offsets]


def test_instant_matching_is_frictionless(minimal: EnclaveSpec) -> None:
    sim = _sim(minimal, matching="instant")
    _submit(sim, 30.0, 9)
    # The twin before issue 14: start on submit, the ninth the moment a core frees (no start-up either).
    assert _waits(sim) == [0.0] * 8 + [pytest.approx(R)]
    assert sim.cycles == 0
