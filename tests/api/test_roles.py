"""Every endpoint as every actor role: allowed where the role table grants it, refused (403) elsewhere, and a
refusal changes nothing — neither the database (every table, including the journal) nor the backend."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from enclave.access.permissions import ROLE_PERMISSIONS, Permission
from enclave.accounts.tokens import DATA_READ
from enclave.db import Base
from enclave.services.local import os_user
from enclave.spec import Role
from tests.api.conftest import World, pinned_image, role_user
from tests.local import map_me, use_database

SOON_TAI = time.time() + 600 + 37.0
"""A visit's startTime (TAI Unix seconds) ten minutes from now: a push is refused outside now − 1 day … + 7 days."""

P = Permission


@dataclass(frozen=True)
class Call:
    name: str
    method: str
    path: str | Callable[[World, str], str]
    body: dict[str, Any] | None = None
    needs: Permission | tuple[Permission, ...] | None = None
    """None: any authenticated account may call it; a tuple: it needs all of them."""
    ok: tuple[int, ...] = (200,)
    any_of: tuple[Permission, ...] = ()
    """Alternatively: it needs at least one of these."""
    changes: bool | None = None
    """Whether success changes state; default: every method but GET does."""
    journals_refusal: str | None = None
    """A refusal writes exactly one journal entry of this action (and changes nothing else)."""

    @property
    def writes(self) -> bool:
        return self.method != "GET" if self.changes is None else self.changes


def other_token_key(world: World, user: str) -> str:
    return world.tokens["victim" if "victim" in world.tokens else "root"].split("_")[1]


CALLS = [
    Call("whoami", "GET", "/whoami"),
    Call("status", "GET", "/status"),
    Call("history", "GET", "/history"),
    Call("pools", "GET", "/pools"),
    Call("nodes", "GET", "/nodes"),
    Call("node", "GET", "/nodes/condor-001"),
    Call("own account", "GET", lambda w, u: f"/accounts/{u}"),
    Call("own tokens", "GET", "/tokens"),
    Call("issue own token", "POST", "/tokens", {"scopes": ["*"], "ttl_seconds": 600}, ok=(201,)),
    Call("broker status", "GET", "/broker/status"),
    Call("broker plan", "GET", "/broker/plan"),
    Call("broker actions", "GET", "/broker/actions"),
    Call("upgrade plan", "GET", "/ops/upgrade-plan"),
    Call("images", "GET", "/ops/images"),
    Call("security report", "GET", "/ops/security-report"),
    Call("twin scenarios", "GET", "/twin/scenarios"),
    Call("start twin run", "POST", "/twin/runs",
         {"scenario": "one-night", "policy": "static", "duration_hours": 0.25}, ok=(202,), changes=False),
    Call("twin runs", "GET", "/twin/runs"),
    Call("twin run", "GET", "/twin/runs/1"),
    Call("submit image", "POST", "/ops/images", {"image": pinned_image("new-one"), "reason": "release"},
         any_of=(P.SERVICES_DEPLOY, P.CLUSTER_SYSTEM, P.IMAGES_VET), ok=(201,)),
    Call("approve image", "POST", "/ops/images/approve", {"image": pinned_image("approve-me"), "reason": "clean"},
         needs=P.IMAGES_VET),
    Call("reject image", "POST", "/ops/images/reject", {"image": pinned_image("reject-me"), "reason": "CVE"},
         needs=P.IMAGES_VET),
    Call("journal", "GET", "/journal", needs=P.JOURNAL_READ),
    Call("journal verify", "GET", "/journal/verify", needs=P.JOURNAL_READ),
    Call("observing schedule", "GET", "/broker/schedule", needs=P.JOURNAL_READ),
    Call("push observing schedule", "POST", "/broker/schedule",
         {"schedule": {"visits": [{"groupId": "v0", "startTime": SOON_TAI, "duration": 33.0, "instrument": "LSSTCam"}]},
          "reason": "tonight"}, needs=P.BATCH_RELABEL, ok=(201,)),
    Call("list accounts", "GET", "/accounts", needs=P.ACCOUNTS_MANAGE),
    Call("other account", "GET", "/accounts/victim", needs=P.ACCOUNTS_MANAGE),
    Call("other tokens", "GET", "/tokens?username=victim", needs=P.ACCOUNTS_MANAGE),
    Call("notebook options", "GET", "/notebooks/options", needs=P.NOTEBOOKS_SPAWN),
    Call("notebook validate", "POST", "/notebooks/validate", {"size": "small"}, needs=P.NOTEBOOKS_SPAWN,
         changes=False),
    Call("onboard", "POST", "/accounts", {"username": "newbie", "name": "New Person", "email": "new@example.org",
                                          "kind": "science", "reason": "joins",
                                          "allocation": {"proposal_id": "P-9"}}, needs=P.ACCOUNTS_MANAGE, ok=(201,)),
    Call("depart", "POST", "/accounts/victim/depart", {"reason": "left"}, needs=P.ACCOUNTS_MANAGE),
    # Allowed, it is a conflict here: victim is active and no running system is configured in this world
    # (tests/batch/test_reach.py carries a reach to the schedds).
    Call("reach", "POST", "/accounts/victim/reach", {"reason": "retry"}, needs=P.ACCOUNTS_MANAGE, ok=(409,),
         changes=False),
    # Logs in a namespace nobody here belongs to: logs.read and an administrator's binding in every application
    # namespace (k8s-service-admin; services.deploy stands for that binding). Allowed, it is a conflict here (no
    # cluster in this world: tests/cluster/test_logs.py reads the fake one); refused, it is journaled.
    Call("pod log", "GET", "/namespaces/qserv/pods/qserv-0/log", needs=(P.LOGS_READ, P.SERVICES_DEPLOY),
         ok=(409,), journals_refusal="logs.read"),
    Call("expire", "POST", "/accounts/scivictim/expire", {"reason": "ended"}, needs=P.ACCOUNTS_MANAGE),
    Call("renew", "POST", "/accounts/sciexpired/renew",
         {"reason": "new proposal",
          "allocation": {"proposal_id": "P-10", "quota_gib": 200, "expires": "2030-01-31T00:00:00Z"}},
         needs=P.ACCOUNTS_MANAGE),
    Call("promote", "POST", "/accounts/scipromo/promote", {"reason": "hired"}, needs=P.ACCOUNTS_MANAGE),
    Call("demote", "POST", "/accounts/victim/demote", {"reason": "contract ended", "new_username": "victim2",
                                                       "allocation": {"proposal_id": "P-11"}},
         needs=P.ACCOUNTS_MANAGE, ok=(201,)),
    Call("grow quota", "POST", "/accounts/victim/quota", {"reason": "big proposal", "quota_gib": 500},
         needs=P.ACCOUNTS_MANAGE),
    Call("correct quota", "PUT", "/accounts/victim/quota", {"reason": "typo", "quota_gib": 50},
         needs=P.ACCOUNTS_MANAGE),
    Call("join namespace", "POST", "/accounts/victim/namespaces", {"namespace": "firefly", "reason": "team"},
         needs=P.ACCOUNTS_MANAGE),
    Call("leave namespace", "DELETE", "/accounts/victim/namespaces/qserv?reason=moved", needs=P.ACCOUNTS_MANAGE),
    Call("grant role", "POST", "/accounts/victim/roles", {"role": "security", "reason": "joins security"},
         needs=P.ROLES_GRANT),
    Call("revoke role", "DELETE", "/accounts/victim/roles/developer?reason=changed", needs=P.ROLES_GRANT),
    Call("token for other", "POST", "/tokens", {"username": "victim", "scopes": ["*"]}, needs=P.ACCOUNTS_MANAGE,
         ok=(201,)),
    Call("revoke other's token", "DELETE", lambda w, u: f"/tokens/{w.tokens['root'].split('_')[1]}",
         needs=P.ACCOUNTS_MANAGE),
    Call("relabel (BCS 1/2)", "POST", "/broker/actions",
         {"kind": "relabel", "startd": "condor-001", "to_pool": "general", "reason": "BCS 2 by hand"},
         needs=P.BATCH_RELABEL, ok=(201,)),
    Call("start htcondor (BCS 5)", "POST", "/broker/actions",
         {"kind": "start-htcondor", "node": "kub-017", "pool": "prompt", "reason": "BCS 5 by hand"},
         needs=P.BATCH_RELABEL, ok=(201,)),
    Call("drain startd", "POST", "/broker/actions",
         {"kind": "drain-startd", "startd": "condor-002", "reason": "maintenance"}, needs=P.BATCH_RELABEL,
         ok=(201,)),
    Call("deploy pods (BCS 4)", "POST", "/broker/actions",
         {"kind": "deploy-pods", "node": "kub-001", "pool": "prompt", "count": 2, "cores_per_pod": 8,
          "memory_mib_per_pod": 16384, "reason": "BCS 4 by hand"}, needs=P.BATCH_PODS, ok=(201,)),
    Call("delete pods (BCS 3)", "POST", "/broker/actions",
         {"kind": "delete-pods", "pods": ["kub-003-htcondor-1"], "reason": "BCS 3 by hand"}, needs=P.BATCH_PODS,
         ok=(201,)),
    Call("drain node (BCS 5)", "POST", "/broker/actions",
         {"kind": "drain-node", "node": "kub-002", "reason": "BCS 5 by hand"}, needs=P.BATCH_PODS, ok=(201,)),
    Call("return node", "POST", "/broker/actions",
         {"kind": "return-node", "node": "kub-017", "reason": "give back"}, needs=(P.BATCH_PODS, P.BATCH_RELABEL),
         ok=(201,)),
]


def fingerprint(world: World, *, journal: bool = True) -> tuple[Any, ...]:
    """Every row of every table (the journal's unless told not to), plus the backend's whole state and the
    runner's action count."""
    tables = [t for t in Base.metadata.sorted_tables if journal or not t.name.startswith("journal")]
    with world.db.engine.connect() as c:
        rows = tuple(tuple(map(tuple, c.execute(sa.select(t)).all())) for t in tables)
    runner = world.service.runner
    assert runner is not None
    return rows, runner.observe(), runner.actions_total


def _journal(world: World) -> list[tuple[str, str]]:
    with world.db.engine.connect() as c:
        rows = c.execute(sa.text("SELECT action, actor FROM journal_entries ORDER BY seq"))
        return [(r.action, r.actor) for r in rows]


def needs(call: Call) -> tuple[Permission, ...]:
    return () if call.needs is None else call.needs if isinstance(call.needs, tuple) else (call.needs,)


def allowed(role: Role, call: Call) -> bool:
    held = ROLE_PERMISSIONS[role]
    return all(p in held for p in needs(call)) and (not call.any_of or any(p in held for p in call.any_of))


def _request(world: World, call: Call, user: str) -> Any:
    path = call.path(world, user) if callable(call.path) else call.path
    return world.client.request(call.method, f"/api/v1{path}", json=call.body, headers=world.as_(user))


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_refused_calls_change_nothing(world: World, role: Role) -> None:
    """Refusals change nothing, so one world serves every refused call of a role; the state is compared after
    each call to name the first one that leaks."""
    user = role_user(role)
    for call in CALLS:
        if allowed(role, call):
            continue
        before, entries = fingerprint(world, journal=not call.journals_refusal), _journal(world)
        r = _request(world, call, user)
        assert r.status_code == 403, (call.name, r.status_code, r.text)
        body = r.json()
        assert body["error"] == "PermissionDenied" and body["problems"][0]["fix"], body
        assert fingerprint(world, journal=not call.journals_refusal) == before, f"refused {call.name} changed state"
        if call.journals_refusal:
            added = _journal(world)[len(entries):]
            assert [(a, actor) for a, actor in added] == [(call.journals_refusal, user)], call.name


@pytest.mark.parametrize("call", [c for c in CALLS if (needs(c) or c.any_of) and any(allowed(r, c) for r in Role)],
                         ids=lambda c: c.name)
def test_a_token_scoped_away_from_what_a_call_needs_is_refused(world: World, call: Call) -> None:
    """An account whose roles allow the call, with a token of scope data.read alone (no permission of the role
    table), is refused, and nothing changes but the refusal's journal entry where a refusal is journaled: a scope
    only narrows (docs/api.md, "No scope escalation"). Each route's own scope check is what refuses it — the
    service checks roles, which allow it (a mutation round, stop 57, removed route checks and no test failed)."""
    role = next(r for r in Role if allowed(r, call))
    user = role_user(role)
    token = world.token(user, [DATA_READ])
    path = call.path(world, user) if callable(call.path) else call.path
    before, entries = fingerprint(world, journal=not call.journals_refusal), _journal(world)
    r = world.client.request(call.method, f"/api/v1{path}", json=call.body,
                             headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403, (call.name, role.value, r.status_code, r.text)
    assert "scopes" in r.json()["problems"][0]["what"], r.text
    assert fingerprint(world, journal=not call.journals_refusal) == before, f"{call.name}: the refusal changed state"
    if call.journals_refusal:
        assert _journal(world)[len(entries):] == [(call.journals_refusal, user)], call.name


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_allowed_reads(world: World, role: Role) -> None:
    user = role_user(role)
    for call in CALLS:
        if not call.writes and allowed(role, call):
            r = _request(world, call, user)
            assert r.status_code in call.ok, (call.name, r.status_code, r.text)


WRITES = [(call, role) for call in CALLS if call.writes for role in Role if allowed(role, call)]


@pytest.mark.parametrize(("call", "role"), WRITES, ids=lambda x: x.name if isinstance(x, Call) else x.value)
def test_allowed_write(world: World, call: Call, role: Role) -> None:
    before = fingerprint(world)
    r = _request(world, call, role_user(role))
    assert r.status_code in call.ok, (r.status_code, r.text)
    assert fingerprint(world) != before, f"{call.name} succeeded but changed nothing"


def test_every_role_is_refused_somewhere_and_allowed_somewhere() -> None:
    for role in Role:
        assert any(allowed(role, c) and (needs(c) or c.any_of) for c in CALLS), role
        assert any(not allowed(role, c) for c in CALLS), role


PROBES = ("/api/v1/health", "/api/v1/ready")
"""The kubelet's probes: answered without a token, as the kubelet sends none."""


def test_every_route_is_in_the_matrix(world: World) -> None:
    """A new endpoint must be added to CALLS, so no route escapes the role tests."""
    schema = world.client.get("/api/v1/openapi.json").json()
    tried = set()
    for call in CALLS:
        path = call.path(world, "x") if callable(call.path) else call.path
        tried.add((call.method, path.split("?")[0]))
    for route, methods in schema["paths"].items():
        for method in methods:
            concrete = any(m == method.upper() and _matches(route.removeprefix("/api/v1"), p) for m, p in tried)
            assert concrete or route in PROBES, f"{method.upper()} {route} is not in CALLS"


def _matches(template: str, path: str) -> bool:
    t, p = template.split("/"), path.split("/")
    return len(t) == len(p) and all(a == b or a.startswith("{") for a, b in zip(t, p, strict=True))


def test_allowed_writes_are_journaled_as_the_caller(world: World) -> None:
    r = world.client.post("/api/v1/broker/actions", headers=world.as_("htcondoradmin"),
                          json={"kind": "relabel", "startd": "condor-001", "to_pool": "general", "reason": "why"})
    assert r.status_code == 201, r.text
    entries = world.client.get("/api/v1/journal?limit=1", headers=world.as_("root")).json()
    assert entries[0]["actor"] == "htcondoradmin" and entries[0]["action"] == "broker.Relabel"
    assert entries[0]["target"] == "startd/condor-001" and entries[0]["reason"] == "why"
    assert world.client.get("/api/v1/journal/verify", headers=world.as_("root")).json()["ok"] is True


def test_return_node_needs_both_administrators_roles(world: World) -> None:
    """Giving a node back stops HTCondor (HTCondor admin) and takes the broker's taint off (service admin): one person
    holding both roles may do it alone; the journal names them."""
    body = {"kind": "return-node", "node": "kub-017", "reason": "give back"}
    assert world.client.post("/api/v1/broker/actions", json=body,
                             headers=world.as_("htcondoradmin")).status_code == 403
    r = world.client.post("/api/v1/accounts/k8sserviceadmin/roles", headers=world.as_("root"),
                          json={"role": "htcondor-admin", "reason": "covers both halves"})
    assert r.status_code == 200, r.text
    r = world.client.post("/api/v1/broker/actions", json=body, headers=world.as_("k8sserviceadmin"))
    assert r.status_code == 201 and r.json()["applied"] is True
    last = world.client.get("/api/v1/journal?limit=1", headers=world.as_("root")).json()[0]
    assert last["actor"] == "k8sserviceadmin" and last["action"] == "broker.ReturnNode"


def test_action_already_in_effect_is_not_journaled_again(world: World) -> None:
    body = {"kind": "drain-node", "node": "kub-017", "reason": "already draining"}
    before = world.client.get("/api/v1/journal/verify", headers=world.as_("root")).json()["entries"]
    r = world.client.post("/api/v1/broker/actions", json=body, headers=world.as_("k8sserviceadmin"))
    assert r.status_code == 201 and r.json()["applied"] is False
    assert world.client.get("/api/v1/journal/verify", headers=world.as_("root")).json()["entries"] == before


def test_api_and_cli_journal_a_change_the_same_way(world: World, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    """Both go through enclave.accounts.lifecycle: the same action, target, actor and before/after shape."""
    from typer.testing import CliRunner

    from enclave.cli import app

    r = world.client.post("/api/v1/accounts/victim/quota", headers=world.as_("root"),
                          json={"quota_gib": 300, "reason": "via API"})
    assert r.status_code == 200, r.text
    use_database(monkeypatch, world.db.url, tmp_path)
    map_me(world.db)  # the CLI acts in local mode: the test's OS user is mapped to root
    done = CliRunner().invoke(app, ["accounts", "grow-quota", "victim", "--quota", "400", "--as", "root",
                                    "--reason", "via CLI"])
    assert done.exit_code == 0, done.output
    via_api, via_cli = reversed(world.client.get("/api/v1/journal?action=accounts.grow-quota&limit=2",
                                                 headers=world.as_("root")).json())
    # Local mode also names the OS user who acted (enclave.services.local); the API, the token's account only.
    assert via_api["reason"] == "via API" and via_cli["reason"] == f"via CLI [{os_user().origin}]"
    for key in ("action", "target", "actor"):
        assert via_api[key] == via_cli[key]
    assert set(via_api["after"]) == set(via_cli["after"])
    assert via_cli["before"]["quota_gib"] == via_api["after"]["quota_gib"] == 300
