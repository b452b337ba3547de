"""Defects a review reproduced (/tmp/review-api), each with the result the docs or HTTP semantics call for."""

from __future__ import annotations

from enclave.journal import query
from enclave.spec import Role
from tests.accounts.conftest import snapshot
from tests.api.conftest import ADMIN, STAFF_ROLE_USERS, World

SECURITY = STAFF_ROLE_USERS[Role.SECURITY]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _key(token: str) -> str:
    return token.split("_")[1]


# --- 1. token management needs its scope beyond a token's own lineage ----------------------------------------


def test_a_token_without_permissions_cannot_revoke_its_accounts_other_tokens(world: World) -> None:
    """docs/api.md, "Scopes and roles": a token's scopes narrow what its account may do. A data.read token (the
    password a WebDAV client keeps) has no permission through the API, so it may not revoke the account's '*'
    token: 403, nothing changes, and the '*' token still works."""
    full = world.tokens[SECURITY]
    narrow = world.token(SECURITY, ["data.read"])
    before = snapshot(world.db)
    r = world.client.delete(f"/api/v1/tokens/{_key(full)}", headers=_bearer(narrow))
    assert r.status_code == 403 and r.json()["error"] == "PermissionDenied", r.text
    assert "accounts.manage" in r.json()["message"]
    assert snapshot(world.db) == before
    assert world.client.get("/api/v1/whoami", headers=_bearer(full)).status_code == 200


def test_a_token_cannot_revoke_its_parent_without_the_scope(world: World) -> None:
    """A child is revoked with its parent, not the other way round (docs/accounts.md, "Identity")."""
    parent = world.token(SECURITY, ["*"])
    child = world.client.post("/api/v1/tokens", headers=_bearer(parent),
                              json={"scopes": ["journal.read"], "ttl_seconds": 600}).json()["token"]
    r = world.client.delete(f"/api/v1/tokens/{_key(parent)}", headers=_bearer(child))
    assert r.status_code == 403, r.text
    assert world.client.get("/api/v1/whoami", headers=_bearer(parent)).status_code == 200


def test_a_token_may_always_revoke_itself_and_its_descendants(world: World) -> None:
    narrow = world.token(SECURITY, ["data.read"])
    child = world.client.post("/api/v1/tokens", headers=_bearer(narrow),
                              json={"scopes": ["data.read"], "ttl_seconds": 600})
    assert child.status_code == 201, child.text
    grandchild = world.client.post("/api/v1/tokens", headers=_bearer(child.json()["token"]),
                                   json={"scopes": ["data.read"], "ttl_seconds": 600}).json()["token"]
    r = world.client.delete(f"/api/v1/tokens/{_key(grandchild)}", headers=_bearer(narrow))
    assert r.status_code == 200, r.text
    r = world.client.delete(f"/api/v1/tokens/{_key(narrow)}", headers=_bearer(narrow))
    assert r.status_code == 200, r.text
    assert world.client.get("/api/v1/whoami", headers=_bearer(narrow)).status_code == 401
    assert world.client.get("/api/v1/whoami", headers=_bearer(child.json()["token"])).status_code == 401


def test_token_management_scope_revokes_any_token_of_the_account(world: World) -> None:
    """'*' or accounts.manage: the scope POST /tokens needs for another account, one rule for both."""
    for scope in ("*", "accounts.manage"):
        other = world.token(SECURITY, ["data.read"])
        r = world.client.delete(f"/api/v1/tokens/{_key(other)}", headers=_bearer(world.token(SECURITY, [scope])))
        assert r.status_code == 200, (scope, r.text)
    with world.db.session() as s:
        assert [e.actor for e in query(s) if e.action == "tokens.revoke"] == [SECURITY, SECURITY]


def test_issuing_follows_the_same_rule(world: World) -> None:
    """A narrow token may issue itself a child (no broader: docs/api.md "No scope escalation"), but not a token for
    another account, nor a broader one."""
    narrow = world.token(SECURITY, ["data.read"])
    r = world.client.post("/api/v1/tokens", headers=_bearer(narrow), json={"scopes": ["data.read"]})
    assert r.status_code == 201, r.text
    listed = world.client.get("/api/v1/tokens", headers=world.as_(SECURITY)).json()
    assert [t["parent"] for t in listed if t["key"] == _key(r.json()["token"])] == [_key(narrow)]
    for body in ({"scopes": ["*"]}, {"username": ADMIN, "scopes": ["data.read"]}):
        r = world.client.post("/api/v1/tokens", headers=_bearer(narrow), json=body)
        assert r.status_code == 403, (body, r.text)
