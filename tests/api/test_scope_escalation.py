"""A token scoped to accounts.manage grants no role (audit of identity and trust, finding 3).

docs/api.md: "No scope escalation" and `POST /accounts/{u}/roles` needs roles.grant. Onboarding and promoting take
a list of roles too: roles beyond the account kind's default (staff: developer; science: science-user) are a
grant, so they need roles.grant as well and are journaled as `roles.grant`.
"""

from __future__ import annotations

from enclave.journal import query
from tests.accounts.conftest import snapshot
from tests.api.conftest import ADMIN, World

NEWCOMER = {"username": "mallory", "name": "M", "email": "m@example.org", "kind": "staff", "reason": "x"}


def _narrow(world: World) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.token(ADMIN, ['accounts.manage'])}"}


def _grants(world: World, username: str) -> list[dict[str, object]]:
    with world.db.session() as s:
        return [e.after for e in query(s) if e.action == "roles.grant" and e.target == f"account/{username}"]


def test_promote_with_roles_needs_roles_grant(world: World) -> None:
    narrow = _narrow(world)
    before = snapshot(world.db)
    r = world.client.post("/api/v1/accounts/scipromo/promote", headers=narrow,
                          json={"reason": "x", "roles": ["sysadmin", "security", "k8s-cluster-admin"]})
    assert r.status_code == 403 and "roles.grant" in r.text, r.text
    assert snapshot(world.db) == before


def test_onboard_with_roles_needs_roles_grant(world: World) -> None:
    narrow = _narrow(world)
    before = snapshot(world.db)
    r = world.client.post("/api/v1/accounts", headers=narrow,
                          json={**NEWCOMER, "roles": ["sysadmin", "k8s-cluster-admin"]})
    assert r.status_code == 403 and "roles.grant" in r.text, r.text
    assert snapshot(world.db) == before


def test_the_kinds_default_role_is_no_grant(world: World) -> None:
    """accounts.manage onboards and promotes (seed §4): a staff account's default role is part of that."""
    r = world.client.post("/api/v1/accounts/scipromo/promote", headers=_narrow(world), json={"reason": "x"})
    assert r.status_code == 200 and r.json()["roles"] == ["developer"], r.text
    r = world.client.post("/api/v1/accounts", headers=_narrow(world), json={**NEWCOMER, "roles": ["developer"]})
    assert r.status_code == 201 and r.json()["roles"] == ["developer"], r.text
    assert _grants(world, "scipromo") == _grants(world, "mallory") == []


def test_roles_given_with_roles_grant_are_journaled_as_grants(world: World) -> None:
    r = world.client.post("/api/v1/accounts/scipromo/promote", headers=world.as_(ADMIN),
                          json={"reason": "x", "roles": ["developer", "security"]})
    assert r.status_code == 200 and r.json()["roles"] == ["developer", "security"], r.text
    assert _grants(world, "scipromo") == [{"roles": ["developer", "security"]}]
    r = world.client.post("/api/v1/accounts", headers=world.as_(ADMIN), json={**NEWCOMER, "roles": ["sysadmin"]})
    assert r.status_code == 201 and r.json()["roles"] == ["sysadmin"], r.text
    assert _grants(world, "mallory") == [{"roles": ["sysadmin"]}]
