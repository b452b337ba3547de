"""The API on PostgreSQL (the production database): the same service functions, role checks and journal as
on SQLite, against a real server that tests/pg.py starts on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from enclave.api.app import create_app
from enclave.api.service import Service
from enclave.db import Database
from enclave.services.factory import Factory
from enclave.spec import EnclaveSpec
from tests.api.conftest import ADMIN, populate
from tests.pg import PostgresServer, postgres_server  # noqa: F401  (session fixture)


@pytest.fixture
def pg_client(postgres_server: PostgresServer, spec: EnclaveSpec) -> Iterator[tuple[TestClient, dict[str, str]]]:  # noqa: F811
    url = postgres_server.create_database("api_test")
    db = Database(url)
    db.migrate()
    made = populate(db, spec)
    try:
        with TestClient(create_app(Service(Factory(spec, db))), raise_server_exceptions=False) as client:
            yield client, made
    finally:
        db.dispose()
        postgres_server.drop_database("api_test")


def test_lifecycle_roles_and_journal_on_postgresql(pg_client: tuple[TestClient, dict[str, str]]) -> None:
    client, made = pg_client
    admin = {"Authorization": f"Bearer {made[ADMIN]}"}
    victim = {"Authorization": f"Bearer {made['developer']}"}
    assert client.get("/api/v1/whoami", headers=victim).json()["username"] == "developer"
    before = client.get("/api/v1/journal/verify", headers=admin).json()["entries"]
    # Refused: a developer may not onboard; nothing is journaled.
    r = client.post("/api/v1/accounts", headers=victim, json={
        "username": "x1", "name": "X", "email": "x1@example.org", "kind": "staff", "reason": "no"})
    assert r.status_code == 403
    assert client.get("/api/v1/journal/verify", headers=admin).json()["entries"] == before
    r = client.post("/api/v1/accounts/developer/depart", headers=admin, json={"reason": "left"})
    assert r.status_code == 200 and r.json()["status"] == "departed"
    assert client.get("/api/v1/whoami", headers=victim).status_code == 401
    entries = client.get("/api/v1/journal?action=accounts.depart", headers=admin).json()
    assert entries[0]["target"] == "account/developer" and entries[0]["actor"] == ADMIN
    assert client.get("/api/v1/journal/verify", headers=admin).json()["entries"] == before + 1
