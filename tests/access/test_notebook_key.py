"""While notebook batch tokens are on, the notebook namespace holds the HTCondor key that signs any account's token
(Secret enclave-notebook-key) and every pod's token Secret, and Kubernetes RBAC cannot keep them from a role that
reads Secrets. So a developer's membership there binds view (enclave-view, no Secrets), not edit, and says so;
everywhere else, and with tokens off, nothing changes (docs/batch.md, "Who can read them").

The expected bindings below are written out from that rule, not computed by it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from enclave.access.render import KEY_NARROWING, Subject, may_read_logs, narrowed, render_access
from enclave.accounts import storage, tokens
from enclave.accounts.types import AccountKind
from enclave.api.app import create_app
from enclave.api.service import Service
from enclave.db import Database
from enclave.services.factory import Factory
from enclave.spec.load import dump
from enclave.spec.models import BatchTokens, EnclaveSpec, Role
from tests.access.test_render import validate_all
from tests.accounts.conftest import ADMIN, onboard
from tests.local import map_me, use_database

NB = "jupyter-lsst"  # the LDF spec's notebook namespace; firefly, qserv and portal are its other namespaces
APP_NAMESPACES = [NB, "firefly", "qserv", "portal"]


def with_tokens(spec: EnclaveSpec, enabled: bool) -> EnclaveSpec:
    notebooks = spec.notebooks.model_copy(update={"batch_tokens": BatchTokens(enabled=enabled)})
    return spec.model_copy(update={"notebooks": notebooks})


SUBJECTS = [
    # a developer in the notebook namespace and in firefly
    Subject("dev", "staff", "active", frozenset({Role.DEVELOPER}), frozenset({NB, "firefly"})),
    # a Kubernetes service administrator (and developer) who also joined the notebook namespace
    Subject("ops", "staff", "active", frozenset({Role.K8S_SERVICE_ADMIN, Role.DEVELOPER}), frozenset({NB})),
    # a cluster administrator without a membership
    Subject("root", "staff", "active", frozenset({Role.K8S_CLUSTER_ADMIN}), frozenset()),
    # a plain member: staff, not a developer
    Subject("member", "staff", "active", frozenset({Role.SYSADMIN}), frozenset({NB, "qserv"})),
    # security, who views everywhere, and is a developer in the notebook namespace
    Subject("secdev", "staff", "active", frozenset({Role.SECURITY, Role.DEVELOPER}), frozenset({NB})),
]

EDIT = ("ClusterRole", "edit")
ADMIN_ROLE = ("ClusterRole", "admin")
VIEW = ("Role", "enclave-view")
NARROWED = {"enclave/narrowed": KEY_NARROWING, "enclave/narrowed-from": "edit"}

# (namespace, user) -> (binding name, roleRef kind and name, annotations): tokens off
OFF: dict[tuple[str, str], tuple[str, tuple[str, str], dict[str, str]]] = {
    (NB, "dev"): ("enclave-dev-edit", EDIT, {}),
    ("firefly", "dev"): ("enclave-dev-edit", EDIT, {}),
    **{(ns, "ops"): ("enclave-ops-admin", ADMIN_ROLE, {}) for ns in APP_NAMESPACES},
    **{(ns, "root"): ("enclave-root-admin", ADMIN_ROLE, {}) for ns in APP_NAMESPACES},
    (NB, "member"): ("enclave-member-view", VIEW, {}),
    ("qserv", "member"): ("enclave-member-view", VIEW, {}),
    (NB, "secdev"): ("enclave-secdev-edit", EDIT, {}),
    **{(ns, "secdev"): ("enclave-secdev-view", VIEW, {}) for ns in ("firefly", "qserv", "portal")},
}
# tokens on: the two developers' memberships of the notebook namespace bind view there, annotated; nothing else moves
ON = {
    **OFF,
    (NB, "dev"): ("enclave-dev-view", VIEW, NARROWED),
    (NB, "secdev"): ("enclave-secdev-view", VIEW, NARROWED),
}


def bindings(objects: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, str], tuple[str, tuple[str, str],
                                                                                      dict[str, str]]]:
    return {(ns, o["subjects"][0]["name"]): (o["metadata"]["name"], (o["roleRef"]["kind"], o["roleRef"]["name"]),
                                             o["metadata"].get("annotations", {}))
            for ns, docs in objects.items() for o in docs if o["kind"] == "RoleBinding"}


@pytest.mark.parametrize(("enabled", "expected"), [(False, OFF), (True, ON)], ids=["tokens off", "tokens on"])
def test_bindings_with_and_without_tokens(spec: EnclaveSpec, enabled: bool, expected: dict[Any, Any]) -> None:
    objects = render_access(with_tokens(spec, enabled), SUBJECTS)
    assert bindings(objects) == expected
    validate_all(spec, objects)  # the annotations are valid metadata for the API server too


def test_the_narrowed_binding_in_full(spec: EnclaveSpec) -> None:
    docs = render_access(with_tokens(spec, True), SUBJECTS)[NB]
    [dev] = [o for o in docs if o["kind"] == "RoleBinding" and o["subjects"][0]["name"] == "dev"]
    assert dev == {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "enclave-dev-view", "labels": {"app.kubernetes.io/managed-by": "enclave",
                                                            "enclave/user": "dev"},
                     "namespace": NB,
                     "annotations": {"enclave/narrowed": KEY_NARROWING, "enclave/narrowed-from": "edit"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "enclave-view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dev"}],
    }
    # the Role it names reads no Secret, and nothing in the namespace grants secrets, pods/exec or pod creation
    [view] = [o for o in docs if o["kind"] == "Role" and o["metadata"]["name"] == "enclave-view"]
    granted = {r for rule in view["rules"] for r in rule["resources"]}
    assert not granted & {"secrets", "pods/exec", "pods/attach"}
    assert all(rule["verbs"] == ["get", "list", "watch"] for rule in view["rules"])
    assert "enclave-notebook-key" in KEY_NARROWING and "edit comes back" in KEY_NARROWING


def test_the_report_names_each_narrowed_membership(spec: EnclaveSpec) -> None:
    assert narrowed(render_access(with_tokens(spec, False), SUBJECTS)) == []
    report = narrowed(render_access(with_tokens(spec, True), SUBJECTS))
    assert [(n.namespace, n.username, n.binding, n.instead_of, n.why) for n in report] == [
        (NB, "dev", "enclave-dev-view", "enclave-dev-edit", KEY_NARROWING),
        (NB, "secdev", "enclave-secdev-view", "enclave-secdev-edit", KEY_NARROWING),
    ]


def test_a_narrowed_developer_still_reads_logs_through_enclave(spec: EnclaveSpec) -> None:
    """``enclave logs`` (journaled) still serves the namespace's developers: a log is not a Secret."""
    dev = SUBJECTS[0]
    assert may_read_logs(dev, NB, with_tokens(spec, True)) and may_read_logs(dev, NB, with_tokens(spec, False))
    assert not may_read_logs(dev, "qserv", with_tokens(spec, True))


# --- joining, and the state that stays -------------------------------------------------------------------------


def rendered(db: Database, spec: EnclaveSpec) -> dict[Any, Any]:
    with db.session() as s:
        return bindings(render_access(spec, storage.subjects(s)))


def test_join_while_tokens_are_on_is_kept_and_told(db: Database, spec: EnclaveSpec, admin: str) -> None:
    on, off = with_tokens(spec, True), with_tokens(spec, False)
    onboard(db, spec, "dev", kind=AccountKind.STAFF)  # staff: developer by default
    onboard(db, spec, "member", kind=AccountKind.STAFF, roles=[Role.SYSADMIN])  # a sysadmin, not a developer
    accounts = Factory(on, db).accounts
    joined = accounts.join_namespace(ADMIN, "dev", NB, reason="hub work")
    assert joined.namespaces == [NB] and joined.notice == f"{NB}: {KEY_NARROWING}"
    # another application namespace: edit as ever, nothing to tell
    assert accounts.join_namespace(ADMIN, "dev", "firefly", reason="portal work").notice is None
    # a plain member binds view anyway: nothing narrowed
    member = accounts.join_namespace(ADMIN, "member", NB, reason="hub ops")
    assert member.notice is None and NB in member.namespaces
    assert rendered(db, on)[(NB, "dev")] == ("enclave-dev-view", VIEW, NARROWED)
    assert rendered(db, on)[("firefly", "dev")] == ("enclave-dev-edit", EDIT, {})
    assert rendered(db, on)[(NB, "member")] == ("enclave-member-view", VIEW, {})
    # the same database, tokens turned off: the membership was kept, so edit comes back
    assert rendered(db, off)[(NB, "dev")] == ("enclave-dev-edit", EDIT, {})
    assert accounts.show(ADMIN, "dev").namespaces == sorted([NB, "firefly"])


def test_join_while_tokens_are_off_says_nothing(db: Database, spec: EnclaveSpec, admin: str) -> None:
    onboard(db, spec, "dev", kind=AccountKind.STAFF)
    joined = Factory(with_tokens(spec, False), db).accounts.join_namespace(ADMIN, "dev", NB, reason="hub work")
    assert joined.notice is None
    assert rendered(db, with_tokens(spec, False))[(NB, "dev")] == ("enclave-dev-edit", EDIT, {})


def test_an_administrator_joining_is_not_narrowed(db: Database, spec: EnclaveSpec, admin: str) -> None:
    onboard(db, spec, "ops", kind=AccountKind.STAFF, roles=[Role.DEVELOPER, Role.K8S_SERVICE_ADMIN])
    joined = Factory(with_tokens(spec, True), db).accounts.join_namespace(ADMIN, "ops", NB, reason="hub admin")
    assert joined.notice is None
    assert rendered(db, with_tokens(spec, True))[(NB, "ops")] == ("enclave-ops-admin", ADMIN_ROLE, {})


def test_granting_developer_to_a_member_is_told(db: Database, spec: EnclaveSpec, admin: str) -> None:
    onboard(db, spec, "member", kind=AccountKind.STAFF, roles=[Role.SYSADMIN], namespaces=[NB])
    accounts = Factory(with_tokens(spec, True), db).accounts
    assert accounts.grant_role(ADMIN, "member", Role.SECURITY, reason="audits").notice is None
    granted = accounts.grant_role(ADMIN, "member", Role.DEVELOPER, reason="hub work")
    assert granted.notice == f"{NB}: {KEY_NARROWING}"


def test_the_cli_says_what_it_narrowed(db: Database, spec: EnclaveSpec, admin: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    spec_file = tmp_path / "tokens.yaml"
    spec_file.write_text(dump(with_tokens(spec, True)))
    onboard(db, spec, "dev", kind=AccountKind.STAFF, namespaces=["firefly"])
    use_database(monkeypatch, db.url, tmp_path)
    map_me(db)
    from enclave.cli import app
    runner = CliRunner()
    joined = runner.invoke(app, ["accounts", "join", "dev", NB, "--reason", "hub work", "--spec", str(spec_file),
                                 "--as", ADMIN])
    assert joined.exit_code == 0, joined.output
    assert f"dev joined {NB}" in joined.output and "narrowed:" in joined.output
    said = " ".join(joined.output.split())  # the console wraps long lines
    assert "binds view here, not edit" in said and "enclave-notebook-key" in said

    out = tmp_path / "out"
    done = runner.invoke(app, ["render", "access", "--out", str(out), "--spec", str(spec_file)])
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert any(line.startswith(f"narrowed: dev in {NB} (enclave-dev-view): a developer's membership") for line in lines)
    assert f"  kubectl -n {NB} delete rolebinding enclave-dev-edit --ignore-not-found" in lines
    assert "firefly" not in done.output.split("narrowed:", 1)[1]  # only the notebook namespace is named
    docs = list(yaml.safe_load_all((out / f"{NB}.yaml").read_text()))
    [dev] = [o for o in docs if o["kind"] == "RoleBinding" and o["subjects"][0]["name"] == "dev"]
    assert dev["metadata"]["name"] == "enclave-dev-view" and dev["metadata"]["annotations"] == NARROWED


def test_the_api_answers_with_the_notice(db: Database, spec: EnclaveSpec, admin: str) -> None:
    """`POST /accounts/{u}/namespaces` returns the account view, its notice included (docs/api.md)."""
    onboard(db, spec, "dev", kind=AccountKind.STAFF)
    with db.session() as s:
        token = tokens.issue(s, ADMIN, ADMIN, ["*"], 3600)
    with TestClient(create_app(Service(Factory(with_tokens(spec, True), db))), raise_server_exceptions=False) as client:
        r = client.post("/api/v1/accounts/dev/namespaces", json={"namespace": NB, "reason": "hub work"},
                        headers={"Authorization": f"Bearer {token}"})
    assert r.status_code in (200, 201), r.text
    assert r.json()["namespaces"] == [NB] and r.json()["notice"] == f"{NB}: {KEY_NARROWING}"
