"""`kubectl logs` through the official client (AA2/AA3): ``KubeCluster.pod_log`` against the strict API server of
conftest.py, which answers the pod log endpoint as the API server does (its rules cited there)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from enclave.accounts import tokens
from enclave.accounts.types import AccountKind
from enclave.api.app import create_app
from enclave.api.service import Service
from enclave.cli import app
from enclave.cli.logs import parse_since
from enclave.cluster.kube import KubeCluster
from enclave.db import Database
from enclave.domain.logs import LogRequest
from enclave.errors import InputError, NotFound, PermissionDenied
from enclave.journal import query
from enclave.services.factory import BOOTSTRAP_ADMIN, Factory
from enclave.spec import EnclaveSpec, Role
from tests.cluster.conftest import ApiServer, pod_obj
from tests.local import map_me


@pytest.fixture
def logged(server: ApiServer) -> ApiServer:
    server.pods[("firefly", "ff")] = pod_obj("ff", "kub-005", namespace="firefly")
    two = pod_obj("qs", "kub-005", namespace="firefly")
    two["spec"]["containers"].append({"name": "sidecar", "image": "y"})
    server.pods[("firefly", "qs")] = two
    now = server.now
    server.logs[("firefly", "ff", "c")] = [(now - 3600, "started"), (now - 60, "serving"), (now - 5, "GET /")]
    server.logs[("firefly", "qs", "sidecar")] = [(now - 1, "sidecar up")]
    return server


def test_the_whole_log_of_the_only_container(kube: KubeCluster, logged: ApiServer) -> None:
    assert list(kube.pod_log(LogRequest("firefly", "ff"))) == ["started", "serving", "GET /"]
    method, path, _ = logged.requests[-1]
    assert (method, path, logged.queries[-1]) == ("GET", "/api/v1/namespaces/firefly/pods/ff/log", {})


def test_since_tail_container_and_follow_are_the_api_options(kube: KubeCluster, logged: ApiServer) -> None:
    request = LogRequest("firefly", "ff", container="c", since_seconds=120, tail_lines=1, follow=True)
    assert list(kube.pod_log(request)) == ["GET /"]  # the last of the two written in the last 120 s
    assert logged.queries[-1] == {"container": "c", "sinceSeconds": "120", "tailLines": "1", "follow": "true"}
    assert list(kube.pod_log(LogRequest("firefly", "ff", since_seconds=120))) == ["serving", "GET /"]
    assert list(kube.pod_log(LogRequest("firefly", "ff", tail_lines=0))) == []
    # Followed, the read may wait a day for a line, the connect no longer than any call's (REQUEST_TIMEOUT).
    followed, plain = logged.timeouts[0], logged.timeouts[1]
    assert (followed.connect_timeout, followed.read_timeout) == (10.0, 86400.0)
    assert (plain.connect_timeout, plain.read_timeout) == (10.0, 60.0)


def test_a_pod_with_two_containers_needs_one_named(kube: KubeCluster, logged: ApiServer) -> None:
    must = r"a container name must be specified for pod qs, choose one of: \[c sidecar\]"
    with pytest.raises(InputError, match=must):
        kube.pod_log(LogRequest("firefly", "qs"))
    with pytest.raises(InputError, match="container web is not valid for pod qs"):
        kube.pod_log(LogRequest("firefly", "qs", container="web"))
    assert list(kube.pod_log(LogRequest("firefly", "qs", container="sidecar"))) == ["sidecar up"]


def test_the_fake_refuses_log_options_it_does_not_implement(kube: KubeCluster, logged: ApiServer) -> None:
    # As for every endpoint: an option the fake does not model fails the test instead of being ignored.
    with pytest.raises(AssertionError, match="pod log with .*previous.* is not served"):
        kube.core.read_namespaced_pod_log("ff", "firefly", previous=True)


def test_no_such_pod(kube: KubeCluster, logged: ApiServer) -> None:
    with pytest.raises(NotFound, match="there is no pod firefly/gone"):
        kube.pod_log(LogRequest("firefly", "gone"))


def test_names_and_options_are_checked_before_anything_is_asked() -> None:
    bad = LogRequest("Fire_fly", "../nodes", container="A", since_seconds=0, tail_lines=-1)
    assert [p.where for p in bad.problems()] == ["namespace", "pod", "--container", "--since", "--tail"]
    assert not LogRequest("firefly", "ff-7d9c.x", container="c", since_seconds=1, tail_lines=0).problems()


# --- who may read: the service, the CLI and the API over the same fake cluster -----------------------------------

DEV, OTHER, SVC, SEC, SCI, GONE = "dev", "otherdev", "svcadmin", "secops", "sci", "gonedev"


@pytest.fixture
def enclave(tmp_path: Path, spec: EnclaveSpec, kube: KubeCluster, logged: ApiServer,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Factory]:
    """firefly's developer, a developer of qserv only, a Kubernetes service administrator (no namespace), security
    staff, a science user and a departed firefly developer; the live cluster is the strict fake."""
    db = Database(f"sqlite:///{tmp_path / 'enclave.db'}")
    db.migrate()
    f = Factory(spec, db)
    f.ensure_accounts()
    staff = ((DEV, [Role.DEVELOPER], ["firefly"]), (OTHER, [Role.DEVELOPER], ["qserv"]),
             (SVC, [Role.K8S_SERVICE_ADMIN], []), (SEC, [Role.SECURITY], ["firefly"]),
             (GONE, [Role.DEVELOPER], ["firefly"]))
    for name, roles, namespaces in staff:
        f.accounts.onboard(BOOTSTRAP_ADMIN, name, name=name, email=f"{name}@example.org", kind=AccountKind.STAFF,
                           roles=roles, namespaces=namespaces, reason="test")
    f.accounts.onboard(BOOTSTRAP_ADMIN, SCI, name="Sci", email="sci@example.org", kind=AccountKind.SCIENCE,
                       reason="test")
    f.accounts.depart(BOOTSTRAP_ADMIN, GONE, reason="left")
    monkeypatch.setattr(KubeCluster, "connect", classmethod(lambda cls, spec, **kw: kube))
    monkeypatch.setenv("ENCLAVE_DB", db.url)
    f.use_live_logs()
    yield f
    db.dispose()


def reads(f: Factory) -> list[tuple[str, str, bool, str]]:
    with f.db.session() as s:
        return [(e.actor, e.target, e.after["allowed"], e.reason) for e in query(s, action="logs.read")]


def test_the_namespaces_developers_read_its_logs_and_each_read_is_journaled(enclave: Factory) -> None:
    assert list(enclave.logs.read(DEV, LogRequest("firefly", "ff", tail_lines=2))) == ["serving", "GET /"]
    assert list(enclave.logs.read(SVC, LogRequest("firefly", "ff"))) == ["started", "serving", "GET /"]
    assert reads(enclave) == [(DEV, "pod/firefly/ff", True, "developer log read (AA2/AA3)"),
                              (SVC, "pod/firefly/ff", True, "developer log read (AA2/AA3)")]
    with enclave.db.session() as s:
        first = query(s, action="logs.read")[0]
        assert first.after == {"namespace": "firefly", "pod": "ff", "container": None, "since_seconds": None,
                               "tail_lines": 2, "follow": False, "allowed": True}


@pytest.mark.parametrize(("actor", "why"), [
    (OTHER, "may not read logs in firefly"),  # logs.read, but a developer of qserv only
    (SEC, "may not read logs in firefly"),  # bound in firefly (view), but no logs.read
    (SCI, "may not read logs in firefly"),
    (GONE, "may not read logs in firefly"),  # departed: no roles, no binding
])
def test_everyone_else_is_refused_and_the_refusal_is_journaled(enclave: Factory, logged: ApiServer, actor: str,
                                                               why: str) -> None:
    asked = len(logged.requests)
    with pytest.raises(PermissionDenied, match=why):
        enclave.logs.read(actor, LogRequest("firefly", "ff"))
    assert len(logged.requests) == asked  # the cluster was never asked
    [(who, target, allowed, reason)] = reads(enclave)
    assert (who, target, allowed) == (actor, "pod/firefly/ff", False) and reason.startswith("refused: ")


def test_only_application_namespaces_and_only_well_formed_requests(enclave: Factory) -> None:
    with pytest.raises(NotFound, match="kube-system is not an application namespace"):
        enclave.logs.read(SVC, LogRequest("kube-system", "etcd-master"))
    assert reads(enclave) == [(SVC, "pod/kube-system/etcd-master", False,
                               "refused: kube-system is not an application namespace of the spec")]
    with pytest.raises(InputError, match="--tail"):
        enclave.logs.read(DEV, LogRequest("firefly", "ff", tail_lines=-2))
    assert len(reads(enclave)) == 1  # a malformed request is not a read


def test_the_cli_reads_as_kubectl_logs_does(enclave: Factory) -> None:
    map_me(enclave.db, DEV, OTHER, by=BOOTSTRAP_ADMIN)  # local mode: the test's OS user may act as either
    runner = CliRunner()
    ok = runner.invoke(app, ["logs", "firefly", "ff", "--as", DEV, "--live", "--since", "2m", "--tail", "1"])
    assert ok.exit_code == 0, ok.output
    assert ok.output == "GET /\n"
    refused = runner.invoke(app, ["logs", "firefly", "ff", "--as", OTHER, "--live"])
    assert isinstance(refused.exception, PermissionDenied)
    bad = runner.invoke(app, ["logs", "firefly", "ff", "--as", DEV, "--live", "--since", "soon"])
    assert isinstance(bad.exception, InputError)
    assert [(a, ok_) for a, _, ok_, _ in reads(enclave)] == [(DEV, True), (OTHER, False)]


def test_since_parses_go_durations() -> None:
    assert [parse_since(t) for t in ("30s", "10m", "3h", "1h30m", None)] == [30, 600, 10800, 5400, None]
    for bad in ("", "5d", "-1s", "1.5h"):
        with pytest.raises(InputError):
            parse_since(bad)


def test_the_api_endpoint(enclave: Factory) -> None:
    with enclave.db.session() as s:
        dev, other = tokens.issue(s, DEV, DEV, ["*"], 600), tokens.issue(s, OTHER, OTHER, ["*"], 600)
        narrow = tokens.issue(s, DEV, DEV, ["data.read"], 600)
    with TestClient(create_app(Service(factory=enclave))) as client:
        got = client.get("/api/v1/namespaces/firefly/pods/ff/log?tailLines=2",
                         headers={"Authorization": f"Bearer {dev}"})
        assert (got.status_code, got.text) == (200, "serving\nGET /\n")
        assert got.headers["content-type"].startswith("text/plain")
        assert client.get("/api/v1/namespaces/firefly/pods/ff/log",
                          headers={"Authorization": f"Bearer {other}"}).status_code == 403
        # The account may, the token may not: refused and journaled all the same.
        assert client.get("/api/v1/namespaces/firefly/pods/ff/log",
                          headers={"Authorization": f"Bearer {narrow}"}).status_code == 403
        assert client.get("/api/v1/namespaces/firefly/pods/gone/log",
                          headers={"Authorization": f"Bearer {dev}"}).status_code == 404
    assert [(a, ok_) for a, _, ok_, _ in reads(enclave)] == [(DEV, True), (OTHER, False), (DEV, False), (DEV, True)]
