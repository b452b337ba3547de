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

from .conftest import make_sim

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


def _rounds_sim(minimal: EnclaveSpec, shares: dict[str, float]) -> Sim:
    """The minimal pool's two empty 8-core, 32 GiB slots under ``quotas`` with these dynamic quotas; DRP's jobs take
    1 core and 1 GiB, the user group's 40 GiB, which no slot holds. Both submit at 30; the timer's cycle at 60
    sees them."""
    pools = {name: p.model_copy(update={"guaranteed_share": shares[name]}) for name, p in minimal.pools.items()}
    loaded = parse("name: rounds\nduration_hours: 1\nprompt: null\nnotebooks: null\n"
                   "user_batch: {bursts_per_day: 0.0001, jobs_per_burst: 1, memory_gib: 40}\n"
                   "drp: {backlog_jobs: 0, jobs_per_hour: 0, "
                   "mix: [{name: t, weight: 1, memory_gib: 1, runtime: {dist: fixed, mean: 1000}}]}\n"
                   "htcondor: {cycle_base_s: 2, cycle_per_submitter_s: 1, cycle_per_autocluster_s: 0.5, "
                   "job_startup_s: 3, reschedule_on_submit: never}\n", "rounds.yaml",
                   spec=minimal.model_copy(update={"pools": pools}))
    sim = make_sim(loaded, policy="quotas")
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
    unasked) = 12, the user group its 4, which it cannot use. DRP's 12 jobs fill the first slot (8) and take 4
    of the second, smallest first. Round 2: the user group asks for what it uses (0), DRP for its 20 again, 16 in
    all; but both slots were matched this cycle and are out of its list (matchmaker.cpp ``negotiate``, "2g"),
    so DRP runs 12 until the next cycle, which gives it the other 4: 16."""
    sim = _rounds_sim(minimal, dict.fromkeys(minimal.pools, 0.25))
    sim.q.push(30.0, EV_BLOCK, Arrival(30.0, 0, [1000.0] * 20))
    sim.q.push(30.0, EV_BLOCK, Arrival(30.0, 1, [1000.0] * 4))
    sim.run_until(100.0)
    assert sim.cycles == 2 and sim.busy["drp"] == 12
    sim.run_until(200.0)  # the next cycles
    assert sim.busy["drp"] == 16
