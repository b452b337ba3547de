"""Defects a review reproduced (/tmp/review-api), each with the result the docs or HTTP semantics call for."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from enclave.api.app import create_app
from enclave.api.server import ThreadedServer
from enclave.client.config import Context
from enclave.client.http import Api, error_from
from enclave.client.remote import Remote
from enclave.errors import Conflict, EnclaveError, ExternalError, IntegrityError, SpecError, exit_code
from enclave.journal import query
from enclave.services.broker import DrainOverrides, DrainTimedOut
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


# --- 2. datetimes that leave years 1-9999 in UTC are refused as input; any other failure keeps the one shape ----

EDGES = ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00")
"""Aware datetimes Python holds whose UTC conversion falls in year 0 or 10000."""


def _refused_naming(r: Any, field: str) -> None:
    """docs/api.md, "Errors": a value that fails validation is a 422 in the one JSON shape, naming the field."""
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["error"] == "InputError" and set(body) == {"error", "message", "problems"}, body
    assert any(p["where"].endswith(field) and "UTC" in p["what"] and "9999" in p["what"]
               for p in body["problems"]), body


def test_journal_bounds_out_of_range_in_utc_are_422(world: World) -> None:
    for param, value in (("since", EDGES[0]), ("until", EDGES[1]), ("since", EDGES[1]), ("until", EDGES[0])):
        r = world.client.get("/api/v1/journal", params={param: value}, headers=world.as_(ADMIN))
        _refused_naming(r, param)


def test_allocation_expiry_out_of_range_in_utc_is_422_and_changes_nothing(world: World) -> None:
    before = snapshot(world.db)
    for value in EDGES:
        allocation = {"proposal_id": "P-9", "expires": value}
        r = world.client.post("/api/v1/accounts", headers=world.as_(ADMIN), json={
            "username": "newsci", "name": "N", "email": "ns@example.org", "kind": "science", "reason": "r",
            "allocation": allocation})
        _refused_naming(r, "allocation.expires")
        r = world.client.post("/api/v1/accounts/sciexpired/renew", headers=world.as_(ADMIN),
                              json={"reason": "r", "allocation": allocation})
        _refused_naming(r, "allocation.expires")
    assert snapshot(world.db) == before


def test_the_edges_that_do_convert_are_accepted(world: World) -> None:
    for param, value in (("since", "0001-01-01T00:00:00-01:00"), ("until", "9999-12-31T23:59:59+01:00")):
        r = world.client.get("/api/v1/journal", params={param: value}, headers=world.as_(ADMIN))
        assert r.status_code == 200, r.text


def test_an_unexpected_failure_is_a_500_in_the_one_shape_and_logged(
        world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """docs/api.md, "Errors": every failure has one JSON shape. A bug is a 500 that tells the client nothing of its
    cause, while the server's log keeps the traceback."""
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret detail of the bug")

    monkeypatch.setattr(world.service.factory.tokens, "listing", broken)
    caplog.set_level(logging.ERROR, logger="enclave")
    r = world.client.get("/api/v1/tokens", headers=world.as_(ADMIN))
    assert r.status_code == 500, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error", "message", "problems"} and body["problems"], body
    assert all(set(p) == {"where", "what", "fix"} for p in body["problems"])
    assert "secret detail" not in r.text
    failed = [rec for rec in caplog.records if rec.exc_info and rec.exc_info[1] is not None]
    assert any("secret detail of the bug" in str(rec.exc_info[1]) for rec in failed if rec.exc_info)


# --- 3. the API client gives an error the exit code it has locally -----------------------------------------


def test_a_drain_that_times_out_has_the_same_exit_code_through_the_api(world: World) -> None:
    """docs/accounts.md: through a context, a refusal becomes the same enclave.errors exception — same message,
    same exit code — as a local one. A drain kubectl's --timeout ends is DrainTimedOut, an ExternalError: exit 7
    (API 502) locally, and so through the API client."""
    runner = world.service.runner
    assert runner is not None
    backend = runner.broker.backend
    backend.drain_left = lambda node: 3  # three pods a PodDisruptionBudget holds on the node
    user = STAFF_ROLE_USERS[Role.K8S_SERVICE_ADMIN]
    flags = DrainOverrides(timeout_seconds=1)
    with pytest.raises(EnclaveError) as local:
        runner.broker.drain_node(user, "kub-011", reason="lend", flags=flags)
    assert isinstance(local.value, DrainTimedOut) and exit_code(local.value) == 7
    server = ThreadedServer(create_app(world.service)).start()
    try:
        api = Api(Context(name="t", server=server.url, token=world.tokens[user], username=user))
        with pytest.raises(EnclaveError) as remote:
            Remote(api).broker.drain_node(user, "kub-010", reason="lend", flags=flags)
    finally:
        server.stop()
    assert isinstance(remote.value, ExternalError), type(remote.value)
    assert exit_code(remote.value) == exit_code(local.value) == 7
    assert str(remote.value).replace("kub-010", "kub-011").split("(journal entry")[0] == \
        str(local.value).split("(journal entry")[0]


def _reply(status: int, name: str) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", "http://enclave.test/api/v1/x"), json={
        "error": name, "message": "x: went wrong — fix: do y", "problems": [{"where": "x", "what": "went wrong",
                                                                             "fix": "do y"}]})


def test_an_error_name_the_client_does_not_know_falls_back_on_the_status() -> None:
    """A server newer than the client may name an error class the client lacks: the status still says which of
    docs/api.md's "Errors" rows it is, and so its exit code (docs/broker.md: 1 bad input, 3 not found, 4 refused,
    5 impossible transition; 7 an external system, API 502)."""
    for status, code in ((422, 1), (404, 3), (401, 4), (403, 4), (409, 5), (502, 7)):
        error = error_from(_reply(status, "ErrorOfANewerServer"))
        assert exit_code(error) == code, (status, type(error))
        assert str(error) == "x: went wrong — fix: do y"


def test_the_client_knows_every_error_class_by_name() -> None:
    for cls in (DrainTimedOut, IntegrityError, SpecError, Conflict):
        status = 502 if cls is DrainTimedOut else 400  # the name decides, whatever the status
        assert type(error_from(_reply(status, cls.__name__))) is cls


# --- 4. the latency metric is labelled by the matched route's template ------------------------------------------


def _routes_counted(world: World) -> dict[str, float]:
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(world.client.get("/metrics").text):
        if family.name == "enclave_api_request_seconds":
            for sample in family.samples:
                if sample.name.endswith("_count"):
                    route = sample.labels["route"]
                    counts[route] = counts.get(route, 0) + sample.value
    return counts


def test_a_parameter_equal_to_a_literal_segment_keeps_the_routes_template(world: World) -> None:
    """docs/api.md, "Metrics": enclave_api_request_seconds is labelled by route template, never by raw path. The
    templates are the routes' own, `GET /accounts/{u}` and `GET /nodes/{name}` under /api/v1, whatever the value."""
    for path in ("/api/v1/accounts/accounts", "/api/v1/accounts/v1", "/api/v1/accounts/api", "/api/v1/accounts/root"):
        world.client.get(path, headers=world.as_(ADMIN))
    world.client.get("/api/v1/nodes/nodes", headers=world.as_(ADMIN))
    counts = _routes_counted(world)
    assert counts.get("/api/v1/accounts/{username}") == 4, counts
    assert counts.get("/api/v1/nodes/{name}") == 1, counts
    assert not any("{username}/" in r or r.startswith("/{") or "/api/{" in r for r in counts), counts


def test_paths_no_route_matched_share_one_label(world: World) -> None:
    """A label value per unknown path would grow without bound (prometheus.io, "Use labels": do not use
    unbounded label values such as user IDs): every unmatched path counts under one fixed label."""
    for i in range(5):
        assert world.client.get(f"/api/v1/no-such-thing-{i}/x", headers=world.as_(ADMIN)).status_code == 404
    counts = _routes_counted(world)
    assert counts.get("unmatched") == 5, counts
    assert not any("no-such-thing" in r for r in counts), counts
