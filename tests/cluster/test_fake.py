"""The fake API server refuses what a Kubernetes API server refuses — through the official client, as the
adapter meets it. Each expected status comes from the Kubernetes rule cited, not from the fake's output."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from enclave.cluster.kube import KubeCluster
from enclave.errors import ExternalError
from tests.cluster.conftest import ApiServer, continue_token, pod_obj


@pytest.fixture
def core(kube: KubeCluster) -> k8s.CoreV1Api:
    return kube.core


def body(name: str = "ok", *, cpu: str = "1", namespace: str | None = None) -> dict[str, Any]:
    pod = pod_obj(name, "kub-001", namespace=namespace or "htcondor", cpu=cpu)
    del pod["status"]
    if namespace is None:
        del pod["metadata"]["namespace"]
    return pod


def refused(call: Any, *args: Any) -> tuple[int, str]:
    with pytest.raises(ApiException) as err:
        call(*args)
    return err.value.status, str(err.value.body)


def test_a_valid_pod_is_created_once(core: k8s.CoreV1Api, server: ApiServer) -> None:
    created = core.create_namespaced_pod("htcondor", body("htcondor-kub-001-1"))
    assert created.metadata.name == "htcondor-kub-001-1" and created.metadata.resource_version
    # api-conventions: create of a name that exists is 409 AlreadyExists.
    status, text = refused(core.create_namespaced_pod, "htcondor", body("htcondor-kub-001-1"))
    assert status == 409 and "AlreadyExists" in text


def test_names_must_be_dns1123_subdomains(core: k8s.CoreV1Api, server: ApiServer) -> None:
    # https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#dns-subdomain-names: lower case
    # alphanumerics, '-' and '.', alphanumeric at both ends, at most 253 characters.
    for bad in ("Bad_Name!", "UPPER", "-lead", "trail-", "a" * 254):
        status, text = refused(core.create_namespaced_pod, "htcondor", body(bad))
        assert status == 422 and "metadata.name: Invalid value" in text, bad
    good = ("a", "htcondor-kub-001-1", "a.b-c", "0a", "a" * 253)
    for name in good:
        core.create_namespaced_pod("htcondor", body(name))
    assert {name for _, name in server.pods} == set(good)


def test_bad_quantities_cannot_be_decoded(core: k8s.CoreV1Api, server: ApiServer) -> None:
    # https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/: <signedNumber><suffix>.
    # apimachinery parses quantities while decoding the body, so "lots" is a 400 BadRequest before any
    # validation — also for a pod whose name is invalid too (real Status: kubernetes-client/java#699).
    for name in ("ok", "Bad_Name!"):
        status, text = refused(core.create_namespaced_pod, "htcondor", body(name, cpu="lots"))
        assert status == 400 and "quantities must match the regular expression" in text
    for i, good in enumerate(("500m", "1.5", "2", "1e3", "4Gi")):
        core.create_namespaced_pod("htcondor", body(f"q-{i}", cpu=good))
    assert {name for _, name in server.pods} == {f"q-{i}" for i in range(5)}


def raw(server: ApiServer, method: str, path: str, payload: Any) -> tuple[int, dict[str, Any]]:
    """A request as a client that does not check bodies itself sends it (the official client refuses some
    schema violations before sending, with pydantic; kubectl --validate=false or another client does not)."""
    response = server.request(method, f"https://kube.example.org:6443{path}", body=json.dumps(payload))
    return response.status, json.loads(response.data)


def test_bodies_must_pass_the_openapi_schema(server: ApiServer) -> None:
    path = "/api/v1/namespaces/htcondor/pods"
    missing = body("no-container-name")
    del missing["spec"]["containers"][0]["name"]  # Container.name is required
    status, answer = raw(server, "POST", path, missing)
    assert (status, answer["reason"]) == (422, "Invalid") and "'name' is a required property" in answer["message"]
    wrong = body("wrong-type")
    wrong["spec"]["nodeName"] = ["kub-001"]  # a string in the schema: cannot be decoded
    status, answer = raw(server, "POST", path, wrong)
    assert (status, answer["reason"]) == (400, "BadRequest") and answer["message"].startswith("spec.nodeName")
    unknown = body("unknown-field")
    unknown["spec"]["nodeNmae"] = "kub-001"  # a misspelt field is no field of PodSpec
    status, answer = raw(server, "POST", path, unknown)
    assert status == 400 and answer["message"].startswith("strict decoding error")
    assert not server.pods


def test_namespaces_must_match_and_exist(core: k8s.CoreV1Api, server: ApiServer) -> None:
    # apiserver (rest.BeforeCreate): the object's namespace must be the one in the URL — 400.
    status, text = refused(core.create_namespaced_pod, "htcondor", body("p", namespace="jupyter-lsst"))
    assert status == 400 and "does not match the namespace" in text
    status, text = refused(core.create_namespaced_pod, "nowhere", body("p"))
    assert status == 404 and 'namespaces \\"nowhere\\" not found' in text.replace("\\\\", "\\")
    assert not server.pods


def test_missing_objects_are_404(core: k8s.CoreV1Api, server: ApiServer) -> None:
    assert refused(core.read_namespaced_pod, "gone", "htcondor")[0] == 404
    assert refused(core.delete_namespaced_pod, "gone", "htcondor")[0] == 404
    assert refused(core.patch_node, "kub-999", {"metadata": {"labels": {"a": "b"}}})[0] == 404
    batch = k8s.BatchV1Api(core.api_client)
    assert refused(batch.read_namespaced_job, "gone", "htcondor")[0] == 404
    background = k8s.V1DeleteOptions(propagation_policy="Background")
    assert refused(lambda: batch.delete_namespaced_job("gone", "htcondor", body=background))[0] == 404


def test_a_write_with_a_stale_resource_version_conflicts(core: k8s.CoreV1Api, server: ApiServer) -> None:
    # https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md
    # #concurrency-control-and-consistency: an update naming an old resourceVersion fails with 409 Conflict.
    pod = core.create_namespaced_pod("htcondor", body("p"))
    first = pod.metadata.resource_version
    pod.metadata.labels = {"a": "1"}
    replaced = core.replace_namespaced_pod("p", "htcondor", pod)
    assert replaced.metadata.resource_version != first
    pod.metadata.labels = {"a": "2"}  # still carries the first resourceVersion
    status, text = refused(core.replace_namespaced_pod, "p", "htcondor", pod)
    assert status == 409 and "the object has been modified" in text
    status, _ = refused(core.patch_namespaced_pod, "p", "htcondor",
                        {"metadata": {"resourceVersion": first, "labels": {"a": "3"}}})
    assert status == 409
    assert server.pods[("htcondor", "p")]["metadata"]["labels"] == {"a": "1"}
    # Without a resourceVersion a patch is unconditional (what the adapter sends).
    core.patch_namespaced_pod("p", "htcondor", {"metadata": {"labels": {"a": "4"}}})
    assert server.pods[("htcondor", "p")]["metadata"]["labels"] == {"a": "4"}


def test_unimplemented_calls_fail_the_test(core: k8s.CoreV1Api, kube: KubeCluster) -> None:
    with pytest.raises(AssertionError, match="does not implement DELETE /api/v1/nodes/kub-001"):
        core.delete_node("kub-001")
    with pytest.raises(AssertionError, match="does not implement GET /api/v1/namespaces"):
        core.list_namespace()
    with pytest.raises(AssertionError, match="only key=value is served"):
        core.list_pod_for_all_namespaces(label_selector="app!=x")


def test_the_adapter_surfaces_a_refusal_as_an_external_error(kube: KubeCluster, server: ApiServer) -> None:
    with pytest.raises(ExternalError, match="creating pod Bad_Name! failed \\(422"):
        kube.deploy_pods("kub-001", "prompt", ("Bad_Name!",), 8, 8192)
    assert not server.pods


def test_listings_come_in_pages_and_refuse_bad_or_expired_tokens(core: k8s.CoreV1Api, server: ApiServer) -> None:
    """https://kubernetes.io/docs/reference/using-api/api-concepts/#retrieving-large-results-sets-in-chunks: at most
    ``limit`` items, and a continue token while more remain. A token the server cannot decode is 400 BadRequest
    (apiserver etcd3/store.go, GetList: "invalid continue token"); one etcd compacted away is 410 with reason
    Expired and a token to go on inconsistently (etcd3/errors.go, handleCompactedErrorForPaging)."""
    for i in range(5):
        server.pods[("htcondor", f"p-{i}")] = pod_obj(f"p-{i}", "kub-001", namespace="htcondor")
    first = core.list_pod_for_all_namespaces(limit=2)
    second = core.list_pod_for_all_namespaces(limit=2, _continue=first.metadata.var_continue)
    last = core.list_pod_for_all_namespaces(limit=2, _continue=second.metadata.var_continue)
    assert [len(page.items) for page in (first, second, last)] == [2, 2, 1] and not last.metadata.var_continue
    assert sorted(p.metadata.name for page in (first, second, last) for p in page.items) == [f"p-{i}" for i in range(5)]
    for garbled in ("not-a-token", continue_token(0, "htcondor/p-1"), continue_token(1, "")):
        status, text = refused(lambda token=garbled: core.list_pod_for_all_namespaces(limit=2, _continue=token))
        assert status == 400 and "invalid continue token" in text
    server.compact()
    status, text = refused(lambda: core.list_pod_for_all_namespaces(limit=2, _continue=first.metadata.var_continue))
    # Before 1.12 (the spec's 1.9.3 here) the server gave no token to go on with (etcd3/errors.go, interpretListError).
    assert server.served < (1, 12) and status == 410 and json.loads(text)["reason"] == "Expired"
    assert "from parameter is too old" in json.loads(text)["message"] and not json.loads(text)["metadata"]
    server.served = (1, 12)
    status, text = refused(lambda: core.list_pod_for_all_namespaces(limit=2, _continue=first.metadata.var_continue))
    assert status == 410 and json.loads(text)["reason"] == "Expired" and json.loads(text)["metadata"]["continue"]


def test_a_listing_of_the_whole_cluster_must_ask_pages(core: k8s.CoreV1Api, server: ApiServer) -> None:
    """kubectl (--chunk-size 500) and client-go's pager page such listings; so must the adapter."""
    with pytest.raises(AssertionError, match="unpaginated listing of the whole cluster"):
        core.list_pod_for_all_namespaces(label_selector="app=x")
    with pytest.raises(AssertionError, match="unpaginated listing of the whole cluster"):
        core.list_node()
    with pytest.raises(AssertionError, match="unpaginated listing of the whole cluster"):  # one node's: unbounded
        core.list_pod_for_all_namespaces(field_selector="spec.nodeName=kub-001")
    assert core.list_pod_for_all_namespaces(field_selector="metadata.name=x").items == []  # one name's
    assert core.list_namespaced_pod("jupyter-lsst").items == []  # one namespace's
