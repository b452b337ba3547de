"""`kubectl logs` through the official client (AA2/AA3): ``KubeCluster.pod_log`` against the strict API server of
conftest.py, which answers the pod log endpoint as the API server does (its rules cited there)."""

from __future__ import annotations

import pytest

from enclave.cluster.kube import KubeCluster
from enclave.domain.logs import LogRequest
from enclave.errors import InputError, NotFound
from tests.cluster.conftest import ApiServer, pod_obj


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


def test_a_pod_with_two_containers_needs_one_named(kube: KubeCluster, logged: ApiServer) -> None:
    must = r"a container name must be specified for pod qs, choose one of: \[c sidecar\]"
    with pytest.raises(InputError, match=must):
        kube.pod_log(LogRequest("firefly", "qs"))
    with pytest.raises(InputError, match="container web is not valid for pod qs"):
        kube.pod_log(LogRequest("firefly", "qs", container="web"))
    assert list(kube.pod_log(LogRequest("firefly", "qs", container="sidecar"))) == ["sidecar up"]


def test_no_such_pod(kube: KubeCluster, logged: ApiServer) -> None:
    with pytest.raises(NotFound, match="there is no pod firefly/gone"):
        kube.pod_log(LogRequest("firefly", "gone"))


def test_names_and_options_are_checked_before_anything_is_asked() -> None:
    bad = LogRequest("Fire_fly", "../nodes", container="A", since_seconds=0, tail_lines=-1)
    assert [p.where for p in bad.problems()] == ["namespace", "pod", "--container", "--since", "--tail"]
    assert not LogRequest("firefly", "ff-7d9c.x", container="c", since_seconds=1, tail_lines=0).problems()
