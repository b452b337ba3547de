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

from enclave.domain.night import TROPICAL_YEAR_S, season_edges
from enclave.errors import InputError
from enclave.spec.models import EnclaveSpec
from enclave.twin.scenario import parse
from enclave.twin.sim import EV_BLOCK, Sim
from enclave.twin.worklife import ClockWorklife
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


def _sim(minimal: EnclaveSpec, base: str = BASE, **htcondor: object) -> Sim:
    settings = {"cycle_base_s": IDLE_CYCLE, "cycle_per_submitter_s": 1.0, "cycle_per_autocluster_s": 0.5,
                "job_startup_s": S, "reschedule_on_submit": "never", **htcondor}
    body = ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in settings.items())
    sim = make_sim(parse(base + f"htcondor: {{{body}}}\n", "h.yaml", spec=minimal))
    assert sim.cap["drp"] == 8 and sim.acs[0].pool == "drp"
    return sim


def _submit(sim: Sim, t: float, jobs: int, ac: int = 0) -> None:
    sim.q.push(t, EV_BLOCK, Arrival(t, ac, [R] * jobs))


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
    sim = _sim(minimal, reschedule_on_submit="always")
    _submit(sim, 30.0, 1)
    # The reschedule at 30 is past 2 + 20 (cycle delay) and 0 + 5 (min interval): a cycle starts at once.
    assert _waits(sim, until=100) == [pytest.approx(BUSY_CYCLE + S)]
    # The timer armed for 60 was superseded: cycles ran 0-2, 30-33.5, then 33.5 + max(20, 56.5) = 90-92.
    assert sim.cycles == 3


def test_a_reschedule_waits_out_the_cycle_delay(minimal: EnclaveSpec) -> None:
    sim = _sim(minimal, reschedule_on_submit="always")
    _submit(sim, 10.0, 1)
    # At 10 the last cycle finished at 2: the next may start at 2 + 20 = 22 (condor_reschedule(1)).
    assert _waits(sim) == [pytest.approx(22 + BUSY_CYCLE + S - 10)]


# A second DRP autocluster whose 64 GiB no 32 GiB slot holds: idle all along, like a DRP backlog.
STUCK = BASE.replace("runtime: {dist: fixed, mean: 100}}]}", "runtime: {dist: fixed, mean: 100}},\n"
                     "           {name: big, weight: 1, memory_gib: 64, runtime: {dist: fixed, mean: 100}}]}")


@pytest.mark.parametrize(("rule", "start"), [("schedd-idle", 82 + 4.0), ("always", 45.5 + 4.0)])
def test_a_schedd_with_idle_jobs_sends_no_reschedule(minimal: EnclaveSpec, rule: str, start: float) -> None:
    sim = _sim(minimal, base=STUCK, reschedule_on_submit=rule)
    _submit(sim, 0.0, 1, ac=1)
    _submit(sim, 30.0, 1)
    # t=0: the schedd's start-up timeout counted nothing, so the first cycle finds no submitter ad (0-2). The
    # stuck job's submit asks for a cycle: the timeout runs at 0 + 5 (SCHEDD_MIN_INTERVAL), counts it, and
    # sends RESCHEDULE; the cycle waits for the cycle delay: 22-25.5 (one submitter, one autocluster), never
    # satisfied (the job fits nowhere); the timer is re-armed for 25.5 + 56.5 = 82. At 30 the schedd's count is
    # 1: a 26.x schedd sends nothing and the job waits for the cycle at 82; 'always' asks, its timeout runs at
    # 30 and the cycle at 25.5 + 20 = 45.5. Either cycle sees one submitter and two autoclusters: 2 + 1 + 2 x 0.5
    # = 4 s.
    assert _waits(sim) == [pytest.approx(start + S - 30)]


# A user job (the static layout gives 'user' no slot) that stays idle on the shared submit host; the user
# load draws no arrivals of its own in the hour (rate 1e-4 bursts a day).
USER_STUCK = BASE.replace("user_batch: null", "user_batch: {bursts_per_day: 0.0001, jobs_per_burst: 1}")


@pytest.mark.parametrize(("dedicated", "start"), [("[]", 322.0), ("[drp]", 45.5)])
def test_a_dedicated_schedd_reschedules_whatever_the_others_hold(minimal: EnclaveSpec, dedicated: str,
                                                                  start: float) -> None:
    sim = _sim(minimal, base=USER_STUCK, reschedule_on_submit="schedd-idle", dedicated_schedds=dedicated)
    assert sim.wl.arrivals == [] and sim.acs[1].pool == "user" and sim.cap["user"] == 0
    _submit(sim, 0.0, 1, ac=1)
    _submit(sim, 30.0, 1)
    # As above, the stuck job's submit gives the cycle 22-25.5 and the timer 82, 142, ... (each cycle 3.5 s).
    # At 30 the shared submit host counts the user job: no reschedule, and its ad (sent at 5) shows DRP with
    # no idle job, so no cycle negotiates with DRP until the schedd's next periodic timeout (5 + 300 = 305)
    # sends one that does: the cycle at 322. A DRP schedd of its own counted nothing: a reschedule, run at
    # 25.5 + 20 = 45.5. Either cycle sees two submitters, one autocluster each. DRP's group goes first
    # (usage / quota 0 / 4; user's group has no quota: 3.3e+38, GROUP_SORT_EXPR), so its match reaches its
    # schedd when its turn ends, B + 1 + 0.5 = 3.5 s into the cycle.
    assert _waits(sim) == [pytest.approx(start + BUSY_CYCLE + S - 30)]


@pytest.mark.parametrize(("second", "wait"), [(60.0, BUSY_CYCLE + S), (52.0, 53.5 + BUSY_CYCLE + S - 52)])
def test_a_negotiation_that_matched_everything_clears_the_count(minimal: EnclaveSpec, second: float,
                                                               wait: float) -> None:
    """schedd.cpp (htcondor/htcondor 7491a14): endSubmitTransaction asks for a cycle only if
    ``LastSubmitterPressure`` is 0, which only ``Scheduler::timeout`` sets, from the idle jobs its submitter ads
    count; a timeout runs every SCHEDD_INTERVAL (300 s), at once after ``needReschedule``, and at once when the
    negotiator has matched every job a submitter offered (``negotiationFinished``, satisfied), each no sooner
    than SCHEDD_MIN_INTERVAL (5 s) after the last started. DRP's schedd is its own; one job at 30, one at
    ``second``."""
    sim = _sim(minimal, reschedule_on_submit="schedd-idle", dedicated_schedds="[drp]")
    _submit(sim, 30.0, 1)
    _submit(sim, second, 1)
    # The schedd's start-up timeout at 0 counted nothing; the cycle at 0 finds no submitter ad and ends at 2.
    # At 30 the submit asks: the timeout runs at once (0 + 5 has passed), sends the ad (1 idle) and RESCHEDULE;
    # the cycle runs 30-33.5 (past 2 + 20 and 0 + 5), the job starts at 36.5, the timer is re-armed for 90.
    # Satisfied, the schedd runs its timeout again at 30 + 5 = 35: no idle job, so the count is 0 again.
    # - At 60 the submit asks; the timeout runs at once, the cycle at 60 (past 33.5 + 20).
    # - At 52 it asks, the timeout runs at once (35 + 5 has passed), and the cycle waits for 33.5 + 20 = 53.5.
    assert _waits(sim) == [pytest.approx(BUSY_CYCLE + S), pytest.approx(wait)]


@pytest.mark.parametrize(("interval", "wait"), [(300, 150 + BUSY_CYCLE + S - 145), (10, BUSY_CYCLE + S)])
def test_a_count_left_by_jobs_started_on_reused_claims_lasts_until_a_timeout(minimal: EnclaveSpec, interval: int,
                                                                          wait: float) -> None:
    """Jobs the schedd starts on claims it holds (CLAIM_WORKLIFE) leave the queue without a negotiation, so no
    ``negotiationFinished`` updates the count: it stays until the next timeout, periodic (SCHEDD_INTERVAL) or
    the one a later cycle's contact brings. Nine jobs at 30 on the 8-core slot, one more at 145."""
    sim = _sim(minimal, reschedule_on_submit="schedd-idle", dedicated_schedds="[drp]", schedd_interval_s=interval)
    _submit(sim, 30.0, 9)
    _submit(sim, 145.0, 1)
    # At 30 the timeout counts 9 idle jobs; the cycle 30-33.5 matches 8 (one core each), the ninth is left: not
    # satisfied, no timeout. The timer's cycle at 90 (ending 93.5; the next at 150) finds no room for it. At
    # 36.5 + 100 = 136.5 the eight end and the ninth starts on one of their claims: nothing idle, no cycle.
    # - SCHEDD_INTERVAL 300: the last timeout (30) counted 9, so the submit at 145 asks for nothing; the job
    #   waits for the timer's cycle at 150, whose turn ends at 153.5.
    # - 10: the timeouts every 10 s from 30 counted the ninth until 130; the one at 140 counts none. The submit at
    #   145 asks: the timeout runs at 145 (140 + 5), the cycle at 145 (past 93.5 + 20).
    waits = _waits(sim)
    assert waits[:8] == [pytest.approx(BUSY_CYCLE + S)] * 8
    assert waits[8] == pytest.approx(wait)
    # RESCHEDULEs sent: at 30, and with SCHEDD_INTERVAL 10 at 145 too.
    assert sim.schedd_reschedules == (1 if interval == 300 else 2)


def test_the_first_submitter_s_jobs_start_when_its_turn_ends(minimal: EnclaveSpec) -> None:
    """Two submitters in one cycle: each one's matches are claimed when its own turn ends (the negotiator
    sends them during its session, matchmaker.cpp ``negotiate``; the schedd claims at once, schedd.cpp
    ``Scheduler::enqueueStartdContact``), the first's before the cycle ends."""
    sim = make_sim(parse(USER_STUCK + "htcondor: {cycle_base_s: 2, cycle_per_submitter_s: 1, "
                         "cycle_per_autocluster_s: 0.5, job_startup_s: 3, reschedule_on_submit: never}\n",
                         "h.yaml", spec=minimal), policy="quotas")
    # Group quotas on shared slots: the user job can run too (user's max share 0.5: 8 of the 16 cores).
    _submit(sim, 30.0, 1)
    _submit(sim, 30.0, 1, ac=1)
    sim.run_until(100.0)
    # Cycles: 0-2 (nothing idle), then the timer at 2 + max(20, 60 - 2) = 60. That cycle sees DRP and user,
    # one autocluster each; the rendered GROUP_SORT_EXPR puts DRP (0 / 4 cores of quota: 2 + 0) before user
    # (no quota: 3.3e+38). DRP's turn ends at 60 + B + 1 + 0.5 = 63.5, user's at 63.5 + 1 + 0.5 = 65, which is
    # the cycle's end. Each job starts S = 3 s after its turn.
    assert sim.waits["drp"] == [pytest.approx(63.5 + S - 30)]
    assert sim.waits["user"] == [pytest.approx(65 + S - 30)]
    assert sim.cycles == 2 and sim.cycle_s == pytest.approx(IDLE_CYCLE + 5)


def test_an_unknown_dedicated_schedd_pool_is_an_error(minimal: EnclaveSpec) -> None:
    with pytest.raises(InputError, match="no pool 'nightly'"):
        _sim(minimal, dedicated_schedds="[nightly]")


@pytest.mark.parametrize("interval", [0.5, 0])
def test_a_schedd_interval_under_a_second_is_an_error(minimal: EnclaveSpec, interval: float) -> None:
    # HTCondor reads SCHEDD_INTERVAL as whole seconds (schedd.cpp: param_integer("SCHEDD_INTERVAL", 300)).
    with pytest.raises(InputError, match="schedd_interval_s"):
        _sim(minimal, schedd_interval_s=interval)


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


@pytest.mark.parametrize(("worklife", "drp_worklife", "reused"), [(100, 1200, True), (1200, 100, False)])
def test_a_pools_own_worklife_decides_reuse_on_its_slots(minimal: EnclaveSpec, worklife: int, drp_worklife: int,
                                                         reused: bool) -> None:
    """The startd reads CLAIM_WORKLIFE of the pool it serves (spec pools.<name>.claim_worklife, rendered per
    pool) when the job ends (Resource.cpp ``claimWorklifeExpired``): DRP's slot keeps or releases the 103 s old
    claim by DRP's worklife, whatever the other pools' is."""
    sim = _sim(minimal, claim_worklife_s=worklife, pool_claim_worklife_s=f"{{drp: {drp_worklife}}}")
    _submit(sim, 30.0, 9)
    first = 60 + BUSY_CYCLE + S
    # Kept: the ninth starts on the claim at 166.5 + S; released: on the 180 cycle's match, as above.
    ninth = first + R + S if reused else 180 + BUSY_CYCLE + S
    assert _waits(sim) == [pytest.approx(first - 30)] * 8 + [pytest.approx(ninth - 30)]
    assert sim.reuses == int(reused)


@pytest.mark.parametrize(("switch", "reused"), [(120, False), (240, True)])
def test_a_worklife_by_the_clock_is_read_when_the_job_ends(minimal: EnclaveSpec, switch: int, reused: bool) -> None:
    """A pool's CLAIM_WORKLIFE by day (pools.<name>.day_claim_worklife) is an expression of the startd's clock,
    evaluated when a job ends on the claim (Resource.cpp ``claimWorklifeExpired``). The scenario starts at
    start_epoch; the expression gives 1200 s until ``switch`` s later and 100 s after: the 103 s old claim at
    166.5 is released once the switch is past (120) and kept before it (240)."""
    epoch = 1_782_043_200  # the scenario's default start_epoch
    clock = f'"ifThenElse(time() < {epoch + switch}, 1200, 100)"'
    sim = _sim(minimal, claim_worklife_s=100, pool_claim_worklife_by_clock=f"{{drp: {clock}}}")
    _submit(sim, 30.0, 9)
    first = 60 + BUSY_CYCLE + S
    ninth = first + R + S if reused else 180 + BUSY_CYCLE + S
    assert _waits(sim) == [pytest.approx(first - 30)] * 8 + [pytest.approx(ninth - 30)]
    assert sim.reuses == int(reused)


def test_a_worklife_by_the_clock_that_is_no_worklife_is_an_error(minimal: EnclaveSpec) -> None:
    with pytest.raises(InputError, match="pool_claim_worklife_by_clock"):
        _sim(minimal, pool_claim_worklife_by_clock='{drp: "ifThenElse(time() % 86400 < 3600, -2, 100)"}')
    with pytest.raises(InputError, match="no ClassAd expression"):
        _sim(minimal, pool_claim_worklife_by_clock='{drp: "ifThenElse("}')


def test_the_longest_worklife_by_the_clock_is_found_in_any_five_minutes_of_any_season() -> None:
    """``ClockWorklife.most`` (the timing bound's worklife) reads the expression over a year, not one day: five
    minutes a day keep claims (the rendered bands' step), or one season does (at 80° N no day of January has any
    day, tests/broker/test_night.py)."""
    five = f"time() % {TROPICAL_YEAR_S} < 86400 && time() % 86400 >= 600 && time() % 86400 < 900"  # 1970-01-01
    assert ClockWorklife(f"ifThenElse({five}, -1, 1200)", 1e9).most() == 1e9
    june = season_edges()[11]  # the season that holds the June solstice
    summer = f"ifThenElse(time() % {TROPICAL_YEAR_S} >= {june}, -1, 1200)"
    assert ClockWorklife(summer, 1e9).most() == 1e9
    assert ClockWorklife(summer, 1e9).at(0.0) == 1200  # January 1970, the first season


TWO_TASKS = BASE.replace("mix: [{name: t, weight: 1, memory_gib: 1, runtime: {dist: fixed, mean: 100}}]",
                         "mix: [{name: big, weight: 1, memory_gib: 16, runtime: {dist: fixed, mean: 100}},"
                         " {name: small, weight: 1, memory_gib: 1, runtime: {dist: fixed, mean: 100}}]")


def _two_tasks(minimal: EnclaveSpec) -> tuple[Sim, int, int]:
    sim = _sim(minimal, TWO_TASKS)
    sim.audit = True  # every event checks the slots' claimed cores and memory against the running jobs
    big, small = (next(a.index for a in sim.acs if a.memory_mib == gib * 1024) for gib in (16, 1))
    return sim, big, small


def test_a_claim_runs_the_submitters_oldest_job_that_fits_its_dynamic_slot(minimal: EnclaveSpec) -> None:
    """The schedd gives a claim whose job ended to the submitter's first idle job, in job-id order, that the
    claimed dynamic slot matches, of whichever autocluster (qmgmt.cpp ``FindRunnableJob``, called with the
    claim's user by schedd.cpp ``FindRunnableJobForClaim``)."""
    sim, big, small = _two_tasks(minimal)
    _submit(sim, 30.0, 2, big)  # matched in the 60 cycle: both start at 66.5, and take all 32 GiB of the slot
    _submit(sim, 100.0, 1, small)  # the 120 cycle finds no memory for it
    _submit(sim, 110.0, 1, big)
    first = 60 + BUSY_CYCLE + S
    # At 166.5 both 16 GiB claims (103 s old) are free for reuse. The first goes to the oldest idle job, the
    # small one, which fits; the second to the big one. Both start S later, with no negotiation.
    assert _waits(sim) == [pytest.approx(first - 30)] * 2 + [pytest.approx(first + R + S - 110),
                                                             pytest.approx(first + R + S - 100)]
    assert sim.reuses == 2
    sim.check()  # raises on a slot claimed beyond its size or a counter that disagrees


def test_a_smaller_job_on_a_reused_claim_keeps_the_whole_dynamic_slot(minimal: EnclaveSpec) -> None:
    """A dynamic slot keeps the size of the job it was made for: the 1 GiB job that takes a 16 GiB claim
    holds 16 GiB of the partitionable slot until it ends."""
    sim, big, small = _two_tasks(minimal)
    _submit(sim, 30.0, 1, big)
    _submit(sim, 100.0, 8, small)  # 7 cores, 16 GiB free: the 120 cycle matches 7 of them
    first = 60 + BUSY_CYCLE + S
    sim.run_until(first + R + 1)  # the big job has ended, and the eighth small job runs on its claim
    slot = next(s for s in sim.startds.values() if s.pool == "drp")
    assert slot.free_cores == 0 and slot.free_mem == 32 * 1024 - 16 * 1024 - 7 * 1024
    assert sim.reuses == 1
    sim.run_until(1000.0)  # then every claim ends with its job, and the slot is whole again
    assert (slot.free_cores, slot.free_mem) == (8, 32 * 1024)
    sim.check()  # raises on a slot claimed beyond its size or a counter that disagrees


def test_a_larger_job_does_not_take_a_smaller_claim(minimal: EnclaveSpec) -> None:
    sim, big, small = _two_tasks(minimal)
    _submit(sim, 30.0, 8, small)  # all 8 cores, 1 GiB each
    _submit(sim, 100.0, 1, big)  # no core free at the 120 cycle
    first = 60 + BUSY_CYCLE + S
    # The 1 GiB dynamic slots cannot hold a 16 GiB request: the claims end at 166.5, and the 180 cycle matches
    # the big job.
    assert _waits(sim) == [pytest.approx(first - 30)] * 8 + [pytest.approx(180 + BUSY_CYCLE + S - 100)]
    assert sim.reuses == 0


def test_a_worklife_for_an_unknown_pool_is_an_error(minimal: EnclaveSpec) -> None:
    with pytest.raises(InputError, match="no pool 'nightly'"):
        _sim(minimal, pool_claim_worklife_s="{nightly: 10}")


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


@pytest.mark.parametrize("consumption", [False, True])
def test_a_slot_one_turn_matched_is_offered_to_a_later_turn_only_under_a_consumption_policy(
        minimal: EnclaveSpec, consumption: bool) -> None:
    """Without a consumption policy the negotiator takes a matched slot's ad out of the cycle's list
    (matchmaker.cpp ``negotiate``: "2g. Delete ad from list so that it will not be considered again in this
    negotiation cycle"), and the slot's leftovers go to that match's submitter alone
    (CLAIM_PARTITIONABLE_LEFTOVERS). So in one cycle DRP's turn (first, by the rendered GROUP_SORT_EXPR) takes the
    first of the two empty shared 8-core slots, and the user's turn gets the second, although the first, with 5
    cores left, ranks higher by HTCondor's default NEGOTIATOR_PRE_JOB_RANK (the smallest slot first). With one
    the slot stays in the list ("In this mode we don't remove offers"), and the user's jobs go to that smaller
    slot too."""
    sim = make_sim(parse(USER_STUCK + "htcondor: {cycle_base_s: 2, cycle_per_submitter_s: 1, "
                         "cycle_per_autocluster_s: 0.5, job_startup_s: 3, reschedule_on_submit: never, "
                         f"consumption_policy: {str(consumption).lower()}}}\n",
                         "h.yaml", spec=minimal), policy="quotas")
    first, second = list(sim.startds.values())[:2]
    _submit(sim, 30.0, 3)
    _submit(sim, 30.0, 3, ac=1)
    sim.run_until(100.0)  # one cycle at 60 saw both (as in the test above)
    assert sim.cycles == 2
    pools = sorted(sim.acs[sim.running[j][2]].pool for j in first.running)
    if consumption:
        assert pools == ["drp"] * 3 + ["user"] * 3 and not second.running
    else:
        assert pools == ["drp"] * 3
        assert {sim.acs[sim.running[j][2]].pool for j in second.running} == {"user"} and len(second.running) == 3


def test_a_claim_reused_during_a_cycle_leaves_that_cycle_no_room_for_a_later_job(minimal: EnclaveSpec) -> None:
    """A cycle matches the jobs idle when it began (docs/twin.md, "HTCondor as it schedules"). Review, stop 53: a job
    the cycle saw that started on a reused claim during the cycle left its place in the cycle's count to a job
    submitted after the cycle began.

    DRP's 8 jobs at 1 run 66.5-121 (the cycle at 60, 3.5 s, start-up 3 s). Job A at 100 is idle when the cycle at
    120 begins; at 121 it starts on an ended job's claim (CLAIM_WORKLIFE). Job B at 122 waits for the cycle at 180,
    whose DRP turn ends at 183.5."""
    sim = _sim(minimal)
    sim.q.push(1.0, EV_BLOCK, Arrival(1.0, 0, [54.5] * 8))
    sim.q.push(100.0, EV_BLOCK, Arrival(100.0, 0, [500.0]))
    sim.q.push(122.0, EV_BLOCK, Arrival(122.0, 0, [500.0]))
    sim.run_until(200.0)
    assert sorted((rec[3], rec[6]) for rec in sim.running.values()) == [(100.0, 121.0), (122.0, 183.5)]
