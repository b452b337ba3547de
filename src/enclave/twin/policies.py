"""Capacity policies the twin compares, all behind the simulator's ``Policy`` interface.

A policy decides three things: how capacity is laid out at the start (``setup``), in which order pools
are offered a free slot and how many more cores a pool may take (``order``/``admit`` — the negotiator's
view), and what it does periodically (``tick``).

- ``static`` and ``quotas``: the rendered layout, kept as it is (``enclave.twin.layout``).
- ``quotas-preempt``, ``quotas-reserved`` (``enclave.twin.preempt``) and ``cohorts``
  (``enclave.twin.cohorts``): HTCondor with preemption or a reservation for prompt, and Kueue-style cohorts.
- ``service``: prompt as Knative service workers in the commons, HTCondor laid out without it
  (``enclave.twin.service_prompt``).
- ``broker``: the same layout, then the broker's pure ``decide(spec, observed)`` every broker cycle,
  through a Backend (observe → decide → apply), exactly as it would run against a live cluster.
"""

from __future__ import annotations

from collections.abc import Callable

from enclave.batch.render import calm_pools
from enclave.broker.calm import Calm
from enclave.broker.decide import plan as broker_plan
from enclave.broker.decide import validate
from enclave.broker.window import NeedWindow
from enclave.domain.capacity import Action, Backend, Observed
from enclave.errors import EnclaveError, InputError, Problem
from enclave.spec.models import EnclaveSpec
from enclave.twin.backend import TwinBackend
from enclave.twin.cohorts import Cohorts
from enclave.twin.layout import FIXED, GroupQuotas, Static
from enclave.twin.preempt import QuotasMemory, QuotasPreempt, QuotasPreemptMemory, QuotasReserved
from enclave.twin.service_prompt import PromptService
from enclave.twin.sim import Policy, Sim

__all__ = ["POLICIES", "Broker", "Cohorts", "GroupQuotas", "PromptService", "QuotasPreempt", "QuotasReserved", "Static",
           "make"]

Decide = Callable[[EnclaveSpec, Observed], list[Action]]
"""A decision function in place of the broker's own (``plan``): actions only, and no word of calm."""
Connect = Callable[[Sim], Backend]


class Broker(GroupQuotas):
    """The rendered layout, then ``decide`` through a backend around the simulator (``connect``) each cycle; the
    central manager's group quotas as rendered (``GroupQuotas``) over the pools' labelled startds. Each cycle it
    advertises its word of calm (``enclave.broker.calm``) where a pool's startds read it, as the broker service
    does."""

    name = "broker"
    labelled = True
    backend: Backend
    """Set by ``setup``: the simulator seen through the Backend protocol."""

    def __init__(self, decide: Decide | None = None, connect: Connect = TwinBackend) -> None:
        super().__init__()
        self._decide = decide
        self._connect = connect
        self.rejected: list[str] = []
        self.cycles = 0

    def setup(self, sim: Sim) -> None:
        validate(sim.spec)  # before the first cycle: a spec the broker refuses is not simulated at all
        super().setup(sim)
        # The broker owns the layout from here on: it moves pods and nodes itself.
        self.pod_plan = []
        self.backend = self._connect(sim)
        self.window = NeedWindow(sim.spec)
        self.calm = Calm(sim.spec) if calm_pools(sim.spec) else None

    def tick(self, sim: Sim) -> float | None:
        self.cycles += 1
        for action in self._actions(sim.spec, self.window.feed(self.backend.observe())):
            try:
                self.backend.apply(action)
            except EnclaveError as err:
                # A live backend would refuse the same way; the broker sees the result on its next observe.
                self.rejected.append(f"{action.kind}: {err}")
        return sim.spec.broker.cycle_seconds

    def _actions(self, spec: EnclaveSpec, observed: Observed) -> list[Action]:
        """This cycle's actions, after advertising its word of calm (``BrokerService._advertise``)."""
        if self._decide is not None:
            return self._decide(spec, observed)
        decision = broker_plan(spec, observed)
        if self.calm is not None:
            self.backend.advertise_calm(self.calm.feed(observed.now, decision.pools, observed.demand))
        return decision.actions


POLICIES: dict[str, Callable[[], Policy]] = {
    **FIXED, "quotas-mem": QuotasMemory, "quotas-preempt": QuotasPreempt, "quotas-preempt-mem": QuotasPreemptMemory,
    "quotas-reserved": QuotasReserved, "cohorts": Cohorts,
    "broker": Broker, "service": PromptService}
"""The baselines (``enclave.twin.preempt``, ``enclave.twin.cohorts``: the strongest a site could configure
without a broker), the broker, and prompt as Knative service workers (``service``)."""


def make(name: str) -> Policy:
    factory = POLICIES.get(name)
    if factory is None:
        raise InputError([Problem(f"--policy {name}", "unknown policy",
                                  f"use one of: {', '.join(POLICIES)} (clairvoyant bounds are in every report)")])
    return factory()
