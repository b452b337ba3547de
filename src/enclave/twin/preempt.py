"""HTCondor configured as an expert would: group quotas with preemption, and a reservation for prompt.

- ``quotas-preempt``: the ``quotas`` pool (one shared pool, GROUP_QUOTA_DYNAMIC = guaranteed share,
  GROUP_ACCEPT_SURPLUS) with the negotiator allowed to preempt. HTCondor manual, "Configuration Macros",
  Negotiator: with NEGOTIATOR_CONSIDER_PREEMPTION True (its default), a job that finds no free slot is matched
  against claimed slots for which PREEMPTION_REQUIREMENTS is true, best PREEMPTION_RANK first, and the
  slot's job is vacated. The rule is ``enclave.batch.render.PREEMPTION_REQUIREMENTS`` (the clause the manual
  gives for pools with groups and quotas), evaluated here with classad2 on a slot ad carrying the running
  group's Remote* attributes and a job ad carrying the submitter group's Submitter* attributes, as the
  negotiator inserts them; ranking follows ``render.PREEMPTION_RANK`` (the victim that ran least first).
  ALLOW_PSLOT_PREEMPTION is left at its default (False): one preemption vacates one dynamic slot, whose
  cores and memory must hold the preempting job, and the preempting job takes it. MaxJobRetirementTime is
  0 (rendered so with ``preemption``): the victim is vacated at once and restarts from zero later (no
  checkpointing), which the twin counts (``moves.preempted_jobs``, ``moves.preempted_core_hours``).
- ``quotas-preempt-mem``: the same, with SLOT_WEIGHT counting memory as cores (``render.slot_weight``), so
  group usage and quotas are in dominant-resource cores: a group holding memory beyond its share is on
  surplus, and preemptible, even while its cores are within quota.
- ``quotas-mem``: that weight without preemption.
- ``quotas-reserved``: the same shared pool, but the startds the rendered layout gives prompt keep prompt's
  label, so the production START (``enclave.batch.policy``) admits only prompt's jobs there — a dedicated
  partitionable-slot reservation for latency work inside one pool. The other startds are shared under
  group quotas, and prompt may use them beyond its reservation too; nothing is preempted.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import NamedTuple

from classad2 import ClassAd, ExprTree

from enclave.batch import policy as batch_policy
from enclave.batch.policy import static_labels
from enclave.batch.render import PREEMPTION_REQUIREMENTS, memory_per_core_mib
from enclave.domain.capacity import StartdKind
from enclave.twin.layout import GroupQuotas, plan_pods
from enclave.twin.scenario import SHARED, BatchLayout
from enclave.twin.sim import Sim, SimStartd


class PreemptionRule:
    """PREEMPTION_REQUIREMENTS as rendered, evaluated with classad2 on the attributes the negotiator provides:
    Remote* of the claimed slot's running group, Submitter* of the candidate job's group. The expression
    references them unscoped, which HTCondor resolves in the slot ad and then in the job ad; classad2 does
    not fall back to the target ad, so both sets are put in one ad (same values, same result)."""

    def __init__(self, text: str = PREEMPTION_REQUIREMENTS) -> None:
        self.expr = ExprTree(text)
        self.evaluations = 0

    def allows(self, submitter: tuple[str, float, float], remote: tuple[str, float, float]) -> bool:
        """``submitter``/``remote``: (accounting group, cores in use, quota in cores)."""
        self.evaluations += 1
        ad = ClassAd({"RemoteGroup": remote[0], "RemoteGroupResourcesInUse": remote[1],
                      "RemoteGroupQuota": remote[2], "SubmitterGroup": submitter[0],
                      "SubmitterGroupResourcesInUse": submitter[1], "SubmitterGroupQuota": submitter[2]})
        return self.expr.eval(ad) is True


def victims_for(sim: Sim, ac: int, pool: str) -> list[tuple[float, int]]:
    """(run so far, job) of every running job of another pool on a slot the job of ``ac`` may use, whose
    dynamic slot could hold it, best PREEMPTION_RANK first (the one that ran least: least work lost)."""
    a = sim.acs[ac]
    out: list[tuple[float, int]] = []
    now = sim.now
    for jid, (s, _, vac, _, _, _, start, _) in sim.running.items():
        v = sim.acs[sim.slot_ac(jid, vac)]
        if (v.pool != pool and s.accepting and v.cpus >= a.cpus and v.memory_mib >= a.memory_mib
                and sim.matcher.matches(ac, s.sig)):
            out.append((now - start, jid))
    out.sort()
    return out


class Retiring(NamedTuple):
    deadline: float
    victim: int
    claimant: int
    """The autocluster whose job takes the slot when the victim has retired."""
    slot: SimStartd


class QuotasPreempt(GroupQuotas):
    name = "quotas-preempt"
    preemption = True
    """False: the same quotas and slot weights, PREEMPTION_REQUIREMENTS left at its default (no preemption)."""
    TICK_S = 1.0
    """How often retirements are checked when ``retirement_s`` > 0 (the granularity of the grace period)."""

    def __init__(self, retirement_s: float = 0.0) -> None:
        super().__init__()
        self.rule = PreemptionRule()
        self.retirement_s = retirement_s
        """MaxJobRetirementTime: a preempted job runs on for up to this long (it may finish), and the job that
        preempted it starts only then. 0 (HTCondor's default, and the rendered ``preemption`` setting):
        vacated at once."""
        self.retiring: list[Retiring] = []
        self.pending: defaultdict[int, int] = defaultdict(int)
        """Per autocluster: its jobs waiting for a victim to retire (already matched). A mapping, not a list:
        memory retries add autoclusters during the run (``Sim._retry_ac``)."""
        self._next_reconcile = 0.0

    def setup(self, sim: Sim) -> None:
        super().setup(sim)
        self.pending = defaultdict(int)

    def claimed(self, sim: Sim, pool: str) -> float:
        """In use, plus the matches waiting for a victim to retire (the negotiator has charged them)."""
        return self.usage(sim, pool) + sum(self.pending[ac] * self.job_weight(sim, ac) for ac in sim.pool_acs[pool])

    def preempt(self, sim: Sim) -> None:
        """After the cycle's free slots are matched: each group below its quota, in the negotiation order, preempts
        for its idle jobs (those the cycle saw) while the rule allows."""
        if not self.preemption:
            return
        idle = [p for p in sim.pools if sim.idle[p]]
        for pool in self.order(sim, idle):
            if self.claimed(sim, pool) >= self.quota(sim, pool):
                continue  # SubmitterGroupResourcesInUse < SubmitterGroupQuota fails for every slot
            for ac in sim.pool_acs[pool]:
                if self._waiting(sim, ac):
                    self._preempt_for(sim, ac, pool)

    def _waiting(self, sim: Sim, ac: int) -> int:
        """Idle jobs of ``ac`` not yet matched to a retiring slot."""
        return sum(b.n - b.pos for b in sim.queues[ac]) - self.pending[ac]

    def _preempt_for(self, sim: Sim, ac: int, pool: str) -> None:
        group = batch_policy.accounting_group(sim.spec, pool)
        refused: set[str] = set()  # a group the rule refused stays refused this cycle: its use only falls
        doomed = {r.victim for r in self.retiring}
        for _, jid in victims_for(sim, ac, pool):
            if self._waiting(sim, ac) <= 0 or self.claimed(sim, pool) >= self.quota(sim, pool):
                return
            rec = sim.running.get(jid)
            if rec is None or jid in doomed:
                continue
            s, vac = rec[0], rec[2]
            victim = sim.acs[vac].pool
            if victim in refused:
                continue
            submitter = (group, float(self.claimed(sim, pool)), self.quota(sim, pool))
            remote = (batch_policy.accounting_group(sim.spec, victim), float(self.usage(sim, victim)),
                      self.quota(sim, victim))
            if not self.rule.allows(submitter, remote):
                refused.add(victim)
            elif self.retirement_s > 0:
                if not sim.claim_budget(ac):
                    return  # as below: no match, no preemption
                self.retiring.append(Retiring(sim.now + self.retirement_s, jid, ac, s))
                self.pending[ac] += 1
            elif sim.preempt([jid], ac, s, 1) == 0:
                return  # the cycle's budget for this autocluster is spent

    def tick(self, sim: Sim) -> float | None:
        """Vacate the victims whose retirement is over (those that finished meanwhile free their slot) and
        start the preempting jobs; the layout's own periodic work keeps its period."""
        if self.retirement_s <= 0:
            return super().tick(sim)
        due = [r for r in self.retiring if r.deadline <= sim.now]
        self.retiring = [r for r in self.retiring if r.deadline > sim.now]
        for r in due:
            self.pending[r.claimant] -= 1
            rec = sim.running.get(r.victim)
            victims = [r.victim] if rec is not None and rec[0] is r.slot else []
            if sim.queues[r.claimant] and sim.startds.get(r.slot.name) is r.slot:
                sim.preempt(victims, r.claimant, r.slot, 1)
        if sim.now >= self._next_reconcile:
            period = super().tick(sim)
            self._next_reconcile = math.inf if period is None else sim.now + period
        return self.TICK_S


class QuotasPreemptMemory(QuotasPreempt):
    """``quotas-preempt`` with SLOT_WEIGHT counting memory as cores (``render.slot_weight``): a group's usage
    and quota are in dominant-resource cores, so a group holding memory beyond its share is on surplus even
    when its cores are not — DRP's 4–32 GiB single-core jobs are, on 5.3 GiB-per-core nodes."""

    name = "quotas-preempt-mem"

    def setup(self, sim: Sim) -> None:
        super().setup(sim)
        self.mib_per_core = memory_per_core_mib(sim.spec)
        self.weights: list[float] = []

    def _weights(self, sim: Sim) -> list[float]:
        """Each autocluster's slot weight; extended as memory retries add autoclusters (``Sim._retry_ac``)."""
        for a in sim.acs[len(self.weights):]:
            self.weights.append(self.slot_weight(sim, a.cpus, a.memory_mib))
        return self.weights

    def used(self, sim: Sim, pool: str) -> float:
        """The accountant charges each match its dynamic slot's SLOT_WEIGHT: a job on a reused, larger claim
        (``Sim.share``) is charged the slot's weight, not its own request's."""
        weights = self._weights(sim)
        own = sum(sim.run_ac[ac] * weights[ac] for ac in sim.pool_acs[pool])
        running = sim.running
        return own + sum(weights[slot] - weights[running[j][2]] for j, slot in sim.share.items()
                         if sim.acs[slot].pool == pool)

    def job_weight(self, sim: Sim, ac: int) -> float:
        return self._weights(sim)[ac]

    def slot_weight(self, sim: Sim, cores: int, mem: int) -> float:
        """``render.slot_weight`` on a slot ad's cores and memory: a job's dynamic slot, or a partitionable slot's
        unclaimed resources."""
        return max(cores, mem / self.mib_per_core)

    def capacity(self, sim: Sim) -> float:
        """The pool's slot weight as the negotiator sums it over every slot ad (matchmaker.cpp
        ``sumSlotWeights``, the base of the group quotas, ``hgq_total_quota``): each running job's dynamic slot
        at its weight, and each partitionable slot's unclaimed cores and memory at theirs. With memory in the
        weight that is more than the machines' own weight once core-heavy and memory-heavy jobs share one (three
        32 GiB jobs and twenty-one 1.5 GiB ones fill 24 cores and 128 GiB, weighing 18 + 21). Summed at each
        allocation."""
        unclaimed = sum(self.slot_weight(sim, s.free_cores, s.free_mem) for s in sim.startds.values() if s.ready)
        return max(1.0, unclaimed + sum(self.used(sim, p) for p in sim.pools))


class QuotasMemory(QuotasPreemptMemory):
    """Group quotas with the memory-aware SLOT_WEIGHT and no preemption: the order in which groups are
    offered slots (after the latency pools, most starved first: usage / quota) then sees DRP's memory, so a
    group holding memory beyond its share is served after those that are not."""

    name = "quotas-mem"
    preemption = False


class QuotasReserved(GroupQuotas):
    """Group quotas on a shared pool, with prompt's slots reserved for prompt by the production START."""

    name = "quotas-reserved"

    def reserved(self, sim: Sim) -> set[str]:
        """The pools with a latency objective: their rendered slots keep their label."""
        return {p for p, s in sim.spec.pools.items() if s.latency_objective is not None}

    def setup(self, sim: Sim) -> None:
        keep = self.reserved(sim)
        for name, pool in static_labels(sim.spec).items():
            n = sim.nodes[name]
            sim.add_startd(n, StartdKind.STANDALONE, pool if pool in keep else SHARED, n.cores, n.mem, n.name)
        if sim.sc.layout.batch == BatchLayout.PODS:
            self.pod_plan = [p if p.pool in keep else p._replace(pool=SHARED) for p in plan_pods(sim, True)]
            self.reconcile(sim)
