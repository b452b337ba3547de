"""Health, identity, errors, authentication edge cases."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from enclave.accounts import lifecycle as accounts
from enclave.accounts import tokens
from enclave.cli import app
from enclave.cluster import deploy
from enclave.spec import Role
from tests.api.conftest import ADMIN, SCIENCE, STAFF_ROLE_USERS, World


def test_health_needs_no_token(world: World) -> None:
    assert world.client.get("/api/v1/health").json() == {"status": "ok"}


def test_whoami_names_roles_and_permissions(world: World) -> None:
    body = world.client.get("/api/v1/whoami", headers=world.as_(ADMIN)).json()
    assert body["username"] == ADMIN
    assert "sysadmin" in body["roles"] and "accounts.manage" in body["permissions"]


def test_an_any_of_check_pairs_the_scope_with_the_role_and_whoami_tells_the_tokens_permissions(world: World) -> None:
    """Review, stop 48. Submitting an image takes any of services.deploy, k8s.cluster-admin and images.vet
    (``ops.images.SUBMITTERS``); the route checked that the token's scopes hold one of them and the service that the
    account's roles give one, not that it is the same one: a service administrator's token scoped to images.vet
    (which that role does not give, access.permissions) submitted on the role's services.deploy."""
    from tests.api.conftest import pinned_image

    admin = STAFF_ROLE_USERS[Role.K8S_SERVICE_ADMIN]
    vet_only = {"Authorization": f"Bearer {world.token(admin, ['images.vet'])}"}
    r = world.client.post("/api/v1/ops/images", headers=vet_only, json={"image": pinned_image("scoped"), "reason": "r"})
    assert r.status_code == 403 and "share none of" in r.text
    assert world.client.get("/api/v1/whoami", headers=vet_only).json()["permissions"] == []
    deploy_scoped = {"Authorization": f"Bearer {world.token(admin, ['services.deploy'])}"}
    r = world.client.post("/api/v1/ops/images", headers=deploy_scoped,
                          json={"image": pinned_image("scoped"), "reason": "r"})
    assert r.status_code == 201
    assert world.client.get("/api/v1/whoami", headers=deploy_scoped).json()["permissions"] == ["services.deploy"]


def test_missing_token_is_401_with_challenge(world: World) -> None:
    r = world.client.get("/api/v1/whoami")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["error"] == "Unauthenticated" and r.json()["problems"][0]["fix"]


def test_malformed_tokens_are_401(world: World) -> None:
    for header in ("Bearer", "Bearer ", "Basic abc", "Bearer enc_x_y", "Bearer " + "a" * 5000, "token"):
        r = world.client.get("/api/v1/whoami", headers={"Authorization": header})
        assert r.status_code == 401, header


def test_unknown_token_is_401(world: World) -> None:
    good = world.tokens[ADMIN]
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    assert world.client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_expired_token_is_401(world: World) -> None:
    with world.db.session() as s:
        old = tokens.issue(s, ADMIN, ADMIN, ["*"], 60, now=datetime.now(UTC) - timedelta(hours=1))
    r = world.client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {old}"})
    assert r.status_code == 401 and "expired" in r.json()["message"]


def test_revocation_bites_on_the_next_request(world: World) -> None:
    token = world.token(ADMIN, ["*"])
    headers = {"Authorization": f"Bearer {token}"}
    assert world.client.get("/api/v1/whoami", headers=headers).status_code == 200
    key = token.split("_")[1]
    assert world.client.delete(f"/api/v1/tokens/{key}", headers=headers).status_code == 200
    r = world.client.get("/api/v1/whoami", headers=headers)
    assert r.status_code == 401 and "revoked" in r.json()["message"]


def test_departure_bites_on_the_next_request(world: World) -> None:
    user = "developer"
    assert world.client.get("/api/v1/whoami", headers=world.as_(user)).status_code == 200
    with world.db.session() as s:
        accounts.depart(s, ADMIN, user, reason="left the project")
    r = world.client.get("/api/v1/whoami", headers=world.as_(user))
    assert r.status_code == 401


def test_expired_science_account_loses_the_api(world: World) -> None:
    with world.db.session() as s:
        accounts.expire(s, ADMIN, SCIENCE, reason="allocation ended")
    assert world.client.get("/api/v1/whoami", headers=world.as_(SCIENCE)).status_code == 401


def test_scoped_token_cannot_exceed_its_scopes(world: World) -> None:
    narrow = {"Authorization": f"Bearer {world.token(ADMIN, ['journal.read'])}"}
    assert world.client.get("/api/v1/journal", headers=narrow).status_code == 200
    r = world.client.get("/api/v1/accounts", headers=narrow)
    assert r.status_code == 403 and "scopes" in r.json()["message"]
    r = world.client.post("/api/v1/tokens", headers=narrow, json={"scopes": ["*"]})
    assert r.status_code == 403


def test_unknown_route_is_404_json(world: World) -> None:
    r = world.client.get("/api/v1/nope", headers=world.as_(ADMIN))
    assert r.status_code == 404 and r.json()["error"] == "HTTPError"


def test_metrics_exposes_api_latency(world: World) -> None:
    world.client.get("/api/v1/health")
    text = world.client.get("/metrics").text
    assert 'enclave_api_request_seconds_count{method="GET",route="/api/v1/health",status="200"}' in text


def test_security_report_on_own_rendered_objects_passes(world: World) -> None:
    """Seed §14: enclave's own rendered objects pass every scored check of the shipped benchmark — once enclave's
    own image (render deploy) is vetted like any other (seed §10)."""
    digest = f"sha256:{'e' * 64}"
    tagged = deploy.image(world.spec)
    submitted = {"image": f"{tagged}@{digest}", "reason": "enclave release"}
    approved = {"image": f"{tagged.rsplit(':', 1)[0]}@{digest}", "reason": "scanned clean"}
    admin, security = STAFF_ROLE_USERS[Role.K8S_SERVICE_ADMIN], STAFF_ROLE_USERS[Role.SECURITY]
    r = world.client.post("/api/v1/ops/images", json=submitted, headers=world.as_(admin))
    assert r.status_code == 201, r.text
    r = world.client.post("/api/v1/ops/images/approve", json=approved, headers=world.as_(security))
    assert r.status_code == 200, r.text
    report = world.client.get("/api/v1/ops/security-report", headers=world.as_(SCIENCE)).json()
    assert report["summary"]["fail"] == 0, [r for r in report["results"] if r.get("status") == "fail"]
    assert report["summary"]["pass"] >= 10


def test_oversized_bodies_are_refused_before_reading(world: World) -> None:
    headers = world.as_(ADMIN)
    big = b'{"reason": "' + b"x" * (2 << 20) + b'"}'
    r = world.client.post("/api/v1/accounts/victim/depart", content=big,
                          headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["problems"]

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"x" * 65536

    r = world.client.post("/api/v1/accounts/victim/depart", content=chunks(),
                          headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert world.client.get("/api/v1/accounts/victim", headers=headers).json()["status"] == "active"


def test_malformed_json_is_a_clear_error(world: World) -> None:
    r = world.client.post("/api/v1/accounts/victim/depart", content=b'{"reason": ',
                          headers={**world.as_(ADMIN), "Content-Type": "application/json"})
    assert r.status_code in (400, 422) and r.json()["problems"]
    r = world.client.post("/api/v1/accounts/victim/depart", json={"reason": "x", "extra": 1},
                          headers=world.as_(ADMIN))
    assert r.status_code == 422 and any(p["where"].endswith("extra") for p in r.json()["problems"])


def test_pools_api_and_metrics_carry_memory_and_dominant_share(world: World) -> None:
    """Memory beside cores, per pool, in the pools API and in Prometheus (base unit bytes,
    https://prometheus.io/docs/practices/naming/#base-units); the fixture lends drp two 8-core pods."""
    observed = world.service.runner.observe()  # type: ignore[union-attr]
    pools = {p["name"]: p["now"] for p in world.client.get("/api/v1/pools", headers=world.as_(ADMIN)).json()}
    drp = [s for s in observed.startds if s.pool == "drp"]
    assert pools["drp"]["memory_mib"] == sum(s.memory_mib for s in drp)
    assert pools["drp"]["borrowed_pod_cores"] == 16
    assert pools["drp"]["standalone_cores"] == sum(s.cores for s in drp) - 16
    assert pools["drp"]["dominant_utilization"] == 0.0  # nothing runs in the projected backend
    assert pools["general"]["guarantee"] in ("held", "lent")
    text = world.client.get("/metrics").text
    line = next(x for x in text.splitlines() if x.startswith('enclave_pool_memory_bytes{pool="drp"}'))
    assert float(line.split()[-1]) == sum(s.memory_mib for s in drp) * 2**20
    assert 'enclave_pool_capacity_cores_by_source{pool="drp",source="pod"} 16.0' in text
    assert 'enclave_pool_utilization_ratio{pool="drp",resource="dominant"} 0.0' in text


ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_api_times_are_iso_8601_utc(world: World) -> None:
    """One time format in every payload: ISO 8601 in UTC to the second (RFC 3339's profile of it)."""
    h = world.as_(ADMIN)
    assert ISO_UTC.match(world.client.get("/api/v1/nodes", headers=h).json()["observed_at"])
    assert ISO_UTC.match(world.client.get("/api/v1/status", headers=h).json()["snapshot"]["now"])
    assert all(ISO_UTC.match(t) for t in world.client.get("/api/v1/history", headers=h).json()["t"])
    plan = world.client.get("/api/v1/broker/plan", headers=h).json()
    assert ISO_UTC.match(plan["observed_at"])
    world.client.post("/api/v1/broker/actions", headers=world.as_(ADMIN),
                      json={"kind": "drain-node", "node": "kub-005", "reason": "iso test"})
    for a in world.client.get("/api/v1/broker/actions", headers=h).json():
        assert ISO_UTC.match(a["at"]), a


def test_upgrade_plan_is_the_same_document_in_api_and_cli(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """One rendering of the plan (enclave.ops.report.plan_to_dict) for both front ends, from the same database
    (the CLI renders enclave's objects from it)."""
    monkeypatch.setenv("ENCLAVE_DB", world.db.url)
    api = world.client.get("/api/v1/ops/upgrade-plan", headers=world.as_(ADMIN)).json()
    cli = json.loads(CliRunner().invoke(app, ["upgrade", "plan", "-o", "json"]).stdout)
    assert api["current"] == cli["current"] and api["target"] == cli["target"]
    assert [s["to"] for s in api["steps"]] == [s["to"] for s in cli["steps"]]
