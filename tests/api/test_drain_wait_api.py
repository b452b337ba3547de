"""``POST /broker/actions`` drain-node with ``timeout_seconds``: the server waits for the drain as kubectl does, but
outside the procedure's lock, so the broker's loop — which on a twin server is what moves the twin's clock — goes
on while it waits (review, stop 39: waiting under the lock froze the loop, and on a twin server the drain could
never finish)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from enclave.api.app import create_app
from enclave.api.runner import BrokerRunner
from enclave.api.service import Service
from enclave.db import Database
from enclave.services.factory import Factory
from enclave.spec import EnclaveSpec
from enclave.spec.models import NodeRole, Role
from enclave.twin.backend import TwinBackend
from tests.api.conftest import role_user
from tests.pg import copy_sqlite


@pytest.fixture
def served(tmp_path: Path, spec: EnclaveSpec,
           template_db: tuple[Path, dict[str, str]]) -> Iterator[tuple[TestClient, BrokerRunner, TwinBackend, str]]:
    path = tmp_path / "enclave.db"
    copy_sqlite(template_db[0], path)
    db = Database(f"sqlite:///{path}")
    service = Service(Factory(spec, db))
    twin = service.factory.twin_backend("one-night", 1.0)
    service.runner = BrokerRunner(broker=service.factory.twin_broker(twin, "twin (test)"), metrics=service.metrics,
                                  history=service.history, backend_name="twin", sim_seconds_per_cycle=10.0)
    service.runner.snapshot()
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        yield client, service.runner, twin, template_db[1][role_user(Role.K8S_SERVICE_ADMIN)]
    db.dispose()


def test_the_wait_lets_the_broker_cycle_and_ends_when_the_evicted_pods_are_gone(
        served: tuple[TestClient, BrokerRunner, TwinBackend, str]) -> None:
    client, runner, twin, token = served
    node = next(n for n in twin.sim.nodes.values() if n.role == NodeRole.WORKER and n.notebooks)
    free: list[bool] = []

    def a_second_passes(seconds: float) -> None:
        """While the request waits: another thread can take the broker's lock, and the runner's loop takes a cycle
        (simulate: the twin moves on 10 s)."""
        def other() -> None:
            got = runner.broker.lock.acquire(timeout=5)
            free.append(got)
            if got:
                runner.broker.lock.release()
        t = threading.Thread(target=other)
        t.start()
        t.join()
        runner.step()

    runner.broker.sleep = a_second_passes
    cycles = runner.cycles
    r = client.post("/api/v1/broker/actions", headers={"Authorization": f"Bearer {token}"},
                    json={"kind": "drain-node", "node": node.name, "reason": "BCS 5 by hand", "timeout_seconds": 120})
    assert r.status_code == 201, r.text
    assert free and all(free)
    # The notebooks' pods hold the node for their grace (the twin's termination_grace_s, 30 s): three cycles of 10 s.
    grace = twin.sim.sc.kubernetes.termination_grace_s
    assert runner.cycles - cycles == grace / 10.0 and node.drained
