"""The running control plane: spec, database, backend loop, metrics and history, held by one object.

Routes get it from ``request.app.state.service``; nothing here is a module-level global, so tests and the
benchmark can run several independent services in one process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy.orm import Session

from enclave.api.metrics import Metrics
from enclave.api.snapshot import History
from enclave.db import Database
from enclave.spec.models import EnclaveSpec

if TYPE_CHECKING:
    from enclave.api.runner import BrokerRunner


@dataclass
class Service:
    spec: EnclaveSpec
    db: Database
    metrics: Metrics = field(default_factory=Metrics)
    history: History = field(default_factory=History)
    runner: BrokerRunner | None = None
    title: str = "enclave"

    def image_vetter(self, session: Session) -> Callable[[str], bool] | None:
        """Which notebook images security has approved. None means the spec's own rule (listed images of the
        local registry), which is what the notebooks concept falls back to while no vetting records exist."""
        return None


def get_service(request: Request) -> Service:
    service = request.app.state.service
    assert isinstance(service, Service)
    return service
