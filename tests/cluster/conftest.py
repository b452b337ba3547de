"""A Kubernetes API server in memory, behind the official client's HTTP transport.

The client (``kubernetes.client``) is real: it builds the URLs, serialises bodies, parses responses and
raises ApiException. Only ``RESTClientObject.pool_manager`` — the urllib3 pool that would open a socket
— is replaced by ``ApiServer``, which answers the handful of endpoints the adapter uses from a dict of
objects, the way the API server would (201/200/404/409/429 and JSON bodies).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import urllib3
from kubernetes import client as k8s

from enclave.cluster.kube import KubeCluster
from enclave.spec import EnclaveSpec, load
from enclave.spec.defaults import EXAMPLES


def node_obj(name: str, *, ready: bool = True, labels: dict[str, str] | None = None,
             unschedulable: bool = False, allocatable: dict[str, str] | None = None) -> dict[str, Any]:
    """A node; ``allocatable`` as the kubelet reports it (absent unless given)."""
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if allocatable is not None:
        status["allocatable"] = dict(allocatable)
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": dict(labels or {}), "annotations": {}},
            "spec": {"unschedulable": True} if unschedulable else {}, "status": status}


def pod_obj(name: str, node: str, *, namespace: str = "jupyter-lsst", cpu: str = "1", memory: str = "2Gi",
            daemonset: bool = False, phase: str = "Running", labels: dict[str, str] | None = None,
            conditions: list[dict[str, str]] | None = None, deleting: bool = False) -> dict[str, Any]:
    """A pod; ``node=""`` for one not bound to a node yet."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels or {})}
    if daemonset:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "weave", "uid": "u1",
                                    "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = "2027-01-15T08:00:00Z"
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x",
                                            "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}
    if node:
        spec["nodeName"] = node
    status: dict[str, Any] = {"phase": phase}
    if conditions is not None:
        status["conditions"] = conditions
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


# The labels KubeSpawner puts on a user's server pod (Zero to JupyterHub's user-placeholder pods carry
# component=user-placeholder).
SINGLEUSER = {"app": "jupyterhub", "component": "singleuser-server", "hub.jupyter.org/username": "user"}


def unschedulable_pod(name: str, *, namespace: str = "jupyter-lsst", cpu: str = "1", memory: str = "2Gi",
                      deleting: bool = False, labels: dict[str, str] | None = None,
                      message: str = "0/60 nodes are available: 58 Insufficient cpu.") -> dict[str, Any]:
    """A pending notebook server pod the scheduler found no node for, as kube-scheduler marks it."""
    return pod_obj(name, "", namespace=namespace, cpu=cpu, memory=memory, phase="Pending", deleting=deleting,
                   labels=SINGLEUSER if labels is None else labels,
                   conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                "message": message}])


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """JSON merge / strategic merge for plain maps: null deletes a key."""
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge(target[k], v)
        else:
            target[k] = v


class ApiServer:
    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.queries: list[dict[str, str]] = []
        """The query parameters of each request, in step with ``requests``."""
        self.pdb_blocked: set[str] = set()
        self.fail_with: int | None = None

    # urllib3.PoolManager.request, as RESTClientObject calls it
    def request(self, method: str, url: str, body: str | None = None, **_: Any) -> urllib3.HTTPResponse:
        parsed = urlparse(url)
        q = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        data = json.loads(body) if body else None
        self.requests.append((method, parsed.path, data))
        self.queries.append(q)
        if self.fail_with:
            return self._resp(self.fail_with, {"kind": "Status", "message": "injected"})
        status, payload = self._route(method, parsed.path, q, data)
        return self._resp(status, payload)

    @staticmethod
    def _resp(status: int, payload: Any) -> urllib3.HTTPResponse:
        return urllib3.HTTPResponse(body=json.dumps(payload).encode(), status=status,
                                    headers={"Content-Type": "application/json"}, preload_content=False)

    @staticmethod
    def _pod_list(items: list[dict[str, Any]], q: dict[str, str]) -> dict[str, Any]:
        for sel in filter(None, q.get("labelSelector", "").split(",")):
            k, v = sel.split("=")
            items = [p for p in items if (p["metadata"].get("labels") or {}).get(k) == v]
        for sel in filter(None, q.get("fieldSelector", "").split(",")):
            k, v = sel.split("=")
            section, _, field = k.partition(".")
            assert k in ("spec.nodeName", "status.phase"), f"field selector {k} is not served"
            items = [p for p in items if (p.get(section) or {}).get(field) == v]
        return {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}

    def _route(self, method: str, path: str, q: dict[str, str], data: Any) -> tuple[int, Any]:
        if m := re.fullmatch(r"/api/v1/nodes", path):
            return 200, {"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": list(self.nodes.values())}
        if m := re.fullmatch(r"/api/v1/nodes/([^/]+)", path):
            node = self.nodes.get(m[1])
            if node is None:
                return 404, {"kind": "Status", "reason": "NotFound"}
            if method == "PATCH":
                _merge(node, data)
            return 200, node
        if path == "/api/v1/pods":
            return 200, self._pod_list(list(self.pods.values()), q)
        if (m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods", path)) and method == "GET":
            return 200, self._pod_list([p for (ns, _), p in self.pods.items() if ns == m[1]], q)
        if m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods", path):
            key = (m[1], data["metadata"]["name"])
            if key in self.pods:
                return 409, {"kind": "Status", "reason": "AlreadyExists"}
            self.pods[key] = {**data, "status": {"phase": "Pending"}}
            return 201, self.pods[key]
        if m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/eviction", path):
            if (m[1], m[2]) not in self.pods:
                return 404, {"kind": "Status", "reason": "NotFound"}
            if m[2] in self.pdb_blocked:
                return 429, {"kind": "Status", "reason": "TooManyRequests",
                             "message": "Cannot evict pod as it would violate the pod's disruption budget."}
            del self.pods[(m[1], m[2])]
            return 201, {"kind": "Status", "status": "Success"}
        if m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)", path):
            pod = self.pods.get((m[1], m[2]))
            if pod is None:
                return 404, {"kind": "Status", "reason": "NotFound"}
            if method == "DELETE":
                del self.pods[(m[1], m[2])]
            elif method == "PATCH":
                _merge(pod, data)
            return 200, pod
        raise AssertionError(f"unexpected request {method} {path}")


@pytest.fixture
def spec() -> EnclaveSpec:
    return load(EXAMPLES / "lsst-ldf.yaml")


@pytest.fixture
def server(spec: EnclaveSpec) -> ApiServer:
    s = ApiServer()
    for name in spec.node_names():
        if not name.startswith("condor-"):
            s.nodes[name] = node_obj(name)
    s.nodes["stranger-1"] = node_obj("stranger-1")  # a node the spec does not know: ignored
    return s


@pytest.fixture
def kube(spec: EnclaveSpec, server: ApiServer) -> KubeCluster:
    api = k8s.ApiClient(k8s.Configuration(host="https://kube.example.org:6443"))
    api.rest_client.pool_manager = server  # the narrowest point: no socket is opened
    return KubeCluster(spec, api, clock=lambda: 1_800_000_000.0)
