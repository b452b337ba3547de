"""POST /accounts when the home cannot be made after the commit (review: onboard_half.py).

docs/accounts.md, "Home provisioning": the account is committed and journaled before its home is made, so a home
that cannot be made leaves the onboarding (or demotion) standing, and the answer is the account with a
``notice`` saying the home was not made and how to make it. docs/api.md: `POST /accounts` and
`POST /accounts/{u}/demote` answer 201 for an account made."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from enclave.api.app import create_app
from enclave.api.service import Service
from enclave.db import Database
from enclave.services.factory import Factory
from enclave.spec import EnclaveSpec
from tests.api.conftest import ADMIN
from tests.pg import copy_sqlite

STRAY = b"a stray file where the home directory goes\n"


@pytest.fixture
def homes(tmp_path: Path) -> Path:
    root = tmp_path / "jhome"
    root.mkdir()
    return root


@pytest.fixture
def client(tmp_path: Path, spec: EnclaveSpec, homes: Path,
           template_db: tuple[Path, dict[str, str]]) -> Iterator[tuple[TestClient, dict[str, str]]]:
    path = tmp_path / "enclave.db"
    copy_sqlite(template_db[0], path)
    db = Database(f"sqlite:///{path}")
    mounted = spec.model_copy(update={"storage": spec.storage.model_copy(update={"home_root": str(homes)})})
    with TestClient(create_app(Service(Factory(mounted, db))), raise_server_exceptions=False) as client:
        yield client, {"Authorization": f"Bearer {template_db[1][ADMIN]}"}
    db.dispose()


def test_onboarding_answers_201_with_a_notice_when_the_home_is_blocked(
        client: tuple[TestClient, dict[str, str]], homes: Path) -> None:
    c, auth = client
    (homes / "carol").write_bytes(STRAY)
    body = {"username": "carol", "name": "Carol", "email": "carol@example.org", "kind": "staff",
            "reason": "new hire"}
    r = c.post("/api/v1/accounts", json=body, headers=auth)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["username"] == "carol" and made["status"] == "active"
    assert "home not made" in made["notice"]
    assert f"mkdir -p -m 700 {homes / 'carol'} {homes / 'carol' / 'workspace'}" in made["notice"]
    assert c.get("/api/v1/accounts/carol", headers=auth).json()["status"] == "active"
    journal = c.get("/api/v1/journal", params={"target": "account/carol"}, headers=auth).json()
    assert [e["action"] for e in journal] == ["accounts.onboard"]
    assert (homes / "carol").read_bytes() == STRAY


def test_demotion_answers_201_with_a_notice_when_the_new_home_is_blocked(
        client: tuple[TestClient, dict[str, str]], homes: Path) -> None:
    c, auth = client
    (homes / "victim-sci").write_bytes(STRAY)
    r = c.post("/api/v1/accounts/victim/demote", json={"new_username": "victim-sci", "reason": "now an affiliate"},
               headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["username"] == "victim-sci" and "home not made" in r.json()["notice"]
    assert c.get("/api/v1/accounts/victim", headers=auth).json()["status"] == "departed"
    assert (homes / "victim-sci").read_bytes() == STRAY
