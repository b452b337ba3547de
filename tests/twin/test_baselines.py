"""The strongest baselines (issue 23) on hand-computed cases: HTCondor group quotas with preemption, the
prompt reservation, and Kueue-style cohorts; rendered configurations read back.

The enclave is the minimal spec: two batch-only nodes of 8 cores / 32 GiB (16 cores, 64 GiB of batch),
quotas prompt 0.5, drp 0.25, user 0 (max 0.5), general 0 (max 0.5). Matching is instant (a free slot is
filled at once; the policies preempt right after an arrival), so each expected count follows from the
rules alone. DRP jobs: 1 core / 4 GiB, 1,000 s; prompt: 1 core / 2 GiB, 100 s; user: 1 core / 4 GiB.

Group quotas (GROUP_QUOTA_DYNAMIC): prompt 0.5 x 16 = 8 cores, drp 4, user 0. PREEMPTION_REQUIREMENTS
(HTCondor manual, Negotiator, groups and quotas): the claimant's group uses fewer cores than its quota,
the victim's group more than its quota, and they differ. With ALLOW_PSLOT_PREEMPTION at its default, one
preemption vacates one 1-core dynamic slot and one claimant job takes it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from classad2 import ClassAd, ExprTree

from enclave.batch import render
from enclave.spec.models import EnclaveSpec
from enclave.twin.cohorts import Cohorts, kueue_objects, parse_quotas
from enclave.twin.policies import POLICIES, make
from enclave.twin.preempt import PreemptionRule, QuotasPreempt
from enclave.twin.run import simulate, with_changes
from enclave.twin.scenario import load_scenario, parse
from enclave.twin.sim import EV_BLOCK, Policy, Sim
from enclave.twin.workloads import Arrival, Workload, build

from .conftest import SCENARIO_DIR, with_shares

WORLD = """
name: baselines
duration_hours: 1
prompt: {nights: 1, visits_per_night: 1, night_start_h: 5, detectors: 1}
drp: {backlog_jobs: 0, jobs_per_hour: 0,
      mix: [{name: t, weight: 1, memory_gib: 4, runtime: {dist: fixed, mean: 1000}}]}
user_batch: {bursts_per_day: 1, jobs_per_burst: 1}
notebooks: null
htcondor: {matching: instant}
"""


def _world(minimal: EnclaveSpec, policy: str | Policy, drp_gib: int = 4) -> Sim:
    """The minimal enclave with one autocluster per pool and no arrivals of its own (the test submits)."""
    loaded = parse(WORLD.replace("memory_gib: 4", f"memory_gib: {drp_gib}"), "baselines.yaml", spec=minimal)
    wl = build(loaded.scenario, minimal)
    empty = Workload(wl.acs, [], wl.sessions, [], [])
    sim = Sim(loaded, make(policy) if isinstance(policy, str) else policy, audit=True, workload=empty)
    assert [a.pool for a in sim.acs] == ["prompt", "drp", "user"] and sim.total_cap == 16
    return sim


def _submit(sim: Sim, t: float, pool: str, n: int, runtime: float = 1000.0) -> None:
    ac = sim.pool_acs[pool][0]
    sim.q.push(t, EV_BLOCK, Arrival(t, ac, [runtime] * n))


# ---------------------------------------------------------------- quotas-preempt


def test_a_group_below_quota_preempts_surplus_jobs_up_to_its_quota(minimal: EnclaveSpec) -> None:
    sim = _world(minimal, "quotas-preempt")
    _submit(sim, 0.0, "drp", 16)            # DRP fills both slots: 16 cores, 4 of them its quota
    _submit(sim, 10.0, "prompt", 10, 100.0)
    sim.run_until(20.0)
    # Prompt preempts while it uses < 8 cores; DRP stays above its 4 throughout (16 -> 8).
    assert sim.counters.preempted_jobs == 8
    assert sim.counters.preempted_core_s == pytest.approx(8 * 10.0)  # each victim had run 10 s: lost
    assert (sim.busy["prompt"], sim.busy["drp"]) == (8, 8)
    assert (sim.idle["prompt"], sim.idle["drp"]) == (2, 8)  # the victims wait again, from zero
    sim.check()


def test_a_job_the_cycle_did_not_see_preempts_nothing_until_the_next_cycle(minimal: EnclaveSpec) -> None:
    """The negotiator preempts for a job it matches (matchmaker.cpp ``matchmakingAlgorithm``, one request at a time),
    and a cycle matches the jobs idle when it began. Review, stop 53: a DRP job submitted during a cycle had that
    cycle's preemption evict a user job and start nothing in its place.

    Quotas DRP 8 and user 8 of the 16 cores, the negotiator's timer every 60 s (cycle 2 s, 1 s per submitter, 0.5 s
    per autocluster, jobs start 3 s after their turn). The user's 20 jobs at 10: 16 run from the cycle at 60 (the
    user on 16, above its quota of 8: surplus). A DRP job at 121, during the cycle 120-123.5, is no job of that
    cycle; the cycle at 180 sees it and preempts one user job for it (DRP 0 of 8, the user 16 of 8)."""
    loaded = parse("name: pb\nduration_hours: 1\nprompt: null\nnotebooks: null\n"
                   "user_batch: {bursts_per_day: 0.0001, jobs_per_burst: 1, memory_gib: 1}\n"
                   "drp: {backlog_jobs: 0, jobs_per_hour: 0, mix: [{name: t, weight: 1, memory_gib: 1, "
                   "runtime: {dist: fixed, mean: 1000}}]}\n"
                   "htcondor: {cycle_base_s: 2, cycle_per_submitter_s: 1, cycle_per_autocluster_s: 0.5, "
                   "job_startup_s: 3, reschedule_on_submit: never}\n", "p.yaml",
                   spec=with_shares(minimal, prompt=0.0, drp=0.5, user=0.5, general=0.0))
    sim = Sim(loaded, make("quotas-preempt"), audit=True)
    drp, user = (sim.pool_acs[p][0] for p in ("drp", "user"))
    sim.q.push(10.0, EV_BLOCK, Arrival(10.0, user, [3000.0] * 20))
    sim.q.push(121.0, EV_BLOCK, Arrival(121.0, drp, [1000.0]))
    sim.run_until(179.0)
    assert sim.counters.preempted_jobs == 0 and (sim.busy["user"], sim.busy["drp"]) == (16, 0)
    sim.run_until(200.0)
    assert sim.counters.preempted_jobs == 1 and (sim.busy["user"], sim.busy["drp"]) == (15, 1)
    sim.check()


def test_a_group_at_its_quota_preempts_nothing(minimal: EnclaveSpec) -> None:
    sim = _world(minimal, "quotas-preempt")
    _submit(sim, 0.0, "prompt", 8, 5000.0)
    _submit(sim, 1.0, "drp", 16)            # the other 8 cores
    _submit(sim, 10.0, "prompt", 4)
    sim.run_until(20.0)
    # SubmitterGroupResourcesInUse (8) < SubmitterGroupQuota (8) is false.
    assert sim.counters.preempted_jobs == 0
    assert (sim.busy["prompt"], sim.busy["drp"], sim.idle["prompt"]) == (8, 8, 4)


def test_only_jobs_on_surplus_are_victims_and_preemption_stops_at_the_claimants_quota(minimal: EnclaveSpec) -> None:
    sim = _world(minimal, "quotas-preempt")
    _submit(sim, 0.0, "prompt", 8, 5000.0)  # prompt exactly at its quota: not on surplus
    _submit(sim, 1.0, "drp", 2)
    _submit(sim, 2.0, "user", 6)            # user's quota is 0: all 6 on surplus
    _submit(sim, 10.0, "drp", 5)
    sim.run_until(20.0)
    # DRP (2 < 4) preempts two user jobs, then stands at its quota; prompt's jobs are never touched.
    assert sim.counters.preempted_jobs == 2
    assert (sim.busy["prompt"], sim.busy["drp"], sim.busy["user"]) == (8, 4, 4)
    assert sim.idle["drp"] == 3 and sim.idle["user"] == 2


def test_the_rule_is_the_rendered_expression() -> None:
    rule = PreemptionRule()
    assert rule.expr == ExprTree(render.PREEMPTION_REQUIREMENTS)
    assert rule.allows(("group_prompt", 1, 3.0), ("group_drp", 10, 5.0))
    assert not rule.allows(("group_prompt", 3, 3.0), ("group_drp", 10, 5.0))   # claimant at quota
    assert not rule.allows(("group_prompt", 1, 3.0), ("group_drp", 5, 5.0))    # victim within quota
    assert not rule.allows(("group_drp", 1, 3.0), ("group_drp", 10, 5.0))      # same group


def test_quotas_without_preemption_never_preempt(minimal: EnclaveSpec) -> None:
    sim = _world(minimal, "quotas")
    _submit(sim, 0.0, "drp", 16)
    _submit(sim, 10.0, "prompt", 10, 100.0)
    sim.run_until(20.0)
    assert sim.counters.preempted_jobs == 0 and sim.idle["prompt"] == 10


def test_a_preempted_job_retires_for_max_job_retirement_time(minimal: EnclaveSpec) -> None:
    sim = _world(minimal, QuotasPreempt(retirement_s=30.0))
    _submit(sim, 0.0, "drp", 16)
    _submit(sim, 10.0, "prompt", 2, 100.0)
    sim.run_until(39.0)
    assert sim.counters.preempted_jobs == 0 and sim.busy["drp"] == 16   # still retiring
    sim.run_until(45.0)
    # Matched at 10, the victims are vacated at 10 + 30 (they had run 40 s) and prompt starts then.
    assert sim.counters.preempted_jobs == 2
    assert sim.counters.preempted_core_s == pytest.approx(2 * 40.0)
    assert sorted(sim.waits["prompt"]) == [pytest.approx(30.0)] * 2


def test_a_victim_that_finishes_while_retiring_loses_nothing(minimal: EnclaveSpec) -> None:
    sim = _world(minimal, QuotasPreempt(retirement_s=30.0))
    _submit(sim, 0.0, "drp", 16, 20.0)    # every DRP job ends at 20, inside the 10 + 30 grace
    _submit(sim, 10.0, "prompt", 1, 100.0)
    sim.run_until(45.0)
    assert sim.counters.preempted_jobs == 0 and sim.counters.wasted_core_s == 0
    assert sim.waits["prompt"] == [pytest.approx(10.0)]  # the first free core, at 20


@pytest.mark.parametrize(("policy", "preempted"), [("quotas-preempt", 0), ("quotas-preempt-mem", 3), ("quotas-mem", 0)])
def test_memory_weight_makes_a_memory_heavy_group_preemptible(minimal: EnclaveSpec, policy: str,
                                                              preempted: int) -> None:
    # DRP jobs of 1 core / 16 GiB: two fill a 32 GiB slot, so four hold all 64 GiB on 4 cores.
    sim = _world(minimal, policy, drp_gib=16)
    _submit(sim, 0.0, "drp", 4)
    _submit(sim, 10.0, "prompt", 4, 100.0)  # 2 GiB each: no slot has memory left
    sim.run_until(20.0)
    # Cores: DRP uses 4 = its quota (0.25 x 16), not above it: no victim. SLOT_WEIGHT with 4096 MiB per core
    # (minimal: 64 GiB / 16 cores): each DRP job weighs 4, DRP 16 > 4; each preemption frees one dynamic
    # slot for one prompt job, DRP falls 16 -> 12 -> 8 -> 4, and at 4 (not above its quota) it stops.
    assert sim.counters.preempted_jobs == preempted
    assert sim.busy["prompt"] == preempted and sim.busy["drp"] == 4 - preempted


@pytest.mark.parametrize("policy", ["quotas-preempt", "cohorts"])
def test_the_victim_is_the_job_that_started_last(minimal: EnclaveSpec, policy: str) -> None:
    # PREEMPTION_RANK (least TotalJobRuntime first) and Kueue's "most recently admitted" agree.
    sim = _world(minimal, policy)
    _submit(sim, 0.0, "drp", 8)
    _submit(sim, 6.0, "drp", 8)
    _submit(sim, 10.0, "prompt", 1, 100.0)
    sim.run_until(20.0)
    assert sim.counters.preempted_jobs == 1
    assert sim.counters.preempted_core_s == pytest.approx(4.0)  # a job started at 6, not one started at 0


def _no_latency_objective(spec: EnclaveSpec) -> EnclaveSpec:
    """The spec with no latency pool: the rendered GROUP_SORT_EXPR is then HTCondor's default starvation order
    for every group (``render.group_sort_expr``), which the memory-weight case below is about."""
    pools = {n: p.model_copy(update={"latency_objective": None}) for n, p in spec.pools.items()}
    return spec.model_copy(update={"pools": pools})


def _memory_heavy_drp(sim: Sim) -> None:
    _submit(sim, 0.0, "prompt", 7, 5000.0)  # batch-001: 7 cores, 14 GiB
    _submit(sim, 1.0, "drp", 3, 50.0)       # one on batch-001 (1 core, 18 GiB left), two fill batch-002
    _submit(sim, 2.0, "drp", 4)             # no memory left anywhere
    _submit(sim, 10.0, "prompt", 4)
    sim.run_until(60.0)


@pytest.mark.parametrize(("policy", "prompt_busy"), [("quotas", 7), ("quotas-mem", 11)])
def test_memory_weight_serves_the_group_below_its_memory_share_first(minimal: EnclaveSpec, policy: str,
                                                                     prompt_busy: int) -> None:
    sim = _world(_no_latency_objective(minimal), policy, drp_gib=16)
    _memory_heavy_drp(sim)
    # At 51 the three DRP jobs end, batch-001's first; each freed slot goes to the group first in the
    # order (usage / quota, then priority: no pool has a latency objective here), up to what the group
    # quotas allocate it (enclave.twin.groups, GroupEntry.cpp): quotas prompt 0.5 and DRP 0.25 of the pool's
    # slot weight, the root the rest, all of it surplus; each group first min(request, quota), the surplus then
    # by quota.
    # Cores: prompt at 7/8 of its quota, DRP at 2/4 after each end: DRP is more starved every time and
    # takes every freed core and its 16 GiB back; prompt stays at 7.
    # Slot weight (4096 MiB per core: a DRP job weighs 4, a prompt job 1). The pool's weight is summed over
    # every slot ad, as matchmaker.cpp sumSlotWeights does: the running jobs' and each partitionable slot's
    # unclaimed part. After the first end: prompt 7, DRP 8, batch-001's 1 core and 18 GiB weigh 4.5,
    # batch-002's 6 cores 6: 25.5, quotas 12.75 and 6.375; DRP (8/6.375) is over its quota and prompt (7/12.75)
    # comes first, allocated its whole request, 11: it takes batch-001's core. After the second: prompt 8, DRP
    # 4, batch-001's 16 GiB weigh 4, batch-002's 7 cores 7: 23, quotas 11.5 and 5.75; both at 8/11.5 = 4/5.75,
    # the tie goes to prompt's higher priority, still allocated 11, and its 3 remaining jobs fit batch-002
    # (11). DRP, allocated 5.75 + 6.25 = 12, finds no 16 GiB with a core. After the third DRP comes first.
    assert sim.busy["prompt"] == prompt_busy and sim.counters.preempted_jobs == 0


@pytest.mark.parametrize("policy", ["quotas", "quotas-mem"])
def test_a_latency_pool_is_served_first_whatever_the_weight(minimal: EnclaveSpec, policy: str) -> None:
    sim = _world(minimal, policy, drp_gib=16)
    _memory_heavy_drp(sim)
    # The same load with prompt's latency objective: the rendered GROUP_SORT_EXPR puts group_prompt first
    # however starved DRP is. At 51 batch-001's DRP job ends: prompt takes its core (8 running). The next end,
    # on batch-002, frees 7 cores and 16 GiB, and prompt's 3 remaining jobs (2 GiB each) take what the group
    # quotas allocate it (the test above). In cores prompt asks 8 + 3 and DRP 1 + 4: the surplus, 4, covers
    # both remainders (3 + 1: GroupEntry.cpp "Cornucopia"). In slot weight prompt's quota, 11.5 of 23, covers
    # its 11. Either way it takes all 3 (11). The third end goes to DRP.
    assert sim.busy["prompt"] == 11 and sim.counters.preempted_jobs == 0


# ---------------------------------------------------------------- quotas-reserved


def test_prompts_reserved_slot_runs_only_prompt(minimal: EnclaveSpec) -> None:
    sim = _world(minimal, "quotas-reserved")
    # static_labels gives batch-001 to prompt; it keeps that label, batch-002 is shared.
    assert sim.cap["prompt"] == 8 and sim.shared_cap == 8
    _submit(sim, 0.0, "drp", 16)
    _submit(sim, 10.0, "prompt", 10, 100.0)
    sim.run_until(20.0)
    assert sim.busy["drp"] == 8            # START keeps DRP off prompt's slot
    assert sim.busy["prompt"] == 8 and sim.counters.preempted_jobs == 0


# ---------------------------------------------------------------- cohorts


def test_kueue_objects_from_the_spec(minimal: EnclaveSpec) -> None:
    objs = kueue_objects(minimal, 16, 65536)
    kinds = [(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in objs]
    assert kinds == [("kueue.x-k8s.io/v1beta1", "ResourceFlavor", "default-flavor"),
                     ("kueue.x-k8s.io/v1alpha1", "Cohort", "enclave"),
                     *[("kueue.x-k8s.io/v1beta1", "ClusterQueue", p) for p in minimal.pools]]
    cq = {o["metadata"]["name"]: o["spec"] for o in objs if o["kind"] == "ClusterQueue"}
    res = {p: {r["name"]: r for r in s["resourceGroups"][0]["flavors"][0]["resources"]} for p, s in cq.items()}
    # nominal = floor(guaranteed x capacity); borrowingLimit = floor(max x capacity) - nominal, none if max = 1.
    assert res["prompt"]["cpu"] == {"name": "cpu", "nominalQuota": "8"}
    assert res["drp"]["memory"] == {"name": "memory", "nominalQuota": "16384Mi"}
    assert res["user"]["cpu"] == {"name": "cpu", "nominalQuota": "0", "borrowingLimit": "8"}
    assert all(s["cohort"] == "enclave" and s["preemption"]["reclaimWithinCohort"] == "Any" for s in cq.values())
    quotas, total = parse_quotas(list(yaml.safe_load_all(yaml.safe_dump_all(objs))))  # as YAML and back
    # The cohort's own quota is what the pools leave: 16 - 12 cores, 64 - 48 GiB; total = capacity.
    assert total == (16, 65536)
    assert quotas["user"].borrowing == (8.0, 32768.0) and quotas["prompt"].nominal == (8, 32768)


def test_borrowing_stops_at_the_borrowing_limit(minimal: EnclaveSpec) -> None:
    sim = _world(minimal, "cohorts")
    _submit(sim, 0.0, "user", 12)
    sim.run_until(5.0)
    # user: nominal 0, borrowingLimit 8 cores / 32 GiB: 8 jobs of 1 core / 4 GiB, the rest wait.
    assert (sim.busy["user"], sim.idle["user"]) == (8, 4)


def test_reclaim_preempts_borrowers_only_for_the_lenders_nominal_quota(minimal: EnclaveSpec) -> None:
    sim = _world(minimal, "cohorts")
    _submit(sim, 0.0, "drp", 16)            # DRP borrows everything: 16 cores, 64 GiB, nominal 4 / 16 GiB
    _submit(sim, 10.0, "prompt", 10, 100.0)
    sim.run_until(20.0)
    # Prompt fits its nominal (8) but the cohort is full: it preempts DRP (borrowing) one job per job,
    # up to its nominal; the 9th and 10th jobs would exceed it and wait.
    assert sim.counters.preempted_jobs == 8
    assert (sim.busy["prompt"], sim.busy["drp"], sim.idle["prompt"]) == (8, 8, 2)


def test_no_reclaim_while_the_cohort_has_room(minimal: EnclaveSpec) -> None:
    sim = _world(minimal, "cohorts")
    _submit(sim, 0.0, "drp", 12)            # borrowing (12 > 4), but 4 cores stay free
    _submit(sim, 10.0, "prompt", 3, 100.0)
    sim.run_until(20.0)
    assert sim.counters.preempted_jobs == 0
    assert (sim.busy["prompt"], sim.busy["drp"]) == (3, 12)


def test_a_queue_not_borrowing_is_not_a_victim(minimal: EnclaveSpec) -> None:
    sim = _world(minimal, "cohorts")
    _submit(sim, 0.0, "drp", 4)             # DRP at its nominal: not borrowing
    _submit(sim, 1.0, "prompt", 12, 5000.0)  # prompt borrows: 12 > 8
    _submit(sim, 10.0, "drp", 2)
    sim.run_until(20.0)
    # DRP (4 + 1 > 4) no longer fits its nominal: no reclaim; prompt keeps its 12.
    assert sim.counters.preempted_jobs == 0 and sim.busy["prompt"] == 12


def test_cohorts_policy_reads_the_rendered_objects(minimal: EnclaveSpec) -> None:
    sim = _world(minimal, "cohorts")
    assert isinstance(sim.policy, Cohorts)
    assert parse_quotas(sim.policy.objects) == (sim.policy.quotas, sim.policy.total)


# ---------------------------------------------------------------- rendered HTCondor read back


def test_rendered_preemption_is_read_back_and_evaluates(tmp_path: Path, ldf: EnclaveSpec) -> None:
    cm = render.central_manager(ldf, preemption=True)
    path = tmp_path / cm.name
    path.write_text(cm.text)
    got = render.read_back(path, ["PREEMPTION_REQUIREMENTS", "PREEMPTION_RANK", "NEGOTIATOR_CONSIDER_PREEMPTION"],
                           subsystem="NEGOTIATOR")
    assert got["NEGOTIATOR_CONSIDER_PREEMPTION"] == "True"
    req = ExprTree(got["PREEMPTION_REQUIREMENTS"] or "")
    assert req == ExprTree(render.PREEMPTION_REQUIREMENTS)
    # A hand-made claimed slot (DRP at 10 cores over a 4-core quota) and candidate job (prompt, 1 of 3),
    # as the negotiator's attributes (one ad: the expression's references are unscoped).
    pair = ClassAd({"RemoteGroup": "group_drp", "RemoteGroupResourcesInUse": 10, "RemoteGroupQuota": 4.0,
                    "SubmitterGroup": "group_prompt", "SubmitterGroupResourcesInUse": 1, "SubmitterGroupQuota": 3.0})
    assert req.eval(pair) is True
    pair["RemoteGroupResourcesInUse"] = 4          # DRP back within its quota: not preemptible
    assert req.eval(pair) is False
    pair["RemoteGroupResourcesInUse"] = 10
    pair["SubmitterGroup"] = "group_drp"           # a group never preempts itself
    assert req.eval(pair) is False
    rank = ExprTree(got["PREEMPTION_RANK"] or "")
    young = rank.eval(ClassAd({"TotalJobRuntime": 10}))
    old = rank.eval(ClassAd({"TotalJobRuntime": 1000}))
    assert young > old                             # the job that ran least is preempted first
    plain = render.central_manager(ldf)
    assert "PREEMPTION_REQUIREMENTS" not in plain.text


def test_rendered_startd_retires_preempted_jobs_at_once(tmp_path: Path, ldf: EnclaveSpec) -> None:
    """What the quotas-preempt baselines assume of the startd: a job whose claim a preempting claim waits for (the
    startd publishes PreemptingUser then, claim.cpp Claim::publishPreemptingClaim) retires at once; without one,
    for its pool's grace (tests/batch/test_vacate.py holds the drains and relabels)."""
    from tests.batch.test_vacate import drain_slot, job, startd_config

    [path] = render.write([render.execute_node(ldf, "drp", preemption=True)], tmp_path)
    plain = startd_config(path, {})
    slot = drain_slot(plain, int(time.time()) - 60, draining=False)
    retirement = ExprTree(plain["MAXJOBRETIREMENTTIME"] or "")
    assert retirement.eval(slot, job(ldf, "drp")) == render.retirement_seconds(ldf, "drp")
    slot["PreemptingUser"] = "prompt-svc@lsst-dev01.ncsa.illinois.edu"
    assert retirement.eval(slot, job(ldf, "drp")) == 0


def test_rendered_slot_weight_counts_memory_as_cores(tmp_path: Path, ldf: EnclaveSpec) -> None:
    ex = render.execute_node(ldf, "drp", memory_weight=True)
    path = tmp_path / ex.name
    path.write_text(ex.text)
    weight = ExprTree(render.read_back(path, ["SLOT_WEIGHT"], subsystem="STARTD")["SLOT_WEIGHT"] or "")
    # LDF batch nodes: 128 GiB / 24 cores = 5461 MiB per core (floored).
    assert render.memory_per_core_mib(ldf) == 5461
    assert weight.eval(ClassAd({"Cpus": 1, "Memory": 32768})) == pytest.approx(32768 / 5461)
    assert weight.eval(ClassAd({"Cpus": 4, "Memory": 8192})) == 4
    assert "SLOT_WEIGHT" not in render.execute_node(ldf, "drp").text


# ---------------------------------------------------------------- every shipped scenario


NEW = ["quotas-mem", "quotas-preempt", "quotas-preempt-mem", "quotas-reserved", "cohorts"]


def test_the_new_policies_are_registered() -> None:
    assert set(NEW) <= set(POLICIES)


@pytest.mark.parametrize("scenario", sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")))
def test_every_shipped_scenario_runs_briefly_under_each_baseline(scenario: str) -> None:
    loaded = with_changes(load_scenario(scenario), duration_hours=0.25)
    for policy in NEW:
        sim, metrics = simulate(loaded, policy)
        sim.check()
        jobs = metrics["jobs"]
        assert jobs["submitted"] == jobs["finished"] + jobs["running"] + jobs["queued"]
