"""Compose a running control plane: the factory's services and a backend with the broker loop.
``enclave serve`` and the tests build it here; every backend comes from ``enclave.services.factory``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enclave.api.runner import BrokerRunner, Extras
from enclave.api.service import Service
from enclave.services.factory import Factory

DEFAULT_SCENARIO = "one-week"


@dataclass
class TwinFigures:
    """Prompt latency and notebook figures read from the simulation between broker cycles."""

    sim: Any
    deadline_s: float = 60.0
    _recorded: set[int] = field(default_factory=set)
    _low: int = 0

    def __call__(self) -> Extras:
        lat: Sequence[float] = self.sim.visit_latency
        new: list[float] = []
        # Visits finish out of order; scan from the first visit not yet recorded, skip the ones already seen.
        i = self._low
        while i < len(lat):
            value = lat[i]
            if not math.isnan(value) and i not in self._recorded:
                new.append(value)
                self._recorded.add(i)
            i += 1
        while self._low in self._recorded:
            self._recorded.discard(self._low)
            self._low += 1
        done = sorted(v for v in lat if not math.isnan(v))
        p95 = done[min(len(done) - 1, math.ceil(0.95 * len(done)) - 1)] if done else None
        within = sum(1 for v in done if v <= self.deadline_s) / len(done) if done else None
        samples = self.sim.samples
        users = samples[-1].notebooks if samples else None
        return Extras(prompt_latencies=new, prompt_latency_p95=p95, prompt_within_objective=within,
                      notebook_users=users)


def twin_runner(service: Service, *, scenario: str = DEFAULT_SCENARIO, sim_seconds_per_cycle: float = 300.0,
                wall_seconds_per_cycle: float = 1.0) -> BrokerRunner:
    """The twin of the spec loaded with ``scenario``, its clock advanced ``sim_seconds_per_cycle`` per broker
    cycle (every ``wall_seconds_per_cycle`` of real time). Its moves, the broker's and people's, are journaled
    in the twin's own scratch store, never in the served database (``Factory.twin_broker``)."""
    twin = service.factory.twin_backend(scenario)
    service.factory.use_twin_logs(twin)  # GET .../pods/{pod}/log reads the simulated pods' events
    sim = twin.sim
    deadline = sim.sc.prompt.deadline_s if sim.sc.prompt is not None else 60.0
    return BrokerRunner(broker=service.factory.twin_broker(twin, f"twin ({scenario})"), metrics=service.metrics,
                        history=service.history, simulate=True, extras=TwinFigures(sim, deadline),
                        backend_name=f"twin ({scenario})", sim_seconds_per_cycle=sim_seconds_per_cycle,
                        wall_seconds_per_cycle=wall_seconds_per_cycle, leader=service.factory.broker_leadership)


def live_runner(service: Service, *, kubeconfig: Path | None = None, collector: str | None = None) -> BrokerRunner:
    """The live backend: Kubernetes through the official client and HTCondor through the bindings, one cycle
    every ``broker.cycle_seconds`` of the spec, as `enclave broker run` runs them (audit: `serve --live` ran one
    every 5 s whatever the spec said; the Lease it renews is sized from the same period,
    ``services.factory.lease_seconds``)."""
    backend = service.factory.live_backend(kubeconfig=kubeconfig, collector=collector)
    return BrokerRunner(broker=service.factory.broker(backend, "live"), metrics=service.metrics,
                        history=service.history, simulate=False, backend_name="live",
                        wall_seconds_per_cycle=service.spec.broker.cycle_seconds,
                        leader=service.factory.broker_leadership)


def build_service(factory: Factory, *, backend: str = "twin", scenario: str = DEFAULT_SCENARIO,
                  sim_seconds_per_cycle: float = 300.0, wall_seconds_per_cycle: float = 1.0) -> Service:
    service = Service(factory=factory)
    if backend == "twin":
        service.runner = twin_runner(service, scenario=scenario, sim_seconds_per_cycle=sim_seconds_per_cycle,
                                     wall_seconds_per_cycle=wall_seconds_per_cycle)
        service.runner.snapshot()
    return service
