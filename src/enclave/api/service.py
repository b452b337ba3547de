"""The running control plane: spec, database, backend loop, metrics and history, held by one object.

Routes get it from ``request.app.state.service``; nothing here is a module-level global, so tests and the
benchmark can run several independent services in one process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request

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
    spec_path: Path | None = None
    """Where the spec came from, for renderers that read it themselves; None: the embedded default."""
    state: dict[str, Any] = field(default_factory=dict)
    """Per-service state of individual routers (twin runs), keyed by router."""

    def image_vetter(self) -> Callable[[str], bool]:
        """Which notebook images may be offered: as the notebooks CLI and the JupyterHub hook decide it
        (listed in the spec and, when the registry requires vetting, approved by security)."""
        from enclave.notebooks.repository import image_vetter

        return image_vetter(self.db, self.spec)


def get_service(request: Request) -> Service:
    service = request.app.state.service
    assert isinstance(service, Service)
    return service
