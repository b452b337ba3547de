"""A departed, demoted or expired account loses its Kubernetes RoleBindings at once (seed §4: staff "no longer part
of the project lose all access to the K8s cluster"), not only when an operator applies with ``--prune``: the reach
step "revoke bindings" (``domain.reach.RULES``) through ``KubeCluster.revoke_bindings``, against the strict API
server of conftest.py, whose rolebinding routes select by label as the API server does and answer 404 for a binding
that is gone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from enclave.access.render import MANAGED, Grant, Subject, app_namespaces, binding, user_label
from enclave.accounts.types import AccountKind
from enclave.cli import app
from enclave.cluster.kube import KubeCluster
from enclave.db import Database
from enclave.domain.reach import Status
from enclave.errors import ExternalError
from enclave.journal import query
from enclave.services.factory import BOOTSTRAP_ADMIN, Factory
from enclave.spec import EnclaveSpec
from tests.local import map_me

from .conftest import ApiServer, Refused, label_selector

STAFF = ("alice", "dev_ops", "bob")


def put(server: ApiServer, doc: dict[str, Any]) -> None:
    server.rolebindings[(doc["metadata"]["namespace"], doc["metadata"]["name"])] = doc


def rendered(username: str, namespace: str, role: str = "edit") -> dict[str, Any]:
    """The binding `enclave render access` writes for ``username``."""
    return binding(Subject(username, "staff", "active"), namespace, Grant(role))


@pytest.fixture
def factory(tmp_path: Path, spec: EnclaveSpec, kube: KubeCluster, server: ApiServer) -> Iterator[Factory]:
    """Staff alice, dev_ops and bob, science carol; each staff member bound in every application namespace, carol
    in none (science users get no bindings). Transitions reach the fake cluster's RBAC."""
    db = Database(f"sqlite:///{tmp_path / 'enclave.db'}")
    db.migrate()
    f = Factory(spec, db)
    f.ensure_accounts()
    for name in (*STAFF, "carol"):
        kind = AccountKind.SCIENCE if name == "carol" else AccountKind.STAFF
        f.accounts.onboard(BOOTSTRAP_ADMIN, name, name=name, email=f"{name.replace('_', '')}@example.org", kind=kind,
                           reason="test")
    for ns in app_namespaces(spec):
        for name in STAFF:
            put(server, rendered(name, ns))
    f.systems.cluster = kube  # what use_live_systems does on a live enclave
    yield f
    db.dispose()


def bound(server: ApiServer) -> set[tuple[str, str]]:
    """(namespace, user label) of every binding left."""
    return {(ns, b["metadata"]["labels"].get("enclave/user", "")) for (ns, _), b in server.rolebindings.items()}


def test_departure_deletes_the_persons_bindings_in_every_app_namespace_and_nobody_elses(
        factory: Factory, server: ApiServer, spec: EnclaveSpec) -> None:
    namespaces = app_namespaces(spec)
    # A binding of alice's that is not enclave's (someone applied their own, labelled alike): not ours to delete.
    own = rendered("alice", "firefly", "view")
    own["metadata"]["name"], own["metadata"]["labels"] = "alice-by-hand", {"enclave/user": "alice"}
    put(server, own)
    done = factory.accounts.depart(BOOTSTRAP_ADMIN, "alice", reason="left the project")
    assert done.reach is not None
    first = done.reach.outcomes[0]  # before the hub's tokens: no new kubectl session after the transition
    assert (first.system, first.where, first.action, first.status, first.count) == (
        "kubernetes", "cluster", "revoke bindings", Status.DONE, len(namespaces))
    assert bound(server) == {(ns, u) for ns in namespaces for u in ("bob", user_label("dev_ops"))} | {
        ("firefly", "alice")}
    deletes = [path for method, path, _ in server.requests if method == "DELETE"]
    assert deletes == [f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/enclave-alice-edit"
                       for ns in namespaces]
    with factory.db.session() as s:
        [entry] = query(s, action="accounts.reach")
        assert {"system": "kubernetes", "where": "cluster", "action": "revoke bindings", "status": "done",
                "count": len(namespaces)} in entry.after


def test_bindings_rendered_before_user_label_go_too(factory: Factory, server: ApiServer, spec: EnclaveSpec) -> None:
    # Until user_label, a binding's label was the username itself; 'dev_ops' is a valid label value, so such a
    # binding may still be in the cluster beside the one rendered now.
    old = rendered("dev_ops", "qserv", "view")
    old["metadata"]["name"], old["metadata"]["labels"] = "enclave-dev_ops-view", {**MANAGED, "enclave/user": "dev_ops"}
    put(server, old)
    done = factory.accounts.depart(BOOTSTRAP_ADMIN, "dev_ops", reason="left")
    assert done.reach is not None and done.reach.outcomes[0].count == len(app_namespaces(spec)) + 1
    assert not any(u in ("dev_ops", user_label("dev_ops")) for _, u in bound(server))


def test_departing_one_of_two_formerly_colliding_users_leaves_the_other(
        factory: Factory, server: ApiServer, spec: EnclaveSpec) -> None:
    """'a_b' rendered as 'a-b-<8 hex of its sha256>' ('a-b-648fa9b3'), the name and label of that valid username:
    departing 'a_b' deleted the other's bindings by the shared label (review of `render access`, test_collision).
    Now the two render apart, and a binding left from before — labelled 'a-b-648fa9b3', subject 'a_b' — still goes
    with 'a_b', while the other user's, under the same label, stays: the subject decides."""
    other = "a-b-" + hashlib.sha256(b"a_b").hexdigest()[:8]
    for name in ("a_b", other):
        factory.accounts.onboard(BOOTSTRAP_ADMIN, name, name=name, email=f"{name[-3:]}@example.org",
                                 kind=AccountKind.STAFF, reason="test")
    for ns in app_namespaces(spec):
        put(server, rendered("a_b", ns))
        put(server, rendered(other, ns))
    assert len({n for (ns, n) in server.rolebindings if ns == "firefly"}) == len(STAFF) + 2  # none overwrote another
    old = rendered("a_b", "qserv", "view")  # as the release before rendered it
    old["metadata"]["name"], old["metadata"]["labels"] = f"enclave-{other}-view", {**MANAGED, "enclave/user": other}
    put(server, old)
    done = factory.accounts.depart(BOOTSTRAP_ADMIN, "a_b", reason="left")
    assert done.reach is not None and done.reach.outcomes[0].count == len(app_namespaces(spec)) + 1
    left = {(ns, b["subjects"][0]["name"]) for (ns, _), b in server.rolebindings.items()}
    assert {(ns, other) for ns in app_namespaces(spec)} <= left and not any(u == "a_b" for _, u in left)
    assert all(b["metadata"]["labels"]["enclave/user"] == other for b in server.rolebindings.values()
               if b["subjects"][0]["name"] == other)


def test_expiry_and_demotion_revoke_bindings_too(factory: Factory, server: ApiServer, spec: EnclaveSpec) -> None:
    namespaces = app_namespaces(spec)
    new = factory.accounts.demote(BOOTSTRAP_ADMIN, "bob", new_username="bob2", reason="now an affiliate")
    assert new.reach is not None and new.reach.outcomes[0].count == len(namespaces)
    assert not any(u == "bob" for _, u in bound(server))
    put(server, rendered("carol", "portal", "view"))  # left from when carol held a role
    expired = factory.accounts.expire(BOOTSTRAP_ADMIN, "carol", reason="allocation ended")
    assert expired.reach is not None and expired.reach.outcomes[0].count == 1
    assert not any(u == "carol" for _, u in bound(server))


def test_a_refusal_is_reported_journaled_and_retried(factory: Factory, server: ApiServer, spec: EnclaveSpec,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    server.rbac_forbidden.add("qserv")  # the deploy RBAC not applied there yet
    done = factory.accounts.depart(BOOTSTRAP_ADMIN, "alice", reason="left")
    assert done.status == "departed" and done.reach is not None  # the transition stands
    [failed] = done.reach.failed
    assert failed.action == "revoke bindings" and "3 deleted" in (failed.error or "")
    assert "403" in (failed.error or "") and "qserv" in (failed.error or "")
    assert bound(server) >= {("qserv", "alice")} and ("firefly", "alice") not in bound(server)  # others went
    with factory.db.session() as s:
        assert [o["status"] for o in query(s, action="accounts.reach")[0].after if o["system"] == "kubernetes"] == [
            "failed"]
    server.rbac_forbidden.clear()
    # The retry through the CLI, in local mode on the server host: this process's factory reaches the fake cluster.
    monkeypatch.setenv("ENCLAVE_DB", factory.db.url)
    map_me(factory.db, BOOTSTRAP_ADMIN, by=BOOTSTRAP_ADMIN)
    monkeypatch.setattr(Factory, "use_live_systems", lambda self: setattr(self.systems, "cluster",
                                                                           factory.systems.cluster))
    out = CliRunner().invoke(app, ["accounts", "reach", "alice", "--live", "--as", BOOTSTRAP_ADMIN, "--reason",
                                   "RBAC applied"])
    assert out.exit_code == 0, out.output
    assert "kubernetes cluster: revoke bindings: 1" in out.output
    assert not any(u == "alice" for _, u in bound(server))
    again = factory.accounts.reach(BOOTSTRAP_ADMIN, "alice", reason="once more")
    assert again.outcomes[0].status == Status.DONE and again.outcomes[0].count == 0  # idempotent


def test_a_binding_gone_meanwhile_is_no_failure(kube: KubeCluster, server: ApiServer) -> None:
    put(server, rendered("alice", "firefly"))
    listed = server._list_rolebindings

    def gone_after_listing(namespace: str, **kw: Any) -> Any:  # someone's prune wins the race
        answer = listed(namespace, **kw)
        server.rolebindings.pop((namespace, "enclave-alice-edit"), None)
        return answer

    monkeypatch_route(server, "GET", gone_after_listing)
    assert kube.revoke_bindings("alice") == 0
    assert [c for c in server.requests if c[0] == "DELETE"]  # it was asked, and 404 taken as gone


def monkeypatch_route(server: ApiServer, method: str, handler: Any) -> None:
    server._routes = [(v, p, handler if v == method and "rolebindings" in p.pattern else h)
                      for v, p, h in server._routes]


def test_an_unanswered_server_is_an_external_error(kube: KubeCluster, server: ApiServer) -> None:
    server.unanswered = True
    with pytest.raises(ExternalError, match="did not answer"):
        kube.revoke_bindings("alice")


def test_the_fake_selects_by_label_as_the_api_server_does() -> None:
    match = label_selector("app.kubernetes.io/managed-by=enclave,enclave/user==alice")
    assert match({**MANAGED, "enclave/user": "alice"})
    assert not match({"enclave/user": "alice"}) and not match({**MANAGED, "enclave/user": "alice2"})
    assert label_selector("enclave/user!=alice")({}) and not label_selector("enclave/user!=alice")(
        {"enclave/user": "alice"})
    with pytest.raises(Refused) as refused:
        label_selector("enclave/user=bob-")
    assert refused.value.code == 400
    with pytest.raises(AssertionError, match="only k=v"):
        label_selector("enclave/user in (a,b)")
