"""Capacity policies the twin compares, all behind one small interface.

A policy decides three things: how capacity is laid out at the start (``setup``), in which order pools
are offered a free slot and how many more cores a pool may take (``order``/``admit`` — the negotiator's
view), and what it does periodically (``tick``). The broker policy does its periodic work only through
the Backend protocol (observe → decide → apply), exactly as it would against a live cluster.

- ``static``: the seed's starting point — nodes (or HTCondor pods) fixed per pool by guaranteed share.
- ``quotas``: one shared HTCondor pool with hierarchical group quotas (GROUP_QUOTA_DYNAMIC = guaranteed
  share) and surplus sharing up to the max share (GROUP_ACCEPT_SURPLUS), no preemption; the negotiator
  serves the most starved group first (usage / quota), as HTCondor's default group sort does.
- ``broker``: the static layout, then ``enclave.broker.decide`` every broker cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from enclave.domain.capacity import Action, StartdKind
from enclave.errors import EnclaveError, InputError, Problem
from enclave.spec.models import EnclaveSpec, NodeRole
from enclave.twin.match import SHARED
from enclave.twin.scenario import BatchLayout

if TYPE_CHECKING:
    from enclave.twin.sim import Sim, SimNode

UNLIMITED = 1 << 40


def shares(spec: EnclaveSpec) -> dict[str, float]:
    """Guaranteed shares normalised to sum to 1 (equal shares if none is guaranteed)."""
    g = {p: pool.guaranteed_share for p, pool in spec.pools.items()}
    total = sum(g.values())
    return {p: v / total for p, v in g.items()} if total > 0 else {p: 1 / len(g) for p in g}


def split(units: int, weights: dict[str, float]) -> dict[str, int]:
    """Integer apportionment by largest remainder; ties go to the earlier pool (spec order)."""
    raw = {p: units * w for p, w in weights.items()}
    out = {p: int(v) for p, v in raw.items()}
    rest = units - sum(out.values())
    for p in sorted(raw, key=lambda p: (-(raw[p] - out[p]), list(raw).index(p)))[:rest]:
        out[p] += 1
    return out


class Policy:
    name = "policy"
    labelled = True
    """Startds carry one pool label each; False: all are shared and group quotas arbitrate."""
    limited = False
    """Whether ``admit`` may refuse (group quotas); if not, the engine skips the call in its hot loop."""

    def __init__(self) -> None:
        self.pod_plan: list[tuple[str, str, str, int, int]] = []
        """(node, pool, pod name, cores, MiB) of the HTCondor pods this policy keeps deployed."""

    def default_label(self, sim: Sim) -> str:
        return sim.spec.batch.default_pool if self.labelled else SHARED

    def setup(self, sim: Sim) -> None:
        spec = sim.spec
        w = shares(spec)
        batch_nodes = sorted((n for n in sim.nodes.values() if n.role == NodeRole.BATCH_ONLY), key=lambda n: n.name)
        labels = self._labels(split(len(batch_nodes), w))
        for n, pool in zip(batch_nodes, labels, strict=True):
            sim.add_startd(n, StartdKind.STANDALONE, pool, n.cores, n.mem, n.name)
        if sim.sc.layout.batch == BatchLayout.PODS:
            self.pod_plan = plan_pods(sim, w, self.labelled)
            self.reconcile(sim)

    def _labels(self, counts: dict[str, int]) -> list[str]:
        if not self.labelled:
            return [SHARED] * sum(counts.values())
        # Interleave pools so that a failure storm in one rack of consecutive names hits every pool alike.
        out: list[str] = []
        left = dict(counts)
        while any(left.values()):
            for p in list(left):
                if left[p]:
                    out.append(p)
                    left[p] -= 1
        return out

    def reconcile(self, sim: Sim) -> None:
        """Keep the planned HTCondor pods deployed (a Deployment's replicas): redeploy what is missing."""
        by_node: dict[tuple[str, str, int, int], list[str]] = {}
        for node, pool, name, cores, mem in self.pod_plan:
            if name not in sim.startds:
                by_node.setdefault((node, pool, cores, mem), []).append(name)
        for (node, pool, cores, mem), names in by_node.items():
            n = sim.nodes[node]
            if n.role == NodeRole.WORKER and n.k8s_free()[0] >= cores:
                sim.deploy_pods(node, pool, tuple(names), cores, mem)

    def order(self, sim: Sim, pools: list[str]) -> list[str]:
        """Negotiation order among ``pools`` (those with idle jobs, given by priority): keep it."""
        return pools

    def admit(self, sim: Sim, pool: str) -> int:
        return UNLIMITED

    def tick(self, sim: Sim) -> float | None:
        if self.pod_plan:
            self.reconcile(sim)
            return sim.sc.timing.reconcile_s
        return None

    def on_repair(self, sim: Sim, node: SimNode) -> None:
        if self.pod_plan:
            self.reconcile(sim)


def plan_pods(sim: Sim, w: dict[str, float], labelled: bool) -> list[tuple[str, str, str, int, int]]:
    """HTCondor pods for the pods layout: ``pod_batch_share`` of the commons' allocatable cores, packed."""
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
    total = sum(int(n.cores - n.svc_cpu) for n in workers)
    target = lay.pod_batch_share * total
    # Pack pods node after node, so whole nodes stay free for notebooks.
    chosen: list[tuple[str, int, int]] = []
    acc = 0
    for s in slots:
        if acc + s[1] > target + 1e-9:
            break
        chosen.append(s)
        acc += s[1]
    labels = [SHARED] * len(chosen)
    if labelled:
        counts = split(len(chosen), w)
        labels = []
        left = dict(counts)
        while len(labels) < len(chosen):
            for p in list(left):
                if left[p]:
                    labels.append(p)
                    left[p] -= 1
    return [(node, pool, f"htcondor-{node}-{i:02d}", cores, mem)
            for i, ((node, cores, mem), pool) in enumerate(zip(chosen, labels, strict=True))]


class Static(Policy):
    name = "static"


class GroupQuotas(Policy):
    name = "quotas"
    labelled = False
    limited = True

    def order(self, sim: Sim, pools: list[str]) -> list[str]:
        total = max(1, sim.total_cap)
        spec = sim.spec.pools
        busy = sim.busy

        def key(p: str) -> tuple[int, float, int]:
            quota = spec[p].guaranteed_share * total
            ratio = busy[p] / quota if quota > 0 else float("inf")
            return (0 if busy[p] < quota else 1, ratio, -spec[p].priority)

        return sorted(pools, key=key)

    def admit(self, sim: Sim, pool: str) -> int:
        cap = int(sim.spec.pools[pool].max_share * sim.total_cap)
        return cap - sim.busy[pool]


class Broker(Policy):
    """Static layout, then the broker's pure ``decide(spec, observed)`` through ``TwinBackend`` each cycle."""

    name = "broker"

    def __init__(self, decide: Callable[[EnclaveSpec, Any], list[Action]] | None = None) -> None:
        super().__init__()
        self._decide = decide
        self.backend: Any = None
        self.rejected: list[str] = []
        self.cycles = 0

    def setup(self, sim: Sim) -> None:
        from enclave.twin.backend import TwinBackend

        if self._decide is None:
            self._decide = load_decide()
            from enclave.broker.decide import validate

            validate(sim.spec)  # before the first cycle: a spec the broker refuses is not simulated at all
        super().setup(sim)
        # The broker owns the layout from here on: it moves pods and nodes itself.
        self.pod_plan = []
        self.backend = TwinBackend(sim)

    def tick(self, sim: Sim) -> float | None:
        assert self._decide is not None
        self.cycles += 1
        observed = self.backend.observe()
        for action in self._decide(sim.spec, observed):
            try:
                self.backend.apply(action)
            except EnclaveError as err:
                # A live backend would refuse the same way; the broker sees the result on its next observe.
                self.rejected.append(f"{action.kind}: {err}")
        broker = getattr(sim.spec, "broker", None)
        return float(getattr(broker, "cycle_seconds", sim.sc.timing.broker_interval_s))


def load_decide() -> Callable[[EnclaveSpec, Any], list[Action]]:
    try:
        module = importlib.import_module("enclave.broker.decide")
    except ModuleNotFoundError:
        module = None
    decide = getattr(module, "decide", None)
    if decide is None:
        raise InputError([Problem("--policy broker", "the broker (enclave.broker.decide) is not installed yet",
                                  "use --policy static or --policy quotas")])
    return decide  # type: ignore[no-any-return]


POLICIES: dict[str, Callable[[], Policy]] = {"static": Static, "quotas": GroupQuotas, "broker": Broker}


def make(name: str) -> Policy:
    factory = POLICIES.get(name)
    if factory is None:
        raise InputError([Problem(f"--policy {name}", "unknown policy",
                                  f"use one of: {', '.join(POLICIES)} (clairvoyant bounds are in every report)")])
    return factory()
