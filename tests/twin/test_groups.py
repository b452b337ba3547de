"""HTCondor's group quota allocation (``enclave.twin.groups``) on hand-computed cases. Each expected value follows
from htcondor/htcondor 7491a14 src/condor_negotiator.V6/GroupEntry.cpp: ``hgq_assign_quotas`` (dynamic quotas
times the pool, scaled down past a sum of 1; the root keeps the rest), ``hgq_fairshare`` (min(request, quota)),
``hgq_allocate_surplus`` ("Cornucopia" when the surplus covers every remaining request, else
``hgq_allocate_surplus_loop`` by quota, then evenly among zero-quota groups) and the allocation rounds of
``hgq_negotiate_with_all_groups``."""

from __future__ import annotations

import pytest

from enclave.spec.models import EnclaveSpec
from enclave.twin import groups
from enclave.twin.scenario import parse
from enclave.twin.sim import EV_BLOCK, Sim
from enclave.twin.workloads import Arrival

from .conftest import make_sim, with_shares

LDF_SHARES = {"prompt": 0.25, "drp": 0.40, "user": 0.10, "general": 0.05}


def test_quotas_are_the_dynamic_shares_of_the_pool_and_the_root_keeps_the_rest() -> None:
    each, root = groups.quotas(LDF_SHARES, 960)
    assert each == pytest.approx({"prompt": 240, "drp": 384, "user": 96, "general": 48})
    assert root == pytest.approx(192)


def test_dynamic_quotas_past_one_are_scaled_down() -> None:
    each, root = groups.quotas({"a": 0.75, "b": 0.75}, 100)  # Zd = 1.5
    assert each == pytest.approx({"a": 50, "b": 50}) and root == pytest.approx(0)


def test_by_day_users_share_the_surplus_with_drp_by_quota() -> None:
    """The LDF pool by day: DRP's backlog asks for far more than the pool, a user burst for 400 cores, prompt and
    general for nothing. DRP and user first get their quotas (384, 96); the surplus, the root's 192 with prompt's
    240 and general's 48 unused, 480 in all, goes 384:96 to the two still asking."""
    each, root = groups.quotas(LDF_SHARES, 960)
    got = groups.allocate(each, {"prompt": 0, "drp": 10_000, "user": 400, "general": 0}, root)
    assert got == pytest.approx({"prompt": 0, "drp": 768, "user": 192, "general": 0})


def test_a_surplus_that_covers_every_request_gives_each_what_it_asked() -> None:
    each, root = groups.quotas(LDF_SHARES, 960)
    got = groups.allocate(each, {"prompt": 300, "drp": 500, "user": 100, "general": 0}, root)
    # After the quotas (240, 384, 96) 60 + 116 + 4 = 180 are still asked for, and the surplus is 192 + 48.
    assert got == pytest.approx({"prompt": 300, "drp": 500, "user": 100, "general": 0})


def test_a_group_capped_at_its_request_leaves_the_rest_to_the_next_pass() -> None:
    """prompt asks 20 beyond its quota, DRP 1,000, the others exactly their quotas: the surplus is the root's 192.
    The first pass offers prompt 192 x 240/624 = 73.8, capped at 20, and DRP 118.2; the second gives DRP the
    remaining 53.8: 384 + 172 = 556."""
    each, root = groups.quotas(LDF_SHARES, 960)
    got = groups.allocate(each, {"prompt": 260, "drp": 1384, "user": 96, "general": 48}, root)
    assert got == pytest.approx({"prompt": 260, "drp": 556, "user": 96, "general": 48})
    assert sum(got.values()) == pytest.approx(960)


def test_groups_without_quota_share_only_what_the_others_leave_evenly() -> None:
    each, root = groups.quotas({"a": 0.5, "b": 0.0, "c": 0.0}, 100)
    assert groups.allocate(each, {"a": 1000, "b": 10, "c": 10}, root) == pytest.approx({"a": 100, "b": 0, "c": 0})
    assert groups.allocate(each, {"a": 60, "b": 40, "c": 10}, root) == pytest.approx({"a": 60, "b": 30, "c": 10})


def test_a_group_that_used_less_than_its_allocation_asks_only_for_its_usage_next_round() -> None:
    requested = {"a": 20, "b": 4}
    allocated = {"a": 12, "b": 4}
    assert groups.next_requests(requested, allocated, {"a": 12, "b": 0}) == {"a": 20, "b": 0}
    assert groups.next_requests(requested, allocated, {"a": 12, "b": 4}) is None  # every allocation used


def _rounds_sim(minimal: EnclaveSpec, shares: dict[str, float], drp_memory_gib: int = 1,
                policy: str = "quotas", consumption: bool = False, drp_cpus: int = 1) -> Sim:
    """The minimal pool's two empty 8-core, 32 GiB slots under ``policy`` with these dynamic quotas; DRP's jobs
    take ``drp_cpus`` cores and ``drp_memory_gib``, the user group's 40 GiB, which no slot holds. Both submit at 30;
    the timer's cycle at 60 sees them. The startds have no consumption policy unless ``consumption``."""
    loaded = parse("name: rounds\nduration_hours: 1\nprompt: null\nnotebooks: null\n"
                   "user_batch: {bursts_per_day: 0.0001, jobs_per_burst: 1, memory_gib: 40}\n"
                   "drp: {backlog_jobs: 0, jobs_per_hour: 0, "
                   f"mix: [{{name: t, weight: 1, cpus: {drp_cpus}, memory_gib: {drp_memory_gib}, "
                   "runtime: {dist: fixed, mean: 1000}}]}\n"
                   "htcondor: {cycle_base_s: 2, cycle_per_submitter_s: 1, cycle_per_autocluster_s: 0.5, "
                   "job_startup_s: 3, reschedule_on_submit: never, "
                   f"consumption_policy: {str(consumption).lower()}}}\n", "rounds.yaml",
                   spec=with_shares(minimal, **shares))
    sim = make_sim(loaded, policy=policy)
    assert sim.total_cap == 16 and [sim.acs[ac].pool for ac in (0, 1)] == ["drp", "user"]
    return sim


def test_an_allocation_one_group_cannot_use_goes_to_another_in_the_same_cycle(minimal: EnclaveSpec) -> None:
    """Quotas DRP 4, user 4, general 8 (prompt 0, no root share). DRP asks for 20, the user group for 8 it cannot
    run. Round 1: each is allocated its quota, 4, and the surplus (general's 8) goes 4:4 by quota: 8 each. DRP's
    8 jobs fill the first slot, exactly its allocation. Round 2: the user group, having used less than its
    allocation, asks only for what it uses (0); DRP, having used all of it, for its 20 again: 4 + a surplus of 12
    = 16, 8 more, and it matches the second slot in the same cycle: 16.

    Timeline (a cycle of B = 2 s, 1 s per submitter and 0.5 s per autocluster, jobs start 3 s after their turn; the
    timer's cycle at 60, as in tests/twin/test_htcondor.py): round 1, DRP first (usage / quota 0 for both; DRP's
    higher priority), its turn ends at 60 + 2 + 1.5 = 63.5, the user group's at 65; round 2, DRP alone (the user
    group is allocated nothing and gets no turn), at 66.5. So 8 jobs start at 66.5 and 8 at 69.5."""
    sim = _rounds_sim(minimal, {"prompt": 0.0, "drp": 0.25, "user": 0.25, "general": 0.5})
    sim.q.push(30.0, EV_BLOCK, Arrival(30.0, 0, [1000.0] * 20))
    sim.q.push(30.0, EV_BLOCK, Arrival(30.0, 1, [1000.0] * 8))
    sim.run_until(100.0)
    assert sim.cycles == 2 and sim.busy["drp"] == 16 and sim.busy["user"] == 0
    assert sorted(sim.waits["drp"]) == [pytest.approx(66.5 - 30)] * 8 + [pytest.approx(69.5 - 30)] * 8


def test_a_slot_matched_in_one_round_is_not_offered_again_in_the_next(minimal: EnclaveSpec) -> None:
    """Quotas 4 each (no root share). Round 1: DRP is allocated 4 + the surplus 8 (prompt's and general's,
    unasked) = 12, the user group its 4, which it cannot use. DRP's first match, the first slot, costs its
    whole weight, 8 (matchmaker.cpp ``negotiate``: "traditional match cost is just slot weight expression"), and
    runs 8 jobs there; the second slot would cost 8 more than the 4 left, and only a pie spin's first match may
    round up (``SubmitterLimitPermits``); no second spin follows, as the 4 left are below the smallest slot weight
    the cycle started with, 8 (``minSlotWeight``), so DRP stops at 8. Round 2: both groups used less than allocated and
    ask for their usage (DRP 8, user 0): DRP is allocated 8 and has used it. The next cycle allocates DRP 12 again,
    4 more than its 8 running: less than the second slot's 8, but as the turn's first match the slot is taken,
    and its 8 cores run 8 more jobs: 16. The slot matched in round 1 was out of the list for round 2 ("2g.
    Delete ad from list so that it will not be considered again in this negotiation cycle") and full anyway."""
    sim = _rounds_sim(minimal, dict.fromkeys(minimal.pools, 0.25))
    sim.q.push(30.0, EV_BLOCK, Arrival(30.0, 0, [1000.0] * 20))
    sim.q.push(30.0, EV_BLOCK, Arrival(30.0, 1, [1000.0] * 4))
    sim.run_until(100.0)
    assert sim.cycles == 2 and sim.busy["drp"] == 8
    sim.run_until(150.0)  # the next cycle, at 120
    assert sim.cycles == 3 and sim.busy["drp"] == 16


def test_a_match_is_charged_its_partitionable_slots_whole_weight(minimal: EnclaveSpec) -> None:
    """DRP's jobs take 1 core and 16 GiB, two to a 32 GiB slot. Quotas: DRP 8, user 8 (for 40 GiB jobs no slot
    holds), none for the others. Cycle 1: DRP asks for 20 and is allocated its 8 and the 4 the user group leaves
    (12). Its first match, a whole empty slot, is charged the slot's SLOT_WEIGHT, Cpus = 8 unclaimed cores
    (param_info.in ``SLOT_WEIGHT`` default ``Cpus``; ``Accountant::GetSlotWeight`` on the offer), though the
    schedd can start only 2 jobs on it (CLAIM_PARTITIONABLE_LEFTOVERS: the rest of the slot is the same
    submitter's, ``Scheduler::claimedStartd``). The other slot would cost 8 against the 4 left: refused, and no
    second spin rounds up on it (4 is below the cycle's smallest slot weight, 8). Round 2
    allocates DRP its usage as the accountant has it, 8 (``AddMatch`` added the slot's weight), and it has used
    it: 2 jobs run. Charging each job its own weight would have run 4 in this cycle.

    Cycle 2: ``CheckMatches`` counts only the claimed dynamic slots, 2 cores. Allocated 12 again, DRP may claim
    10: the first slot's 6 unclaimed cores hold no 16 GiB job and are not matched; the second costs 8 and runs 2:
    4 jobs."""
    sim = _rounds_sim(minimal, {"prompt": 0.0, "drp": 0.5, "user": 0.5, "general": 0.0}, drp_memory_gib=16)
    sim.q.push(30.0, EV_BLOCK, Arrival(30.0, 0, [1000.0] * 20))
    sim.q.push(30.0, EV_BLOCK, Arrival(30.0, 1, [1000.0] * 4))
    sim.run_until(100.0)
    assert sim.cycles == 2 and sim.busy["drp"] == 2
    sim.run_until(150.0)
    assert sim.cycles == 3 and sim.busy["drp"] == 4


def test_labelled_pools_negotiate_under_the_rendered_group_quotas_too(minimal: EnclaveSpec) -> None:
    """The central manager enclave renders for every layout sets the group quotas (``render.central_manager``), so
    ``static``'s labelled slots are matched under them as well. Quotas DRP 0.9 x 16 = 14.4, user 1.6; both batch
    nodes are DRP's (``static_labels``). DRP asks for 20 jobs of 1 core and 16 GiB, the user group for 4 it cannot
    run. Round 1: DRP is allocated 14.4 (its quota; no surplus), the user group 1.6; the negotiator takes DRP's
    limit as a whole number, 14 (GroupEntry.h: ``int limit``). DRP's first slot costs 8 and
    runs 2 jobs; the second would cost 8 against the 6 left and is refused (no second spin: 6 is below the
    cycle's smallest slot weight, 8). Round 2: DRP asks for its usage, 8,
    and may claim up to int(max(allocated 8, quota 14.4)) less 8 = 6; the second slot, still in the cycle's list
    (refused, not matched), is its turn's first match and may round up: 2 more.

    Timeline (as above): round 1, DRP's turn ends at 60 + 2 + 1.5 = 63.5, the user group's at 65; round 2, DRP
    alone (the user group is allocated nothing), at 66.5. So 2 jobs start at 66.5 and 2 at 69.5, where without
    the quotas all 4 started at 66.5."""
    sim = _rounds_sim(minimal, {"prompt": 0.0, "drp": 0.9, "user": 0.1, "general": 0.0}, drp_memory_gib=16,
                      policy="static")
    assert {s.pool for s in sim.startds.values()} == {"drp"}
    sim.q.push(30.0, EV_BLOCK, Arrival(30.0, 0, [1000.0] * 20))
    sim.q.push(30.0, EV_BLOCK, Arrival(30.0, 1, [1000.0] * 4))
    sim.run_until(100.0)
    assert sim.cycles == 2 and sim.busy["drp"] == 4
    assert sorted(sim.waits["drp"]) == [pytest.approx(66.5 - 30)] * 2 + [pytest.approx(69.5 - 30)] * 2


def test_under_a_consumption_policy_each_match_is_charged_the_weight_its_job_takes(minimal: EnclaveSpec) -> None:
    """The case above with CONSUMPTION_POLICY on the startds: a match costs "the difference in the slot weight
    expression before and after the resources consumed by the match are deducted from the slot" (HTCondor manual,
    startd configuration: SLOT_WEIGHT; consumption_policy.cpp ``cp_deduct_assets``), 1 core for each of DRP's jobs.
    Allocated 12, DRP runs 2 jobs on each slot, as much memory as there is, in the first cycle: 4."""
    sim = _rounds_sim(minimal, {"prompt": 0.0, "drp": 0.5, "user": 0.5, "general": 0.0}, drp_memory_gib=16,
                      consumption=True)
    sim.q.push(30.0, EV_BLOCK, Arrival(30.0, 0, [1000.0] * 20))
    sim.q.push(30.0, EV_BLOCK, Arrival(30.0, 1, [1000.0] * 4))
    sim.run_until(100.0)
    assert sim.cycles == 2 and sim.busy["drp"] == 4


def test_a_group_that_matched_spins_the_pie_again_and_may_round_up_once_more(minimal: EnclaveSpec) -> None:
    """Without a consumption policy each pie spin is a new ``negotiate`` call whose first match may go over the
    limit (``SubmitterLimitPermits``), and a spin follows every spin that matched, unless the limit left is below
    the smallest slot weight the cycle started with (matchmaker.cpp ``negotiateWithGroup``: ``minSlotWeight``).
    Quotas DRP 8, user 4, general 4 (no root share); DRP's jobs take 1 core and 1 GiB.

    Cycle 1 (60): DRP's one job is allocated 1 (the surplus covers every request), may claim max(1, 8) = 8, and
    the first empty slot costs 8: 1 job. Cycle 2 (120): 20 more DRP jobs and 8 user jobs of 40 GiB (no slot holds
    one) are seen. The accountant counts DRP's dynamic slot, 1. Allocation: DRP min(21, 8) = 8, users 4; general's
    4 are surplus, shared 8:4 among the two still asking: DRP 10.67. The slot weights at the cycle's start are 7
    (the first slot's unclaimed cores), 8 and 1 (DRP's job): minSlotWeight 1. DRP may claim int(10.67) - 1 = 9: spin
    1 takes the smaller slot, cost 7, and runs 7 jobs there (full); the other slot's 8 are more than the 2 left.
    Spin 2 (2 >= 1) rounds up on it: 8 more jobs, 16 in all. With one round-up per turn DRP would stop at 8: round 2
    allocates it what it used (8), and the quota (8) gives it nothing more."""
    sim = _rounds_sim(minimal, {"prompt": 0.0, "drp": 0.5, "user": 0.25, "general": 0.25})
    sim.q.push(30.0, EV_BLOCK, Arrival(30.0, 0, [1000.0]))
    sim.run_until(100.0)
    assert sim.cycles == 2 and sim.busy["drp"] == 1
    sim.q.push(100.0, EV_BLOCK, Arrival(100.0, 0, [1000.0] * 20))
    sim.q.push(100.0, EV_BLOCK, Arrival(100.0, 1, [1000.0] * 8))
    sim.run_until(150.0)
    assert sim.cycles == 3 and sim.busy["drp"] == 16


def test_under_a_consumption_policy_a_match_costs_the_change_in_the_slots_weight(minimal: EnclaveSpec) -> None:
    """quotas-mem: SLOT_WEIGHT = max(Cpus, Memory / 4096) (``render.slot_weight``; the minimal spec's batch nodes
    have 4,096 MiB per core). A DRP job of 1 core and 16 GiB weighs 4 as a dynamic slot, but under a consumption
    policy a match costs the slot's weight before less after (HTCondor manual, startd configuration: SLOT_WEIGHT;
    Accountant.cpp ``AddMatch`` charges that cost): an empty slot weighs max(8, 8) = 8, with one such job max(7, 4)
    = 7, with two max(6, 0) = 6 — 1 each. Quotas 8 and 8 (the user group's 40 GiB jobs fit nowhere); DRP asks for
    20 x 4 = 80 and is allocated 8. Round 1 runs 2 jobs on each slot for 4 of the 8: all 4 start at 66.5 (DRP's
    turn ends at 63.5, as above). Charging each job its weight, 4, would have stopped at the first slot and left
    the second to round 2 (start 69.5)."""
    sim = _rounds_sim(minimal, {"prompt": 0.0, "drp": 0.5, "user": 0.5, "general": 0.0}, drp_memory_gib=16,
                      policy="quotas-mem", consumption=True)
    sim.q.push(30.0, EV_BLOCK, Arrival(30.0, 0, [1000.0] * 20))
    sim.q.push(30.0, EV_BLOCK, Arrival(30.0, 1, [1000.0] * 4))
    sim.run_until(100.0)
    assert sim.cycles == 2 and sim.busy["drp"] == 4
    assert sorted(sim.waits["drp"]) == [pytest.approx(66.5 - 30)] * 4


def test_under_a_consumption_policy_a_spins_first_match_may_go_over_the_limit(minimal: EnclaveSpec) -> None:
    """``SubmitterLimitPermits`` prices a consumption-policy match at its cost and, as for any match, lets the
    first of a pie spin go over the limit. DRP's jobs take 3 cores (weight 3); quotas DRP 4, user 12, whose 12
    jobs of 40 GiB fit nowhere. Round 1: DRP, asking 60, is allocated its quota, 4: one job (3), the second would
    make 6 > 4; the 1 left is below the cycle's smallest slot weight (8, two empty slots), so no second spin.
    Round 2: DRP asks for its usage, 3, and may claim int(max(3, 4)) - 3 = 1: its first match goes over, one more
    job. The first starts at 66.5 (DRP's round-1 turn ends at 63.5), the second at 69.5 (round 2's turn, after
    the user group's at 65)."""
    sim = _rounds_sim(minimal, {"prompt": 0.0, "drp": 0.25, "user": 0.75, "general": 0.0}, consumption=True,
                      drp_cpus=3)
    sim.q.push(30.0, EV_BLOCK, Arrival(30.0, 0, [1000.0] * 20))
    sim.q.push(30.0, EV_BLOCK, Arrival(30.0, 1, [1000.0] * 12))
    sim.run_until(100.0)
    assert sim.cycles == 2 and sim.busy["drp"] == 6
    assert sorted(sim.waits["drp"]) == [pytest.approx(66.5 - 30), pytest.approx(69.5 - 30)]


def test_a_group_is_allocated_what_its_last_submitter_ad_asked_for(minimal: EnclaveSpec) -> None:
    """Group quotas allocate from the submitter ads (GroupEntry.cpp ``hgq_prepare_for_matchmaking``: requested =
    WeightedRunningJobs + WeightedIdleJobs of each ad; "The collector info can be a bit stale"), and a 26.x schedd
    sends them at its timeouts (schedd.cpp ``Scheduler::timeout``, every SCHEDD_INTERVAL), which a submit runs only
    when the last counted no idle job (``endSubmitTransaction``: ``LastSubmitterPressure``).

    Quotas DRP 4, user 4, general 8 of the two 8-core slots; one-core jobs; each pool its own schedd, every 300 s.
    At 10 DRP submits a 40 GiB job no slot holds: its timeout at 10 sends an ad asking for 1 and showing idle
    jobs, so DRP's 12 one-core jobs at 40 run no timeout, and its ad still asks for 1. The user group's 12 at 40 do
    (its schedd counted nothing before): its ad asks for 12, and RESCHEDULE brings a cycle at 45.5 (the one at 10's
    RESCHEDULE ran 22-25.5; NEGOTIATOR_CYCLE_DELAY 20). From the ads: DRP min(1, 4) = 1; the user group 4 and,
    the surplus 11 covering the 8 more it asks, 12. DRP negotiates first (0 usage of 4), up to max(1, 4) = 4
    (``hgq_negotiate_with_all_groups``), the user group up to 12. Both used what they were allocated or more: no
    second round. DRP's turn ends at 45.5 + 2 + 1 + 0.5 × 2 autoclusters = 49.5, its jobs start 3 s later.
    From the queues as they are (13 and 12), DRP would be allocated 4 + 4 and the user group 4 + 4 (the surplus 8
    by quota), 8 each. DRP's ad asks for more only at its next timeout, at 310."""
    loaded = parse("name: stale-ads\nduration_hours: 1\nprompt: null\nnotebooks: null\n"
                   "user_batch: {bursts_per_day: 0.0001, jobs_per_burst: 1, memory_gib: 1}\n"
                   "drp: {backlog_jobs: 0, jobs_per_hour: 0, mix: ["
                   "{name: t, weight: 1, memory_gib: 1, runtime: {dist: fixed, mean: 1000}}, "
                   "{name: big, weight: 1, memory_gib: 40, runtime: {dist: fixed, mean: 1000}}]}\n"
                   "htcondor: {cycle_base_s: 2, cycle_per_submitter_s: 1, cycle_per_autocluster_s: 0.5, "
                   "job_startup_s: 3, reschedule_on_submit: schedd-idle, dedicated_schedds: [drp, user], "
                   "consumption_policy: true}\n", "stale.yaml",
                   spec=with_shares(minimal, prompt=0.0, drp=0.25, user=0.25, general=0.5))
    sim = make_sim(loaded, policy="quotas")
    assert sim.total_cap == 16 and [(a.pool, a.memory_mib) for a in sim.acs[:3]] == [
        ("drp", 1024), ("drp", 40 * 1024), ("user", 1024)]
    sim.q.push(10.0, EV_BLOCK, Arrival(10.0, 1, [1000.0]))
    sim.q.push(40.0, EV_BLOCK, Arrival(40.0, 0, [1000.0] * 12))
    sim.q.push(40.0, EV_BLOCK, Arrival(40.0, 2, [1000.0] * 12))
    sim.run_until(300.0)
    assert sim.ad_requested["drp"] == 1
    assert sim.busy["drp"] == 4 and sim.busy["user"] == 12
    assert sorted(sim.waits["drp"]) == [pytest.approx(49.5 + 3 - 40)] * 4


def test_the_quotas_hold_for_every_allocation_round_of_a_cycle(minimal: EnclaveSpec) -> None:
    """GroupEntry.cpp: ``hgq_prepare_for_matchmaking`` assigns the quotas (``hgq_assign_quotas``) once per cycle
    (matchmaker.cpp ``negotiationTime``), and the allocation rounds call ``hgq_fairshare`` alone. Review, stop 53:
    the twin assigned them again from the slot weights a round's matches had changed.

    quotas-mem on the two 8-core, 32 GiB slots, SLOT_WEIGHT max(cores, memory / 4 GiB): the pool weighs 16 as the
    cycle begins, and DRP's quota is 0.25 × 16 = 4. DRP asks for two 1-core 16 GiB jobs and a 40 GiB one no slot
    holds, so the allocation goes round again. After round 1 the pool weighs 22: the two dynamic slots 4 each, the
    slot they share 6 unclaimed cores with no memory (6), the other slot 8. Assigned again, DRP's quota would be
    5.5; round 2 keeps 4.
    """
    loaded = parse("name: rounds\nduration_hours: 1\nprompt: null\nuser_batch: null\nnotebooks: null\n"
                   "drp: {backlog_jobs: 0, jobs_per_hour: 0, mix: ["
                   "{name: m, weight: 1, memory_gib: 16, runtime: {dist: fixed, mean: 1000}}, "
                   "{name: big, weight: 1, memory_gib: 40, runtime: {dist: fixed, mean: 1000}}]}\n"
                   "htcondor: {cycle_base_s: 2, cycle_per_submitter_s: 1, cycle_per_autocluster_s: 0.5, "
                   "job_startup_s: 3, reschedule_on_submit: never}\n", "rounds.yaml", spec=minimal)
    sim = make_sim(loaded, policy="quotas-mem")
    policy = sim.policy
    quotas: list[tuple[int, float]] = []
    next_round = policy.next_round

    def spy(s: Sim) -> bool:
        more = next_round(s)
        if more:
            quotas.append((policy.round, policy.quota(s, "drp")))  # type: ignore[attr-defined]
        return more

    policy.next_round = spy  # type: ignore[method-assign]
    sim.q.push(30.0, EV_BLOCK, Arrival(30.0, 0, [1000.0] * 2))
    sim.q.push(30.0, EV_BLOCK, Arrival(30.0, 1, [1000.0]))
    sim.run_until(70.0)
    assert sim.busy["drp"] == 2 and quotas and all(q == 4.0 for _, q in quotas)


def test_a_stale_submitter_of_a_group_allocated_nothing_waits_for_a_round_that_allocates_it(
        minimal: EnclaveSpec) -> None:
    """A submitter whose ad still shows idle jobs that have since started on reused claims is contacted, finds
    nothing and updates its ad; but a group allocated nothing is skipped (GroupEntry.cpp ``hgq_negotiate_with_all_
    groups``: "skipping, zero slots allocated"), stale or not. Review, stop 53: its stale turn came in round 1.

    Quotas: DRP the whole pool (16), the user group none. DRP's 8 jobs at 10 and 8 at 100, the user's 8 at 30
    and 8 at 60 (100 s each, so the second 8 start on the first 8's claims at about 172, and the user's ad, sent
    when they were submitted, still shows them idle). The cycle at 160: round 1 allocates DRP its 16 and the user
    group nothing, so only DRP has a turn; round 2 (DRP used 8 of 16 and asks for 8) leaves the user group 8, and
    its stale turn comes then."""
    loaded = parse("name: zero\nduration_hours: 1\nprompt: null\nnotebooks: null\n"
                   "user_batch: {bursts_per_day: 0.0001, jobs_per_burst: 1, memory_gib: 1}\n"
                   "drp: {backlog_jobs: 0, jobs_per_hour: 0, mix: [{name: t, weight: 1, memory_gib: 1, "
                   "runtime: {dist: fixed, mean: 1000}}]}\n"
                   "htcondor: {cycle_base_s: 2, cycle_per_submitter_s: 1, cycle_per_autocluster_s: 0.5, "
                   "job_startup_s: 3, reschedule_on_submit: schedd-idle, dedicated_schedds: [drp, user]}\n",
                   "z.yaml", spec=with_shares(minimal, prompt=0.0, drp=1.0, user=0.0, general=0.0))
    sim = make_sim(loaded, policy="quotas")
    drp, user = (sim.pool_acs[p][0] for p in ("drp", "user"))
    for t, ac, n, rt in ((10.0, drp, 8, 1000.0), (30.0, user, 8, 100.0), (60.0, user, 8, 100.0),
                         (100.0, drp, 8, 1000.0)):
        sim.q.push(t, EV_BLOCK, Arrival(t, ac, [rt] * n))
    rounds: list[tuple[float, list[str]]] = []
    add_turns = sim._add_turns

    def spy(t: float, first: bool = True) -> float:
        before = len(sim._turns) if not first else 0
        end = add_turns(t, first)
        rounds.append((sim._cycle_started, [p for p, _ in sim._turns[before:]]))
        return end

    sim._add_turns = spy  # type: ignore[method-assign]
    sim.run_until(200.0)
    assert [r for c, r in rounds if c == 160.0] == [["drp"], ["drp", "user"]]
