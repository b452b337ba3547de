"""The clairvoyant prompt bound under HTCondor timing (``twin.timing_bound``), on timelines computed by hand.

Each expected value is worked out in the comment beside it from the rules the module cites (NEGOTIATOR_INTERVAL,
NEGOTIATOR_CYCLE_DELAY, NEGOTIATOR_MIN_INTERVAL, CLAIM_WORKLIFE, JOB_START_COUNT / JOB_START_DELAY; HTCondor
manual, "Configuration Macros"). Unless a test says otherwise: interval 60 s, cycle delay 20 s, min interval 5 s
(HTCondor's defaults), a cycle of 1 s with nothing idle and 1.55 s with a visit (the twin's estimates 1 + 0.5 per
submitter + 0.05 per autocluster), a RESCHEDULE per visit, worklife 1,200 s, no throttle, 1 s start-up.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from enclave.spec.models import EnclaveSpec
from enclave.twin import metrics
from enclave.twin.scenario import HTCondor, parse
from enclave.twin.timing_bound import Timing, _Throttle, visit_latency_bounds

from .conftest import make_sim, small_text

BASE = Timing(interval_s=60, cycle_delay_s=20, min_interval_s=5, idle_cycle_s=1, visit_cycle_s=1.55,
              reschedule=True, worklife_s=1200, start_count=1, start_delay_s=0, startup_s=1)


def test_the_timing_is_the_scenarios_htcondor_fields() -> None:
    tm = Timing.of(HTCondor())
    assert (tm.interval_s, tm.cycle_delay_s, tm.min_interval_s) == (60, 20, 5)
    assert tm.visit_cycle_s == pytest.approx(1.55) and tm.idle_cycle_s == 1 and tm.startup_s == 1
    assert tm.reschedule  # schedd-idle is taken favourably
    assert not Timing.of(HTCondor(reschedule_on_submit="never")).reschedule


def test_a_claim_lasts_the_longest_worklife_any_pool_gives() -> None:
    """Review, stop 51: with prompt's CLAIM_WORKLIFE 0 and DRP's forever, prompt's overflow jobs on DRP slots kept
    their claims under DRP's and beat a bound built on prompt's 0. A latency pool's jobs run on every startd
    (``batch.policy.overflow_pools``), so the bound takes the longest worklife of all."""
    h = HTCondor(claim_worklife_s=1200, pool_claim_worklife_s={"prompt": 0, "drp": -1})
    assert Timing.of(h).worklife_s == h.pool_claim_worklife_s["drp"] > 365 * 24 * 3600
    assert Timing.of(HTCondor(claim_worklife_s=60, pool_claim_worklife_s={"drp": 30})).worklife_s == 60


def test_a_reschedule_starts_a_cycle_at_readout() -> None:
    # Timer cycles: 0-1, then 1 + max(20, 60 - 1) = 60: 60-61, next at 120. The visit at 100 reschedules:
    # max(100, 61 + 20, 60 + 5) = 100; the cycle ends at 101.55, the jobs start at 102.55; the 30 s job ends
    # at 132.55: 32.55 s after readout.
    assert visit_latency_bounds([(100.0, [30.0, 10.0])], BASE) == [pytest.approx(32.55)]


def test_without_a_reschedule_the_visit_waits_for_the_timer() -> None:
    # The timer's next cycle is at 120 (above): 120 + 1.55 + 1 + 30 - 100 = 52.55.
    tm = replace(BASE, reschedule=False)
    assert visit_latency_bounds([(100.0, [30.0, 10.0])], tm) == [pytest.approx(52.55)]


def test_the_cycle_delay_defers_a_reschedule() -> None:
    # At 70 the last cycle ended at 61: max(70, 61 + 20, 60 + 5) = 81; 81 + 1.55 + 1 + 30 - 70 = 43.55.
    assert visit_latency_bounds([(70.0, [30.0])], BASE) == [pytest.approx(43.55)]
    # At 60.5 the 60 s cycle is running and did not see the jobs: the same 81; 81 + 2.55 + 30 - 60.5 = 53.05.
    assert visit_latency_bounds([(60.5, [30.0])], BASE) == [pytest.approx(53.05)]


def test_a_claim_freed_before_the_cycle_ends_runs_the_next_job_in_queue_order() -> None:
    # Visit A at 100: cycle 100-101.55, its 30 s job runs 102.55-132.55 on a claim made at 101.55. Visit B at
    # 131.5 reschedules at max(131.5, 101.55 + 20, 100 + 5) = 131.5; its cycle ends at 133.05. A's claim frees
    # at 132.55, inside that window, and the schedd gives it to B's first job in queue order (FindRunnableJob:
    # JobPrio, then cluster and proc id), whatever its runtime; the others start after the cycle, at 134.05.
    # B = [5, 40]: the 5 s job runs 133.55-138.55, the 40 s one 134.05-174.05: 174.05 - 131.5 = 42.55.
    a, b = visit_latency_bounds([(100.0, [30.0]), (131.5, [5.0, 40.0])], BASE)
    assert a == pytest.approx(32.55) and b == pytest.approx(42.55)
    # B = [40, 5]: the 40 s job is first and takes the claim: 133.55-173.55: 42.05.
    _, b = visit_latency_bounds([(100.0, [30.0]), (131.5, [40.0, 5.0])], BASE)
    assert b == pytest.approx(42.05)
    # A claim older than CLAIM_WORKLIFE is not reused: 131 s old at 132.55 with a 20 s worklife.
    _, b = visit_latency_bounds([(100.0, [30.0]), (131.5, [40.0, 5.0])], replace(BASE, worklife_s=20))
    assert b == pytest.approx(42.55)


def test_claims_take_the_queue_in_the_order_they_free() -> None:
    # Visit A at 100 with [30, 30.3]: both start at 102.55 and end at 132.55 and 132.85, before B's cycle ends
    # (131.5 + 1.55 = 133.05). B = [10, 20, 40]: the claim freed first runs the 10 s job (133.55-143.55), the
    # second the 20 s one (133.85-153.85), and the 40 s job starts after the cycle: 134.05-174.05, 42.55.
    visits: list[tuple[float, list[float]]] = [(100.0, [30.0, 30.3]), (131.5, [10.0, 20.0, 40.0])]
    assert visit_latency_bounds(visits, BASE)[1] == pytest.approx(42.55)
    # Queued [40, 20, 10], the 40 s job takes the first claim: 133.55-173.55, 42.05.
    visits[1] = (131.5, [40.0, 20.0, 10.0])
    assert visit_latency_bounds(visits, BASE)[1] == pytest.approx(42.05)
    # Claims keep the age of their first match: queued [10, 20, 40], B's 10 s job runs on the claim A's job
    # made at 101.55, and with a 40 s worklife it is 42 s old at 143.55: visit C at 143 (cycle at max(143,
    # 133.05 + 20, 131.5 + 5) = 153.05, ends 154.6) gets no claim from it; the 20 s job's claim frees at
    # 153.85 (52.3 s old, also too old), the 40 s job's (made 133.05) at 174.05: C's 1 s job starts at 155.6
    # and ends at 156.6: 13.6 s.
    tm = replace(BASE, worklife_s=40)
    chain = [(100.0, [30.0, 30.3]), (131.5, [10.0, 20.0, 40.0]), (143.0, [1.0])]
    assert visit_latency_bounds(chain, tm)[2] == pytest.approx(13.6)
    # Queued [40, 20, 10], the 10 s job starts on a claim made at 133.05 and ends at 144.05, 11 s old and in
    # C's window: C's job runs 145.05-146.05, 3.05 s.
    chain[1] = (131.5, [40.0, 20.0, 10.0])
    assert visit_latency_bounds(chain, tm)[2] == pytest.approx(3.05)


def test_the_start_throttle_spaces_a_visits_starts() -> None:
    # JOB_START_COUNT 1, JOB_START_DELAY 2: the cycle ends at 101.55; starts 101.55, 103.55, 105.55, each + 1 s
    # start-up, in queue order: 10 at 102.55 (112.55), 30 at 104.55 (134.55), 30 at 106.55 (136.55): 36.55.
    tm = replace(BASE, start_delay_s=2)
    assert visit_latency_bounds([(100.0, [10.0, 30.0, 30.0])], tm) == [pytest.approx(36.55)]
    # Queued longest first the last start runs the 10 s job: 30 ends 132.55, 30 ends 134.55, 10 ends 116.55.
    assert visit_latency_bounds([(100.0, [30.0, 30.0, 10.0])], tm) == [pytest.approx(34.55)]


def test_a_run_reports_the_timing_bound_above_the_plain_one(ldf: EnclaveSpec) -> None:
    loaded = parse(small_text(htcondor="{dedicated_schedds: [prompt]}"), "small.yaml", spec=ldf)
    sim = make_sim(loaded)
    sim.run()
    m = metrics.compute(sim)["bounds"]
    plain = np.asarray(sim.visit_min_latency)
    timed = metrics.timing_lower(sim)
    assert timed is not None
    # Every job needs at least its start-up after readout, so each visit's timed bound is above its slowest job.
    assert np.all(timed >= plain + loaded.scenario.htcondor.job_startup_s - 1e-9)
    assert m["prompt_visits_within_deadline_timing_upper"] <= m["prompt_visits_within_deadline_upper"]


def test_frictionless_matching_has_no_timing_bound(ldf: EnclaveSpec) -> None:
    loaded = parse(small_text(htcondor="{matching: instant}"), "small.yaml", spec=ldf)
    sim = make_sim(loaded)
    sim.run()
    assert metrics.compute(sim)["bounds"]["prompt_visit_latency_timing_lower_s"] is None


def test_a_reschedule_waits_for_the_minimum_interval_since_the_last_cycle_began() -> None:
    # NEGOTIATOR_MIN_INTERVAL 30 s, no cycle delay: cycles at 0 and 60 (ended 61). A visit at 70 asks for a cycle:
    # max(70, 61 + 0, 60 + 30) = 90; 90 + 1.55 + 1 + 30 - 70 = 52.55. Without the minimum interval it would be
    # 70: 32.55 (a mutant dropping it passed every test, stop 57: the default cycle delay always came later).
    tm = replace(BASE, cycle_delay_s=0, min_interval_s=30)
    assert visit_latency_bounds([(70.0, [30.0])], tm) == [pytest.approx(52.55)]


def test_the_start_throttle_opens_a_new_batch_once_its_delay_has_passed() -> None:
    # JOB_START_COUNT 2 per JOB_START_DELAY 2 s, asked at 0, 2, 2, 2: the batch begun at 0 has ended by 2, so two
    # start at 2 and the third waits for the next batch, at 4 (a mutant that kept the old batch open at exactly
    # its end let three start at 2).
    throttle = _Throttle(replace(BASE, start_count=2, start_delay_s=2))
    assert [throttle.start(t) for t in (0.0, 2.0, 2.0, 2.0)] == [0.0, 2.0, 2.0, 4.0]


def test_a_visit_takes_only_as_many_freed_claims_as_it_has_jobs() -> None:
    # Visit A at 100: three 30 s jobs on claims made at 101.55, all free at 132.55. Visit B at 131.5 (cycle
    # 131.5-133.05, as above) has one 5 s job: it takes one of them, 133.55-138.55: 7.05 s; the other two stay
    # claims for later visits (a mutant reusing every freed claim gave B three claims for one job).
    a, b = visit_latency_bounds([(100.0, [30.0, 30.0, 30.0]), (131.5, [5.0])], BASE)
    assert a == pytest.approx(32.55) and b == pytest.approx(7.05)
