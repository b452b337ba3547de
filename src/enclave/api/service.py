"""The running control plane: the services (built by one factory), the broker loop, metrics and history.

Routes reach it through the typed dependencies in ``enclave.api.deps``; nothing here is a module-level global,
so tests and the benchmark can run several independent control planes in one process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

from enclave.api.metrics import Metrics
from enclave.api.snapshot import History
from enclave.services.factory import Factory
from enclave.spec.models import EnclaveSpec

if TYPE_CHECKING:
    from enclave.api.runner import BrokerRunner


@dataclass
class Service:
    factory: Factory
    metrics: Metrics = field(default_factory=Metrics)
    history: History = field(default_factory=History)
    runner: BrokerRunner | None = None
    title: str = "enclave"

    @property
    def spec(self) -> EnclaveSpec:
        return self.factory.spec


def get_service(request: Request) -> Service:
    service = request.app.state.service
    assert isinstance(service, Service)
    return service
