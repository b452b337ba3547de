"""Compose a running service from its parts: database, spec, and a backend with the broker loop.

This is the adapter layer: it is the only place in ``enclave.api`` that knows the twin and the broker's
executor. ``enclave serve`` and the tests build services through it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enclave.api.metrics import Metrics
from enclave.api.runner import BrokerRunner, Extras
from enclave.api.service import Service
from enclave.api.snapshot import History
from enclave.broker.model import Action, Observed
from enclave.db import Database
from enclave.spec.models import EnclaveSpec

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


def twin_runner(spec: EnclaveSpec, db: Database, metrics: Metrics, history: History, *,
                scenario: str = DEFAULT_SCENARIO, sim_seconds_per_cycle: float = 300.0,
                wall_seconds_per_cycle: float = 1.0) -> BrokerRunner:
    """The embedded default: the twin of ``spec`` loaded with ``scenario``, its clock advanced
    ``sim_seconds_per_cycle`` per broker cycle (every ``wall_seconds_per_cycle`` of real time)."""
    from enclave.broker.decide import decide
    from enclave.twin.backend import TwinBackend

    # "static" with the standalone layout adds no moves of its own: the service's broker drives the twin.
    twin = TwinBackend.from_scenario(scenario, spec=spec, policy="static")
    deadline = twin.sim.sc.prompt.deadline_s if twin.sim.sc.prompt is not None else 60.0

    def broker_decide(observed: Observed) -> list[Action]:
        return decide(spec, observed)

    return BrokerRunner(
        spec=spec, backend=twin, decide=broker_decide, db=db, metrics=metrics, history=history,
        advance=twin.advance, extras=TwinFigures(twin.sim, deadline),
        backend_name=f"twin ({scenario})",
        sim_seconds_per_cycle=sim_seconds_per_cycle, wall_seconds_per_cycle=wall_seconds_per_cycle,
        finished=lambda: bool(twin.sim.now >= twin.sim.horizon),
    )


def build_service(spec: EnclaveSpec, db: Database, *, backend: str = "twin", scenario: str = DEFAULT_SCENARIO,
                  sim_seconds_per_cycle: float = 300.0, wall_seconds_per_cycle: float = 1.0) -> Service:
    service = Service(spec=spec, db=db)
    if backend == "twin":
        service.runner = twin_runner(spec, db, service.metrics, service.history, scenario=scenario,
                                     sim_seconds_per_cycle=sim_seconds_per_cycle,
                                     wall_seconds_per_cycle=wall_seconds_per_cycle)
        service.runner.snapshot()
    return service


BOOTSTRAP_ADMIN = "admin"


def ensure_accounts(db: Database, spec: EnclaveSpec, admin: str = BOOTSTRAP_ADMIN, *,
                    ttl_seconds: int = 7 * 86400) -> str | None:
    """Make a fresh database usable and return a token for ``admin``.

    On an empty database: bootstrap ``admin`` as the first sysadmin. Then make sure the broker's own account
    exists (staff, htcondor-admin + k8s-service-admin), onboarded by ``admin`` — the broker's actions are
    role-checked and journaled like anyone's. Returns a token for ``admin`` when it is an active sysadmin,
    else None (an operator with a different admin issues tokens with ``enclave tokens issue``).
    """
    from enclave.access import tokens
    from enclave.access.permissions import Permission, find_account, permissions_of
    from enclave.accounts import service as accounts
    from enclave.accounts.models import AccountKind, AccountStatus
    from enclave.broker.decide import BROKER_ACTOR
    from enclave.errors import NotFound
    from enclave.spec.models import Role

    with db.session() as session:
        if not accounts.list_accounts(session):
            accounts.bootstrap(session, spec, admin, name="Enclave Administrator", email=f"{admin}@enclave.local")
        try:
            acting = find_account(session, admin)
        except NotFound:
            return None
        if acting.status != AccountStatus.ACTIVE or Permission.ACCOUNTS_MANAGE not in permissions_of(session, admin):
            return None
        try:
            find_account(session, BROKER_ACTOR)
        except NotFound:
            accounts.onboard(session, admin, spec, BROKER_ACTOR, name="Capacity broker (service account)",
                             email=f"{BROKER_ACTOR}@enclave.local", kind=AccountKind.STAFF,
                             reason="the broker acts as this account: BCS 1–5 need htcondor-admin and "
                                    "k8s-service-admin", roles=[Role.HTCONDOR_ADMIN, Role.K8S_SERVICE_ADMIN])
        return tokens.issue(session, admin, admin, ["*"], ttl_seconds, reason="enclave serve: admin token")


def live_runner(spec: EnclaveSpec, db: Database, metrics: Metrics, history: History, *,
                kubeconfig: Path | None = None, collector: str | None = None,
                wall_seconds_per_cycle: float = 30.0) -> BrokerRunner:
    """The live backend: Kubernetes through the official client (``kubeconfig``, else in-cluster or
    $KUBECONFIG) and HTCondor through the bindings (``collector``, else ``spec.batch.central_manager``)."""
    import htcondor2
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    from enclave.batch.live import HTCondorBatch
    from enclave.broker.decide import decide
    from enclave.cluster.kube import KubeCluster
    from enclave.cluster.live import Condor, LiveBackend
    from enclave.errors import ExternalError

    if kubeconfig is None:
        kube = KubeCluster.connect(spec)
    else:
        try:
            api = k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        except (k8s_config.ConfigException, OSError) as exc:
            raise ExternalError(f"cannot read kubeconfig {kubeconfig}: {exc}", where="--kubeconfig",
                                fix="give a readable kubeconfig for the cluster") from exc
        assert isinstance(api, k8s.ApiClient)
        kube = KubeCluster(spec, api)
    batch = HTCondorBatch(spec, collector=htcondor2.Collector(collector) if collector else None)
    condor: Condor = batch
    backend = LiveBackend(spec, kube, condor)

    def broker_decide(observed: Observed) -> list[Action]:
        # Evictions refused by a disruption budget are retried once per cycle, as `kubectl drain` does.
        backend.progress()
        return decide(spec, observed)

    return BrokerRunner(spec=spec, backend=backend, decide=broker_decide, db=db, metrics=metrics, history=history,
                        backend_name="live", wall_seconds_per_cycle=wall_seconds_per_cycle)
