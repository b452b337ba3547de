"""`enclave serve --demo`: after seeding, every role a page or endpoint needs has an account, and the notebook
options offer a vetted image (before, they answered 403 and no account could run a BCS procedure)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from enclave.api.app import create_app
from enclave.api.wiring import build_service
from enclave.db import Database
from enclave.services.demo import SCIENCE, STAFF, seed
from enclave.services.factory import Factory
from enclave.spec import EnclaveSpec

ADMIN = "admin"


def test_demo_seed_makes_every_page_and_endpoint_usable(tmp_path: Path, spec: EnclaveSpec) -> None:
    db = Database(f"sqlite:///{tmp_path / 'demo.db'}")
    db.migrate()
    factory = Factory(spec, db)
    assert factory.ensure_accounts(ADMIN) is not None
    tokens = seed(factory, ADMIN)
    assert set(tokens) == {a.username for a in (*STAFF, *SCIENCE)}
    service = build_service(Factory(spec, db), scenario="one-night", sim_seconds_per_cycle=600)
    with TestClient(create_app(service)) as client:
        def get(path: str, user: str) -> int:
            return client.get(path, headers={"Authorization": f"Bearer {tokens[user]}"}).status_code

        # A science user sees vetted images offered (seed §10: only approved digests are offered).
        options = client.get("/api/v1/notebooks/options", headers={"Authorization": f"Bearer {tokens['alice']}"})
        assert options.status_code == 200, options.text
        assert options.json()["images"], options.json()
        # The HTCondor admin may run a manual BCS procedure (BCS 1/2 relabel needs htcondor-admin).
        startd = service.runner.observe().startds[0]  # type: ignore[union-attr]
        other = next(p for p in spec.pools if p != startd.pool)
        moved = client.post("/api/v1/broker/actions", headers={"Authorization": f"Bearer {tokens['condor-admin']}"},
                            json={"kind": "relabel", "startd": startd.name, "to_pool": other, "reason": "demo"})
        assert moved.status_code == 201, moved.text
        for path in ("/", "/nodes", "/notebooks", "/journal"):
            assert get(path, "condor-admin") == 200, path
        assert get("/api/v1/ops/images", "security") == 200
    # A second run adds nobody and vets nothing twice.
    assert seed(factory, ADMIN) == {}
    db.dispose()
