"""Fixtures: a migrated SQLite database per test, one account per actor role with a token, and the app."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from enclave.access import tokens
from enclave.accounts import service as accounts
from enclave.accounts.models import AccountKind
from enclave.api.app import create_app
from enclave.api.runner import BrokerRunner
from enclave.api.service import Service
from enclave.broker.effects import apply_one
from enclave.broker.layout import initial_state
from enclave.broker.model import Action, DrainNode, Observed
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


T0 = 1_782_043_200.0  # 2026-06-21 12:00 UTC


class ProjectedBackend:
    """The broker's own model of the enclave as a backend: the spec's initial layout, changed by each action
    exactly as ``enclave.broker.effects`` projects it. No workload and no clock of its own: the role and
    refusal tests need a backend that is fast and holds still. The twin drives the runner tests."""

    def __init__(self, spec: EnclaveSpec) -> None:
        self.state = initial_state(spec, now=T0)
        # One worker already draining, so a start-htcondor procedure has somewhere legal to go.
        self.state = apply_one(self.state, DrainNode(actor="setup", reason="fixture", node="kub-017"))

    def observe(self) -> Observed:
        return self.state

    def apply(self, action: Action) -> None:
        self.state = apply_one(self.state, action)

    def advance(self, seconds: float) -> None:
        self.state = replace(self.state, now=self.state.now + seconds)


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
        # Targets for the lifecycle endpoints, one per transition so any of them can be tried on a fresh copy.
        accounts.onboard(s, ADMIN, spec, "victim", name="Victim Staff", email="victim@example.org",
                         kind=AccountKind.STAFF, reason="test fixture", namespaces=["qserv"])
        for user in ("scivictim", "scipromo", "sciexpired"):
            accounts.onboard(s, ADMIN, spec, user, name=f"{user} person", email=f"{user}@example.org",
                             kind=AccountKind.SCIENCE, reason="test fixture",
                             allocation=accounts.Allocation(proposal_id="P-2"))
        accounts.expire(s, ADMIN, "sciexpired", reason="test fixture")
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
    # Closing the last connection checkpoints the WAL into the main file, which is then complete on its own.
    db.dispose()
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    return path, made


@pytest.fixture
def world(tmp_path: Path, spec: EnclaveSpec, template_db: tuple[Path, dict[str, str]]) -> Iterator[World]:
    path = tmp_path / "enclave.db"
    path.write_bytes(template_db[0].read_bytes())
    db = Database(f"sqlite:///{path}")
    service = Service(spec=spec, db=db)
    backend = ProjectedBackend(spec)
    service.runner = BrokerRunner(spec=spec, observe=backend.observe, decide=lambda o: [], db=db,
                                  metrics=service.metrics, history=service.history, apply=backend.apply,
                                  advance=backend.advance, backend_name="projected")
    service.runner.snapshot()
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        yield World(spec=spec, db=db, service=service, client=client, tokens=dict(template_db[1]))
    db.dispose()
