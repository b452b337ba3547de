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
