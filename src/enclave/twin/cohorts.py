"""Kueue-style cohorts on the enclave's nodes: one ClusterQueue per pool, all in one cohort.

Rendered from the spec as the objects a site would apply (``kueue_objects``) and simulated from those same
objects (``Cohorts`` parses them back), after Kueue's documentation (kubernetes-sigs/kueue,
site/content/en/docs/concepts/): cluster_queue.md, cohort.md, preemption.md, fair_sharing.md.

- **nominalQuota** per pool, for cpu *and* memory (flavor ``default-flavor``): the pool's guaranteed share
  of the batch cores and memory. Kueue quotas are absolute, so they are fixed when the twin starts (a node
  failure lowers capacity, not quota). The shares the pools leave unassigned are the Cohort's own
  ``nominalQuota`` (cohort.md: "additional resources on top of those defined by ClusterQueues", a shared
  pool every member may borrow from).
- **borrowingLimit** = (max_share - guaranteed_share) of capacity, omitted where max_share is 1
  (cluster_queue.md: empty means the queue may borrow up to the sum of the cohort's quotas).
  **lendingLimit** is omitted: a queue lends all its unused quota (and takes it back by preemption).
- **Admission**: a job is admitted if its queue's usage plus its request stays within nominal +
  borrowingLimit and the cohort still has the request unused, for each resource.
- **Preemption** ``reclaimWithinCohort: Any``: a pending job that fits within its queue's *nominal* quota
  but not in what the cohort has free preempts jobs of queues that are borrowing (using more than their
  nominal quota), preferring (cluster_queue.md) queues that borrow, lowest priority, most recently admitted;
  a queue stops being a victim once it no longer borrows. ``withinClusterQueue: LowerPriority`` is rendered
  but never acts here: every pool's jobs share one priority.
- **Fair sharing** (fair_sharing.md), weight 1 for every queue: queues are offered capacity in order of
  their dominant resource share of borrowed quota divided by weight, lowest first.

What is not Kueue here: jobs are matched onto the same HTCondor-like partitionable slots and at the pace
the scenario's ``htcondor:`` model sets (cycles, claim reuse); only the admission and preemption rules are
Kueue's. A job is admitted against quota with its own cores and memory; ``admit`` (cores only) bounds
memory with the pool's largest memory per core among its queued jobs, so it never admits beyond quota.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from enclave.domain.capacity import StartdKind
from enclave.spec.models import EnclaveSpec
from enclave.twin.layout import LayoutPolicy
from enclave.twin.sim import Sim

API = "kueue.x-k8s.io/v1beta1"
COHORT_API = "kueue.x-k8s.io/v1alpha1"  # cohort.md: the Cohort object is v1alpha1, ClusterQueue v1beta1
FLAVOR = "default-flavor"
COHORT = "enclave"
RESOURCES = ("cpu", "memory")


def _qty(resource: str, amount: int) -> str:
    return f"{amount}Mi" if resource == "memory" else str(amount)


def _parse_qty(text: str) -> int:
    return int(text[:-2]) if text.endswith("Mi") else int(text)


def _quota_block(amounts: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    """``resourceGroups`` with one flavor; ``amounts``: resource → {field: amount}."""
    resources = [{"name": r, **{k: _qty(r, v) for k, v in amounts[r].items()}} for r in RESOURCES]
    return [{"coveredResources": list(RESOURCES), "flavors": [{"name": FLAVOR, "resources": resources}]}]


def kueue_objects(spec: EnclaveSpec, cores: int, memory_mib: int) -> list[dict[str, Any]]:
    """The ResourceFlavor, Cohort and one ClusterQueue per pool for ``cores`` and ``memory_mib`` of batch."""
    total = {"cpu": cores, "memory": memory_mib}
    objects: list[dict[str, Any]] = [{"apiVersion": API, "kind": "ResourceFlavor", "metadata": {"name": FLAVOR}}]
    assigned = dict.fromkeys(RESOURCES, 0)
    queues = []
    for name, pool in spec.pools.items():
        amounts: dict[str, dict[str, int]] = {}
        for r in RESOURCES:
            nominal = math.floor(pool.guaranteed_share * total[r])
            assigned[r] += nominal
            amounts[r] = {"nominalQuota": nominal}
            if pool.max_share < 1:
                amounts[r]["borrowingLimit"] = max(0, math.floor(pool.max_share * total[r]) - nominal)
        queues.append({"apiVersion": API, "kind": "ClusterQueue", "metadata": {"name": name},
                       "spec": {"cohort": COHORT, "namespaceSelector": {},
                                "resourceGroups": _quota_block(amounts),
                                "preemption": {"reclaimWithinCohort": "Any", "withinClusterQueue": "LowerPriority"},
                                "fairSharing": {"weight": "1"}}})
    spare = {r: {"nominalQuota": max(0, total[r] - assigned[r])} for r in RESOURCES}
    objects.append({"apiVersion": COHORT_API, "kind": "Cohort", "metadata": {"name": COHORT},
                    "spec": {"resourceGroups": _quota_block(spare)}})
    return objects + queues


class Quota(NamedTuple):
    nominal: tuple[int, int]
    """(cores, MiB)"""
    borrowing: tuple[float, float]
    """How far beyond nominal the queue may go (inf: no borrowingLimit)."""


def parse_quotas(objects: list[dict[str, Any]]) -> tuple[dict[str, Quota], tuple[int, int]]:
    """Per ClusterQueue its quota, and the cohort's total (queues' nominal + the Cohort's own)."""
    out: dict[str, Quota] = {}
    total = [0, 0]
    for obj in objects:
        if obj["kind"] not in ("ClusterQueue", "Cohort"):
            continue
        res = {r["name"]: r for r in obj["spec"]["resourceGroups"][0]["flavors"][0]["resources"]}
        nominal = tuple(_parse_qty(res[r]["nominalQuota"]) for r in RESOURCES)
        total = [t + n for t, n in zip(total, nominal, strict=True)]
        if obj["kind"] == "ClusterQueue":
            borrow = tuple(float(_parse_qty(res[r]["borrowingLimit"])) if "borrowingLimit" in res[r] else math.inf
                           for r in RESOURCES)
            out[obj["metadata"]["name"]] = Quota((nominal[0], nominal[1]), (borrow[0], borrow[1]))
    return out, (total[0], total[1])


def usage(sim: Sim, pool: str) -> tuple[int, int]:
    """Cores and MiB the pool's running jobs hold (admitted workloads)."""
    mem = sum(sim.run_ac[ac] * sim.acs[ac].memory_mib for ac in sim.pool_acs[pool])
    return sim.busy[pool], mem


class Cohorts(LayoutPolicy):
    name = "cohorts"
    labelled = False
    limited = True

    def __init__(self) -> None:
        super().__init__()
        self.objects: list[dict[str, Any]] = []
        self.quotas: dict[str, Quota] = {}
        self.total = (0, 0)

    def setup(self, sim: Sim) -> None:
        super().setup(sim)
        # The batch capacity the site has (pods still starting included): quota is set once, not tracked.
        cores = sum(s.cores for s in sim.startds.values() if s.kind != StartdKind.NODE)
        mem = sum(s.mem for s in sim.startds.values() if s.kind != StartdKind.NODE)
        self.objects = kueue_objects(sim.spec, cores, mem)
        self.quotas, self.total = parse_quotas(self.objects)

    def room(self, sim: Sim, pool: str) -> tuple[float, float]:
        """Cores and MiB ``pool`` may still be admitted: its own limit and what the cohort has unused."""
        q = self.quotas[pool]
        use = usage(sim, pool)
        cohort_used = [0, 0]
        for p in sim.pools:
            u = usage(sim, p)
            cohort_used[0] += u[0]
            cohort_used[1] += u[1]
        return tuple(min(q.nominal[i] + q.borrowing[i] - use[i], self.total[i] - cohort_used[i])
                     for i in range(2))  # type: ignore[return-value]

    def admit(self, sim: Sim, pool: str) -> int:
        cpu, mem = self.room(sim, pool)
        per_core = max((sim.acs[ac].memory_mib / sim.acs[ac].cpus for ac in sim.pool_acs[pool] if sim.queues[ac]),
                       default=1.0)
        return int(min(cpu, mem / per_core))

    def share(self, sim: Sim, pool: str) -> float:
        """Fair sharing: dominant share of the cohort's quota borrowed beyond nominal, over weight (1)."""
        q = self.quotas[pool]
        use = usage(sim, pool)
        return max(max(0, use[i] - q.nominal[i]) / max(1, self.total[i]) for i in range(2))

    def order(self, sim: Sim, pools: list[str]) -> list[str]:
        return sorted(pools, key=lambda p: (self.share(sim, p), -sim.spec.pools[p].priority))

    def borrowing(self, sim: Sim, pool: str) -> bool:
        q = self.quotas[pool]
        use = usage(sim, pool)
        return use[0] > q.nominal[0] or use[1] > q.nominal[1]

    def preempt(self, sim: Sim) -> None:
        """reclaimWithinCohort: Any, for every queue with pending jobs, in fair-sharing order."""
        for pool in self.order(sim, [p for p in sim.pools if sim.idle[p]]):
            for ac in sim.pool_acs[pool]:
                if sim.queues[ac]:
                    self._reclaim(sim, ac, pool)

    def _fits_nominal(self, sim: Sim, ac: int, pool: str) -> bool:
        a = sim.acs[ac]
        use = usage(sim, pool)
        q = self.quotas[pool].nominal
        return use[0] + a.cpus <= q[0] and use[1] + a.memory_mib <= q[1]

    def _admissible(self, sim: Sim, ac: int, pool: str) -> bool:
        a = sim.acs[ac]
        cpu, mem = self.room(sim, pool)
        return cpu >= a.cpus and mem >= a.memory_mib

    def _reclaim(self, sim: Sim, ac: int, pool: str) -> None:
        a = sim.acs[ac]
        candidates = []
        for jid, (s, _, vac, _, _, _, start, _) in sim.running.items():
            v = sim.acs[sim.slot_ac(jid, vac)]
            if (v.pool != pool and s.accepting and v.cpus >= a.cpus and v.memory_mib >= a.memory_mib
                    and sim.matcher.matches(ac, s.sig)):
                # Lowest priority first, then the most recently admitted.
                candidates.append((sim.spec.pools[v.pool].priority, sim.now - start, jid))
        candidates.sort()
        for _, _, jid in candidates:
            if not sim.queues[ac] or not self._fits_nominal(sim, ac, pool):
                return
            if self._admissible(sim, ac, pool):
                return  # quota is free: the job waits for a slot, Kueue preempts nothing for it
            rec = sim.running.get(jid)
            if rec is None or not self.borrowing(sim, sim.acs[rec[2]].pool):
                continue
            if sim.preempt([jid], ac, rec[0], 1) == 0:
                return
