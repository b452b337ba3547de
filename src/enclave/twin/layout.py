"""Where the twin's capacity starts, and the two policies that keep it there (static, quotas).

The start is the enclave's rendered layout: every batch-only node runs one standalone startd in the pool
its rendered execute config names (``enclave.batch.policy.static_labels``, the rule the broker also starts
from). In the ``pods`` layout, HTCondor worker pods also hold ``pod_batch_share`` of the commons; the
rendered worker-pod config takes its pool from the pod's environment (``ENCLAVE_POOL``, set by DeployPods),
so the pods are given their pools by the same rule (``enclave.batch.policy.apportion``) and named by the
broker's (``enclave.broker.naming.pod_names``).

- ``static``: the seed's starting point — that layout, never moved.
- ``quotas``: the same startds in one shared HTCondor pool, no preemption. Its slots carry no pool label
  (``SHARED``): that configuration is a counterfactual the renderer does not produce.

Every HTCondor policy (``static``, ``quotas``, ``quotas-*``, ``broker`` and ``service``; not ``cohorts``, which admits
through Kueue) negotiates under the group quotas the rendered central manager sets for every layout
(``GroupQuotas``: GROUP_QUOTA_DYNAMIC = guaranteed share, surplus shared by quota, GROUP_ACCEPT_SURPLUS;
``groups``). On labelled slots they bind only where a pool's jobs need more than its group is allocated.

Both, and every policy built on them (``quotas-*``, ``broker``), negotiate in the order the rendered central
manager's GROUP_SORT_EXPR gives (``group_order``): latency pools first, the others most starved (usage / quota)
first, as HTCondor's default group sort does. Labelled slots make the order matter for timing only (each
submitter's matches are claimed at the end of its turn, ``Sim._negotiate``); shared slots also for who gets them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from enclave.batch.policy import apportion, static_labels
from enclave.broker.naming import pod_names
from enclave.domain.capacity import StartdKind
from enclave.errors import InputError, Problem
from enclave.spec.models import NodeRole
from enclave.twin import groups
from enclave.twin.scenario import SHARED, BatchLayout
from enclave.twin.sim import Policy, Sim, SimNode

UNLIMITED = 1 << 40


class PlannedPod(NamedTuple):
    node: str
    pool: str
    name: str
    cores: int
    mem: int


def pod_slots(sim: Sim) -> list[tuple[str, int, int]]:
    """(node, cores, MiB) of the pods layout's pods: ``pod_batch_share`` of the commons' allocatable cores,
    packed node after node so that whole nodes stay free for notebooks."""
    lay = sim.sc.layout
    workers = sorted((n for n in sim.nodes.values() if n.role == NodeRole.WORKER), key=lambda n: n.name)
    slots: list[tuple[str, int, int]] = []
    for n in workers:
        alloc_cpu = int(n.cores - n.svc_cpu)
        alloc_mem = n.mem - n.svc_mem
        size = lay.pod_cores or alloc_cpu
        if size <= 0 or size > alloc_cpu:
            continue
        mem = alloc_mem if size == alloc_cpu else int(alloc_mem * size / alloc_cpu)
        slots += [(n.name, size, mem)] * (alloc_cpu // size)
    target = lay.pod_batch_share * sum(int(n.cores - n.svc_cpu) for n in workers)
    chosen: list[tuple[str, int, int]] = []
    acc = 0
    for s in slots:
        if acc + s[1] > target + 1e-9:
            break
        chosen.append(s)
        acc += s[1]
    return chosen


def plan_pods(sim: Sim, labelled: bool = True) -> list[PlannedPod]:
    """The pods layout's worker pods, named as the broker names pods, in pools by guaranteed share."""
    slots = pod_slots(sim)
    per_node: dict[str, int] = {}
    for node, _, _ in slots:
        per_node[node] = per_node.get(node, 0) + 1
    names = [name for node, k in per_node.items() for name in pod_names(node, k, sim.startds)]
    pools = apportion(names, sim.spec) if labelled else dict.fromkeys(names, SHARED)
    return [PlannedPod(node, pools[name], name, cores, mem)
            for (node, cores, mem), name in zip(slots, names, strict=True)]


def group_order(sim: Sim, pools: list[str], used: Callable[[Sim, str], float],
                quota: Callable[[Sim, str], float]) -> list[str]:
    """``pools`` in the order the rendered GROUP_SORT_EXPR sorts their groups (``enclave.batch.render.
    group_sort_expr``; ``tests/twin/test_layout.py`` evaluates that expression with classad2 and compares):
    pools with a latency objective first, then the others; within each, the smallest usage / quota first, a
    pool without a quota last. Ties, which HTCondor leaves to std::sort, go to the higher priority."""
    spec = sim.spec.pools

    def key(p: str) -> tuple[bool, float, int]:
        q = quota(sim, p)
        return spec[p].latency_objective is None, used(sim, p) / q if q > 0 else math.inf, -spec[p].priority

    return sorted(pools, key=key)


class LayoutPolicy:
    """Starts from the rendered layout and keeps its planned pods deployed; the negotiator's defaults."""

    name = "layout"
    labelled = True
    """Startds carry their pool label; False: all are shared and group quotas arbitrate."""
    limited = False
    """Whether ``admit`` may refuse (group quotas); if not, the engine skips the call in its hot loop."""
    claims_limited = True
    """Whether a reused claim needs ``admit`` too (``Policy.claims_limited``)."""
    charges_slots = False
    """Whether a match is charged its partitionable slot's whole weight (``Policy.charges_slots``)."""
    rejected: list[str] | None = None
    """Actions a backend refused; None: the policy takes no actions."""

    def __init__(self) -> None:
        self.pod_plan: list[PlannedPod] = []
        """The HTCondor pods this policy keeps deployed."""

    def setup(self, sim: Sim) -> None:
        for name, pool in static_labels(sim.spec).items():
            n = sim.nodes[name]
            s = sim.add_startd(n, StartdKind.STANDALONE, pool if self.labelled else SHARED, n.cores, n.mem, n.name)
            # The rendered label was never moved: the startd publishes the rendered EnclavePoolSince default, 0
            # (batch/render.py), which the broker reads as out of cooldown, as it does on the live pool.
            s.since = -math.inf
        if sim.sc.layout.batch == BatchLayout.PODS:
            self.pod_plan = plan_pods(sim, self.labelled)
            self.reconcile(sim)

    def reconcile(self, sim: Sim) -> None:
        """Keep the planned HTCondor pods deployed (a Deployment's replicas): redeploy what is missing."""
        by_node: dict[tuple[str, str, int, int], list[str]] = {}
        for node, pool, name, cores, mem in self.pod_plan:
            if name not in sim.startds:
                by_node.setdefault((node, pool, cores, mem), []).append(name)
        for (node, pool, cores, mem), names in by_node.items():
            n = sim.nodes[node]
            if n.role == NodeRole.WORKER and n.k8s_free()[0] >= cores:
                sim.deploy_pods(node, pool, tuple(names), cores, mem, move=False)

    def order(self, sim: Sim, pools: list[str]) -> list[str]:
        """Negotiation order among ``pools`` (those with idle jobs): the rendered GROUP_SORT_EXPR's."""
        return group_order(sim, pools, self.usage, self.quota)

    def used(self, sim: Sim, pool: str) -> float:
        """GroupResourcesInUse: the group's slot weight in use (SLOT_WEIGHT = Cpus, HTCondor's default)."""
        return sim.busy[pool]

    def usage(self, sim: Sim, pool: str) -> float:
        """The group's usage as the accountant has it: ``used``, plus what this cycle's matches were charged
        beyond it (``GroupQuotas``)."""
        return self.used(sim, pool)

    def slot_weight(self, sim: Sim, cores: int, mem: int) -> float:
        """SLOT_WEIGHT of a slot ad with ``cores`` and ``mem`` MiB (HTCondor's default, ``Cpus``): its cores."""
        return cores

    def charge(self, sim: Sim, pool: str, extra: float) -> None:
        """Nothing is charged beyond the jobs' weight (``GroupQuotas`` overrides)."""

    def quota(self, sim: Sim, pool: str) -> float:
        """GroupQuota: GROUP_QUOTA_DYNAMIC (the guaranteed share, as rendered) of the pool's cores now."""
        return sim.spec.pools[pool].guaranteed_share * max(1, sim.total_cap)

    def admit(self, sim: Sim, pool: str) -> int:
        return UNLIMITED

    def cycle_start(self, sim: Sim) -> None:
        """A negotiation cycle begins (the submitter ads are read)."""

    def headroom(self, sim: Sim, pool: str) -> float:
        return self.admit(sim, pool)

    def job_weight(self, sim: Sim, ac: int) -> float:
        """An autocluster's job's slot weight: its cores (SLOT_WEIGHT = Cpus, HTCondor's default)."""
        return sim.acs[ac].cpus

    def submitter_request(self, sim: Sim, pool: str) -> float:
        """WeightedRunningJobs + WeightedIdleJobs as the schedd counts them (schedd.cpp, htcondor/htcondor
        7491a14): a running job weighs its claimed slot's SLOT_WEIGHT (``calcSlotWeight``: ``used``), an idle one
        its request's weight (SCHEDD_USE_SLOT_WEIGHT, default true; with no SCHEDD_SLOT_WEIGHT, SLOT_WEIGHT
        evaluated on RequestCpus and RequestMemory, ``guessJobSlotWeight``: ``job_weight``), truncated to a whole
        number per job (``count_a_job``: ``int job_idle_weight = job_weight * job_idle``)."""
        idle = sum(int(self.job_weight(sim, ac)) * sum(b.n - b.pos for b in sim.queues[ac])
                   for ac in sim.pool_acs[pool]) if sim.idle[pool] else 0
        return self.used(sim, pool) + idle

    def negotiates(self, sim: Sim, pool: str) -> bool:
        return True

    def next_round(self, sim: Sim) -> bool:
        """The cycle's turns are over: whether the groups negotiate again in the same cycle."""
        return False

    def tick(self, sim: Sim) -> float | None:
        if self.pod_plan:
            self.reconcile(sim)
            return sim.sc.timing.reconcile_s
        return None

    def on_repair(self, sim: Sim, node: SimNode) -> None:
        if self.pod_plan:
            self.reconcile(sim)




class GroupQuotas(LayoutPolicy):
    """HTCondor's hierarchical group quotas as the rendered central manager sets them for every layout
    (``render.central_manager``), here over one shared pool (``labelled`` False; ``Static`` and the broker
    keep the pools' labels under the same quotas; ``enclave.twin.groups``): each cycle the
    negotiator allocates every group the smaller of its demand and its quota, shares the surplus in proportion to
    quota, and lets each group match up to ``max(allocated, quota)`` less its usage, in up to three rounds. The
    spec's ``max_share`` has no HTCondor counterpart here (GROUP_ACCEPT_SURPLUS has no ceiling), so it binds
    nothing. Until stop 45 the twin capped each group at its ``max_share`` instead, which no HTCondor setting
    does. A match is charged its partitionable slot's whole unclaimed weight (``Sim._claim_slot``), and the
    accountant counts that charge in the group's usage until the next cycle (``overcharge``). Under instant
    matching there are no cycles: each job is charged its weight, the allocation is made again whenever the
    demand or the usage has changed, with no later rounds."""

    name = "quotas"
    labelled = False
    limited = True
    claims_limited = False
    charges_slots = True

    def __init__(self) -> None:
        super().__init__()
        self.overcharge: dict[str, float] = {}
        """Per group, what this cycle's matches were charged beyond their jobs' weight: the accountant adds
        the matched partitionable slot's weight (Accountant.cpp ``AddMatch``) until the next cycle's
        ``CheckMatches`` counts the dynamic slots instead."""
        self.requested: dict[str, float] = {}
        self.allocated: dict[str, float] = {}
        self.round = 0
        self._quotas: tuple[dict[str, float], float] | None = None
        self._assigned_of = -1.0
        self._allocated_for: tuple[int, int, int] | None = None

    def quota(self, sim: Sim, pool: str) -> float:
        """GroupQuota: GROUP_QUOTA_DYNAMIC (the guaranteed share, as rendered) of the pool's slot weight, as the
        cycle began (the negotiator assigns the quotas once per cycle, ``hgq_prepare_for_matchmaking``)."""
        if self._quotas is None:
            self._quotas = self._assign(sim)
        return self._quotas[0][pool]

    def _assign(self, sim: Sim) -> tuple[dict[str, float], float]:
        total = self.capacity(sim)
        if self._quotas is None or total != self._assigned_of:
            self._assigned_of = total
            return groups.quotas({p: sim.spec.pools[p].guaranteed_share for p in sim.pools}, total)
        return self._quotas

    def limit(self, sim: Sim, pool: str) -> float:
        """What the group may hold this round, in slot weight: ``max(allocated, quota)``, or nothing when it was
        allocated nothing (``hgq_negotiate_with_all_groups``: "skipping, zero slots allocated"). The negotiator
        takes it as a whole number (GroupEntry.h: the callback's ``int limit``; matchmaker.cpp passes ``int
        slots``), so a group with less than one unit left may not round a match up."""
        if sim.instant:
            self._allocate_now(sim)
        allocated = self.allocated.get(pool, 0.0)
        if allocated <= 0:
            return 0.0
        limit = max(allocated, self.quota(sim, pool))
        return limit if sim.instant else float(int(limit))

    def admit(self, sim: Sim, pool: str) -> int:
        return int(self.headroom(sim, pool))

    def headroom(self, sim: Sim, pool: str) -> float:
        """The group's limit less its usage, in slot weight."""
        return self.limit(sim, pool) - self.usage(sim, pool)

    def usage(self, sim: Sim, pool: str) -> float:
        return self.used(sim, pool) + self.overcharge.get(pool, 0.0)

    def charge(self, sim: Sim, pool: str, extra: float) -> None:
        self.overcharge[pool] = self.overcharge.get(pool, 0.0) + extra

    def negotiates(self, sim: Sim, pool: str) -> bool:
        """A group allocated nothing gets no turn ("skipping, zero slots allocated")."""
        return self.allocated.get(pool, 0.0) > 0

    def cycle_start(self, sim: Sim) -> None:
        self.round = 1
        self.overcharge = {}
        # Once a cycle (GroupEntry.cpp ``hgq_prepare_for_matchmaking`` → ``hgq_assign_quotas``): the allocation
        # rounds that follow share out the same quotas (``hgq_fairshare`` alone; review, stop 53: they were assigned
        # again from the weights a round's matches changed).
        self._quotas = self._assign(sim)
        self._allocate(sim, self._demand(sim))

    def next_round(self, sim: Sim) -> bool:
        if self.round >= groups.MAX_ALLOCATION_ROUNDS:
            return False
        usage = {p: self.usage(sim, p) for p in sim.pools}
        requested = groups.next_requests(self.requested, self.allocated, usage)
        if requested is None:
            return False
        self.round += 1
        self._allocate(sim, requested)
        return True

    def _allocate_now(self, sim: Sim) -> None:
        """Instant matching: allocate again only when the idle jobs, the busy cores or the pool moved."""
        key = (sim.n_idle, sum(sim.busy.values()), sim.total_cap)
        if key != self._allocated_for:
            self._allocated_for = key
            self._quotas = self._assign(sim)
            self._allocate(sim, self._demand(sim))

    def _demand(self, sim: Sim) -> dict[str, float]:
        """Each group's request: its submitters' WeightedRunningJobs + WeightedIdleJobs (NEGOTIATOR_USE_WEIGHTED_DEMAND,
        True by default) as their last ads give them (``Sim.ad_requested``), read at the cycle's start; with no
        schedds modelled (instant matching, or none asking for cycles), as they are now."""
        if sim.schedd_timeouts:
            return dict(sim.ad_requested)
        return {p: self.submitter_request(sim, p) for p in sim.pools}

    def _allocate(self, sim: Sim, requested: dict[str, float]) -> None:
        if self._quotas is None:
            self._quotas = self._assign(sim)
        each, root = self._quotas
        self.requested = requested
        self.allocated = groups.allocate(each, requested, root)

    def capacity(self, sim: Sim) -> float:
        """The pool's total slot weight (the quotas' base, ``hgq_total_quota``): its cores."""
        return max(1, sim.total_cap)


class Static(GroupQuotas):
    """The rendered layout, never moved: each pool's startds keep their label, under the same group quotas."""

    name = "static"
    labelled = True


FIXED: dict[str, Callable[[], Policy]] = {"static": Static, "quotas": GroupQuotas}
"""The policies that make no moves of their own: a twin driven from outside (the broker service) uses one."""


def fixed(name: str) -> Policy:
    factory = FIXED.get(name)
    if factory is None:
        raise InputError([Problem(f"policy {name}", "not a fixed-layout policy",
                                  f"use one of: {', '.join(FIXED)} (whoever drives this twin moves capacity)")])
    return factory()
