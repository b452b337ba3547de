"""Fixtures: a migrated SQLite database per test, one account per actor role with a token, and the app."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from enclave.access import tokens
from enclave.accounts import service as accounts
from enclave.accounts.models import AccountKind
from enclave.api.app import create_app
from enclave.api.service import Service
from enclave.db import Database
from enclave.spec import EnclaveSpec, Role, load
from enclave.spec.defaults import EXAMPLES

ADMIN = "root"
STAFF_ROLE_USERS = {role: role.value.replace("-", "") for role in Role if role != Role.SCIENCE_USER}
SCIENCE = "sci"


@dataclass
class World:
    spec: EnclaveSpec
    db: Database
    service: Service
    client: TestClient
    tokens: dict[str, str]
    """username → a '*' token; one user per actor role, plus the bootstrap admin and a science user."""

    def as_(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[username]}"}

    def token(self, username: str, scopes: list[str], ttl: int = 3600) -> str:
        with self.db.session() as s:
            return tokens.issue(s, username, username, scopes, ttl)


def role_user(role: Role) -> str:
    return SCIENCE if role == Role.SCIENCE_USER else STAFF_ROLE_USERS[role]


@pytest.fixture(scope="session")
def spec() -> EnclaveSpec:
    return load(EXAMPLES / "lsst-ldf.yaml")


def populate(db: Database, spec: EnclaveSpec) -> dict[str, str]:
    out: dict[str, str] = {}
    with db.session() as s:
        accounts.bootstrap(s, spec, ADMIN, name="Root Admin", email="root@example.org")
        for role, user in STAFF_ROLE_USERS.items():
            accounts.onboard(s, ADMIN, spec, user, name=f"{role.value} person", email=f"{user}@example.org",
                             kind=AccountKind.STAFF, reason="test fixture", roles=[role])
        accounts.onboard(s, ADMIN, spec, SCIENCE, name="Science Person", email="sci@example.org",
                         kind=AccountKind.SCIENCE, reason="test fixture",
                         allocation=accounts.Allocation(proposal_id="P-1"))
        for user in [ADMIN, *STAFF_ROLE_USERS.values(), SCIENCE]:
            out[user] = tokens.issue(s, user, user, ["*"], 3600)
    return out


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory, spec: EnclaveSpec) -> tuple[Path, dict[str, str]]:
    """Migrate and populate once; each test gets a copy of the file (fast and fully isolated)."""
    path = tmp_path_factory.mktemp("db") / "template.db"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    made = populate(db, spec)
    with db.engine.connect() as c:
        c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.dispose()
    return path, made


@pytest.fixture
def world(tmp_path: Path, spec: EnclaveSpec, template_db: tuple[Path, dict[str, str]]) -> Iterator[World]:
    path = tmp_path / "enclave.db"
    path.write_bytes(template_db[0].read_bytes())
    db = Database(f"sqlite:///{path}")
    service = Service(spec=spec, db=db)
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        yield World(spec=spec, db=db, service=service, client=client, tokens=dict(template_db[1]))
    db.dispose()
