"""The kubelet's probes (kubernetes.io, "Configure Liveness, Readiness and Startup Probes"): /api/v1/health for
liveness answers from the process alone; /api/v1/ready for readiness answers 503, saying why, while the database does
not answer (audit of the operator's view: only a tcpSocket probe, which a frozen server passes)."""

from __future__ import annotations

import threading
import time
from typing import Any

from enclave.db import Database
from enclave.services.database import unready
from tests.api.conftest import World


def test_ready_when_the_database_answers(world: World) -> None:
    r = world.client.get("/api/v1/ready")
    assert (r.status_code, r.json()) == (200, {"status": "ready"})


def test_unready_with_a_reason_when_the_database_is_unreachable(world: World) -> None:
    """Any status from 200 to 399 counts as success ("Define a liveness HTTP request"), so unready is a 5xx: 503."""
    # Port 1 on the loopback: nothing listens, the connection is refused at once.
    world.service.factory.db = Database("postgresql+psycopg://enclave@127.0.0.1:1/enclave")
    r = world.client.get("/api/v1/ready")
    assert r.status_code == 503
    assert r.json()["status"] == "unready"
    assert r.json()["reason"].startswith("the database did not answer SELECT 1: ")
    # Liveness does not follow the database: a restart would not bring it back.
    assert world.client.get("/api/v1/health").status_code == 200


class _Hanging:
    """A database whose connection never comes (a lost network path): ``unready`` must not wait it out."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def ping(self) -> Any:  # Database.ping's connection never comes
        self.release.wait(10)
        raise ConnectionError("released")


def test_unready_within_its_timeout_when_the_database_hangs() -> None:
    hanging = _Hanging()
    started = time.monotonic()
    why = unready(hanging, timeout=0.2)  # type: ignore[arg-type]
    waited = time.monotonic() - started
    hanging.release.set()
    assert why == "the database did not answer SELECT 1 within 0.2 s"
    assert waited < 1.0
