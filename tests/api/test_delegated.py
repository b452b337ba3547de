"""Through the API (issue 16): a token a sysadmin issued on someone's behalf cannot be the second pair of eyes
of the image two-person rule (seed §10); the holder's own token can."""

from __future__ import annotations

from enclave.journal import query
from enclave.spec import Role
from tests.api.conftest import ADMIN, STAFF_ROLE_USERS, World, pinned_image

SECURITY = STAFF_ROLE_USERS[Role.SECURITY]


def test_a_token_issued_on_the_approvers_behalf_is_refused(world: World) -> None:
    image = {"image": pinned_image("approve-me"), "reason": "scan clean"}
    issued = world.client.post("/api/v1/tokens", headers=world.as_(ADMIN),
                               json={"username": SECURITY, "scopes": ["*"], "ttl_seconds": 3600})
    assert issued.status_code in (200, 201), issued.text
    on_behalf = {"Authorization": f"Bearer {issued.json()['token']}"}
    with world.db.session() as s:
        before = len(query(s))
    r = world.client.post("/api/v1/ops/images/approve", headers=on_behalf, json=image)
    assert r.status_code == 403 and f"issued for '{SECURITY}' by '{ADMIN}'" in r.text, r.text
    with world.db.session() as s:
        assert len(query(s)) == before  # refused: nothing changed, nothing journaled
    listed = world.client.get(f"/api/v1/tokens?username={SECURITY}", headers=world.as_(ADMIN))
    assert any(t["on_behalf"] for t in listed.json()), listed.text
    r = world.client.post("/api/v1/ops/images/approve", headers=world.as_(SECURITY), json=image)
    assert r.status_code == 200 and r.json()["decided_by"] == SECURITY, r.text


def _on_behalf(world: World, holder: str, ttl_seconds: int = 3600) -> tuple[dict[str, str], dict[str, object]]:
    """A '*' token root issues for ``holder``: its header and the issue response."""
    r = world.client.post("/api/v1/tokens", headers=world.as_(ADMIN),
                          json={"username": holder, "scopes": ["*"], "ttl_seconds": ttl_seconds})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}, r.json()


def test_a_token_minted_with_an_on_behalf_token_is_still_on_behalf(world: World) -> None:
    """Audit finding 1: the on-behalf token of security asked POST /tokens for a year-long token, which was recorded
    as security's own and then approved an image root had submitted as the service admin."""
    image = {"image": pinned_image("approve-me"), "reason": "scan clean"}
    on_behalf, _ = _on_behalf(world, SECURITY)
    r = world.client.post("/api/v1/tokens", headers=on_behalf, json={"scopes": ["*"], "ttl_seconds": 31_000_000})
    assert r.status_code == 201, r.text
    minted = {"Authorization": f"Bearer {r.json()['token']}"}
    listed = world.client.get(f"/api/v1/tokens?username={SECURITY}", headers=world.as_(ADMIN)).json()
    child = next(t for t in listed if r.json()["token"].split("_")[1] == t["key"])
    assert (child["issued_by"], child["on_behalf"], child["delegated_by"]) == (SECURITY, True, ADMIN)
    with world.db.session() as s:
        before = len(query(s))
    r = world.client.post("/api/v1/ops/images/approve", headers=minted, json=image)
    assert r.status_code == 403 and f"issued for '{SECURITY}' by '{ADMIN}'" in r.text, r.text
    with world.db.session() as s:
        assert len(query(s)) == before


def test_a_child_token_expires_no_later_than_its_parent(world: World) -> None:
    """Gafaelfawr caps a derived token's expiry at its parent's (services/token_cache.py,
    ``_create_internal_token``: ``if token_data.expires and token_data.expires < expires: expires =
    token_data.expires``), and its audit flags "Token expires after its parent" (services/token.py)."""
    parent, issued = _on_behalf(world, SECURITY, ttl_seconds=60)
    child = world.client.post("/api/v1/tokens", headers=parent, json={"scopes": ["*"], "ttl_seconds": 366 * 86400})
    assert child.status_code == 201, child.text
    assert child.json()["expires_at"] <= issued["expires_at"]
    own = {"Authorization": f"Bearer {world.token(SECURITY, ['*'], ttl=120)}"}   # the holder's own token too
    r = world.client.post("/api/v1/tokens", headers=own, json={"scopes": ["*"], "ttl_seconds": 366 * 86400})
    listed = {t["key"]: t for t in world.client.get("/api/v1/tokens", headers=own).json()}
    mine = listed[r.json()["token"].split("_")[1]]
    assert r.json()["expires_at"] == listed[mine["parent"]]["expires_at"]


def test_revoking_a_token_ends_the_tokens_issued_with_it(world: World) -> None:
    """Gafaelfawr's ``TokenService.delete_token`` deletes a token's children with it (services/token.py)."""
    parent, issued = _on_behalf(world, SECURITY)
    child = world.client.post("/api/v1/tokens", headers=parent, json={"scopes": ["*"], "ttl_seconds": 600})
    grandchild = world.client.post("/api/v1/tokens", headers={"Authorization": f"Bearer {child.json()['token']}"},
                                   json={"scopes": ["journal.read"], "ttl_seconds": 600})
    assert grandchild.status_code == 201, grandchild.text
    key = str(issued["token"]).split("_")[1]
    assert world.client.delete(f"/api/v1/tokens/{key}?reason=leaked", headers=world.as_(ADMIN)).status_code == 200
    for token in (child.json()["token"], grandchild.json()["token"]):
        who = world.client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
        assert who.status_code == 401, who.text
    with world.db.session() as s:
        entry = [e for e in query(s) if e.action == "tokens.revoke"][-1]
    assert entry.after["children"] == [t.split("_")[1] for t in (child.json()["token"], grandchild.json()["token"])]


SVC = STAFF_ROLE_USERS[Role.K8S_SERVICE_ADMIN]
ON_BEHALF_NOTE = "[token issued on the actor's behalf by {issuer}]"
"""What ``enclave.db.core.origin_of`` appends to the reason of every entry made through such a token."""


def test_an_action_through_an_on_behalf_token_is_journaled_with_its_issuer(world: World) -> None:
    """Audit finding 2: root drained a node with a token issued for the service admin, and the journal named the
    service admin only. The holder stays the actor (their roles were used); the issuer is recorded with it, as local
    mode records the OS user (docs/accounts.md)."""
    as_svc, _ = _on_behalf(world, SVC)
    r = world.client.post("/api/v1/broker/actions", headers=as_svc,
                          json={"kind": "drain-node", "node": "kub-005", "reason": "maintenance"})
    assert r.status_code == 201 and r.json()["applied"], r.text
    # The next request, with the holder's own token, is the holder's act alone: nothing carries over.
    r = world.client.post("/api/v1/broker/actions", headers=world.as_(SVC),
                          json={"kind": "drain-node", "node": "kub-006", "reason": "maintenance"})
    assert r.status_code == 201 and r.json()["applied"], r.text
    with world.db.session() as s:
        drains = {e.target: e for e in query(s) if e.action == "broker.DrainNode"}
    by_root, own = drains["node/kub-005"], drains["node/kub-006"]
    assert (by_root.actor, by_root.reason) == (SVC, "maintenance " + ON_BEHALF_NOTE.format(issuer=ADMIN))
    assert (own.actor, own.reason) == (SVC, "maintenance")


def test_one_sysadmin_cannot_pass_the_two_person_rule_alone(world: World) -> None:
    """Audit finding 2: root granted itself security, submitted an image through a token issued for the service
    admin, and approved it with its own token — the submitter looked like another person. A submission through an
    on-behalf token is its issuer's act too (seed §10: the approver must be another person)."""
    image = {"image": pinned_image("one-person"), "reason": "scanned"}
    r = world.client.post(f"/api/v1/accounts/{ADMIN}/roles", headers=world.as_(ADMIN),
                          json={"role": "security", "reason": "on-call vetting"})
    assert r.status_code == 200, r.text
    as_svc, _ = _on_behalf(world, SVC)
    r = world.client.post("/api/v1/ops/images", headers=as_svc, json={**image, "reason": "new lab image"})
    assert r.status_code == 201, r.text
    assert (r.json()["submitted_by"], r.json()["submitted_delegated_by"]) == (SVC, ADMIN)
    with world.db.session() as s:
        before = len(query(s))
    r = world.client.post("/api/v1/ops/images/approve", headers=world.as_(ADMIN), json=image)
    assert r.status_code == 403 and f"'{ADMIN}' submitted" in r.text, r.text
    with world.db.session() as s:
        assert len(query(s)) == before
    r = world.client.post("/api/v1/ops/images/approve", headers=world.as_(SECURITY), json=image)
    assert r.status_code == 200 and r.json()["decided_by"] == SECURITY, r.text
