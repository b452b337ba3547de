"""A Kubernetes API server in memory, behind the official client's HTTP transport.

The client (``kubernetes.client``) is real: it builds the URLs, serialises bodies, parses responses and
raises ApiException. Only ``RESTClientObject.pool_manager`` — the urllib3 pool that would open a socket
— is replaced by ``ApiServer``, which answers the endpoints the adapter uses from dicts of objects and refuses
what an API server refuses (each rule cited where it is enforced; tests/cluster/test_fake.py shows each):
undecodable bodies and bad quantities (400), bodies the OpenAPI schema of the spec's Kubernetes version
rejects (kubernetes-validate: 400 undecodable or unknown fields, 422 invalid), names that are not DNS-1123
subdomains (422), objects whose namespace is not the
URL's (400) or does not exist (404), missing objects (404), existing names and stale resourceVersions (409),
garbled continue tokens (400) and ones etcd has compacted away (410 Expired). Listings are paged as the real
server pages them (``limit``, ``metadata.continue``), and a listing of the whole cluster without ``limit`` fails the
test: an unpaginated listing must not slip back into the adapter (``ApiServer._page``).
A request for an endpoint, method or selector it does not implement fails the test at once
(AssertionError), as ``safir.testing.kubernetes`` fails on an API it does not mock: a fake that answered
404 to what it does not know would let a test pass on a call the real server would answer otherwise.

Why our own fake and not a maintained one (judged at their PyPI versions, kmock 0.8 and mockernetes 0.2.0):
kmock's Kubernetes emulator is, in its own words, "essentially a database-over-http ... it only stores and
retrieves the objects as is" (https://kmock.readthedocs.io/kubernetes/handlers/): no schema, name, quantity
or resourceVersion checks, and it runs an aiohttp server the synchronous client would have to reach over a
socket. mockernetes patches ``kubernetes.client.ApiClient`` (so the client's own serialisation is not what
runs) and lists no validation among its features (https://pypi.org/project/mockernetes/). Neither refuses a
pod named ``Bad_Name!`` with a CPU request of ``"lots"``, which is the point of this fake.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import kubernetes_validate
import pytest
import urllib3
from kubernetes import client as k8s

from enclave.accounts.types import AccountKind, AccountStatus, AccountView, Person
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


_FIELD = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


def container_env(pod: dict[str, Any]) -> dict[str, str | None]:
    """The first container's environment as the kubelet sets it when the container starts: a downward-API field
    (``fieldRef``: spec.nodeName, metadata.labels['<key>'], metadata.annotations['<key>'] —
    https://kubernetes.io/docs/concepts/workloads/pods/downward-api/) read off the pod as it is then."""
    out: dict[str, str | None] = {}
    for e in pod["spec"]["containers"][0]["env"]:
        if "value" in e:
            out[e["name"]] = e["value"]
            continue
        path = e["valueFrom"]["fieldRef"]["fieldPath"]
        if path == "spec.nodeName":
            out[e["name"]] = pod["spec"].get("nodeName")
        elif m := _FIELD.match(path):
            out[e["name"]] = (pod["metadata"].get(m[1]) or {}).get(m[2])
        else:
            raise AssertionError(f"downward-API field {path} is not implemented by the test")
    return out


def downward_files(pod: dict[str, Any], where: Path) -> str:
    """Write under ``where`` the files the kubelet keeps in the pod's downward-API volume, as the pod's metadata is
    now (``fieldRef``: one label's or annotation's value by key, empty when it has none —
    https://kubernetes.io/docs/concepts/workloads/pods/downward-api/); return the path the container mounts them at."""
    [container] = pod["spec"]["containers"]
    [volume] = [v for v in pod["spec"]["volumes"] if "downwardAPI" in v]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    where.mkdir()
    for item in volume["downwardAPI"]["items"]:
        m = _FIELD.match(item["fieldRef"]["fieldPath"])
        assert m is not None, f"downward-API field {item['fieldRef']['fieldPath']} is not implemented by the test"
        (where / item["path"]).write_text((pod["metadata"].get(m[1]) or {}).get(m[2], ""))
    return str(mount["mountPath"])


def schema_version(spec: EnclaveSpec) -> str:
    """The OpenAPI schema kubernetes-validate checks bodies against: the spec's Kubernetes version if it ships
    one, else its oldest (1.25; the Pod and Node fields the adapter writes are older than that)."""
    major, minor = (int(x) for x in spec.cluster.kubernetes_version.lstrip("v").split(".")[:2])
    return f"{major}.{minor}.0" if (major, minor) >= (1, 25) else "1.25.0"


# https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#dns-subdomain-names: at most 253
# characters, lower case alphanumerics, '-' or '.', starting and ending with an alphanumeric. Pod and node
# names are DNS subdomains; namespace names are DNS labels (at most 63, no '.').
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/ — the serialisation format
# <signedNumber><suffix>; apimachinery's resource.ParseQuantity refuses anything else with this message while
# decoding the body, so the API server answers 400 BadRequest before it validates anything (the server's Status,
# "Pod in version \"v1\" cannot be handled as a Pod: ... quantities must match ...", code 400, is quoted in
# https://github.com/kubernetes-client/java/issues/699 and https://github.com/kubeflow/spark-operator/issues/2199).
QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
QUANTITY_ERROR = f"quantities must match the regular expression '{QUANTITY.pattern}'"
NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "htcondor", "jupyter-lsst", "firefly")


def _patched(obj: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(obj))
    _merge(out, patch)
    return out


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """JSON merge patch (RFC 7386) for plain maps: null deletes a key."""
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge(target[k], v)
        else:
            target[k] = v


class Refused(Exception):
    """An API error: the Status the server answers with (https://kubernetes.io/docs/reference/using-api/api-concepts/
    — "Kubernetes always returns the Status kind from any API endpoint when an error occurs")."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details
        self.metadata = metadata or {}

    def status(self) -> dict[str, Any]:
        out = {"kind": "Status", "apiVersion": "v1", "metadata": self.metadata, "status": "Failure",
               "message": self.message, "reason": self.reason, "code": self.code}
        return out | ({"details": self.details} if self.details else {})


def _not_found(kind: str, name: str) -> Refused:
    return Refused(404, "NotFound", f'{kind} "{name}" not found')


def _quantities(body: dict[str, Any]) -> None:
    spec = body.get("spec") or {}
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for section in ("requests", "limits"):
            for value in ((c.get("resources") or {}).get(section) or {}).values():
                if not QUANTITY.match(str(value)):
                    raise Refused(400, "BadRequest", f"Pod in version \"v1\" cannot be handled as a Pod: "
                                                     f"{QUANTITY_ERROR}")


def _name(kind: str, name: str) -> None:
    if len(name) > 253 or not DNS1123_SUBDOMAIN.fullmatch(name):
        raise Refused(422, "Invalid", f'{kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": a '
                                      "lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                                      "characters, '-' or '.', and must start and end with an alphanumeric character")


# k8s.io/apiserver pkg/storage/etcd3/errors.go, handleCompactedErrorForPaging: a continue token whose revision etcd has
# compacted is answered errors.NewResourceExpired (410, reason Expired) with this message and a token (rv -1) that
# would go on from the latest revision, inconsistently.
INCONSISTENT_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new list without "
    "the continue parameter, or use the continue token in this response to retrieve the remainder of the results. "
    "Continuing with the provided token results in an inconsistent list - objects that were created, modified, or "
    "deleted between the time the first chunk was returned and now may show up in the list.")


def continue_token(rv: int, start: str) -> str:
    """A continue token as the API server encodes it (k8s.io/apiserver pkg/storage/continue.go, EncodeContinue):
    unpadded base64url of {"v": "meta.k8s.io/v1", "rv": <the listing's revision>, "start": <the key to go on after>}.
    The fake's revision is its compaction epoch (``ApiServer.compact``)."""
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# Before 1.12 the same 410 Expired came with another message and no token to go on with (kubernetes-1.9.3
# pkg/storage/etcd3/errors.go, interpretListError; handleCompactedErrorForPaging came with 1.12).
TOO_OLD_FROM = ("The provided from parameter is too old to display a consistent list result. You must start a new "
                "list without the from.")


def expired(start: str = "", served: tuple[int, ...] = (1, 12)) -> Refused:
    """The 410 Expired the API server of version ``served`` answers a continue token etcd has compacted away."""
    if served < (1, 12):
        return Refused(410, "Expired", TOO_OLD_FROM)
    return Refused(410, "Expired", INCONSISTENT_CONTINUE, metadata={"continue": continue_token(-1, start)})


def _decoded(token: str) -> tuple[int, str]:
    """(revision, start key) of a continue token, refused as the API server refuses one it cannot decode: 400
    BadRequest "invalid continue token: <DecodeContinue's error>" (etcd3/store.go, GetList; continue.go,
    DecodeContinue)."""
    def bad(why: str) -> Refused:
        return Refused(400, "BadRequest", f"invalid continue token: continue key is not valid{why}")

    try:
        c = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError as exc:  # binascii.Error, UnicodeDecodeError and JSONDecodeError are all ValueErrors
        raise bad(f": {exc}") from exc
    if not isinstance(c, dict) or c.get("v") != "meta.k8s.io/v1":
        raise bad(": server does not recognize this encoded version")
    if not isinstance(c.get("rv"), int) or c["rv"] == 0:
        raise bad(": incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    if not c.get("start"):
        raise bad(": encoded start key empty (version meta.k8s.io/v1)")
    return c["rv"], str(c["start"])


# Field selectors that bound a pod listing whatever the cluster's size: one name. One node's are not bounded: its
# running pods are at most the kubelet's maxPods, but finished ones stay bound to it until the pod garbage collector
# deletes them, past 12,500 in the cluster (pkg/controller/podgc/config/v1alpha1/defaults.go).
_BOUNDED = ("metadata.name",)


class ApiServer:
    def __init__(self, version: str = "1.25.0", served: str | None = None) -> None:
        self.version = version
        """The OpenAPI schema version bodies are validated against (kubernetes-validate)."""
        self.served = tuple(int(x) for x in (served or version).lstrip("v").split(".")[:2])
        """The Kubernetes it answers as, for which API groups it has (the schema's may be later: kubernetes-validate
        has none before 1.25)."""
        self.configmaps: dict[tuple[str, str], dict[str, Any]] = {}
        self.nodes: dict[str, dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.rolebindings: dict[tuple[str, str], dict[str, Any]] = {}
        self.rbac_forbidden: set[str] = set()
        """Namespaces where the authorizer refuses the caller rolebindings (403, the namespace named)."""
        self.namespaces: set[str] = set(NAMESPACES)
        self.requests: list[tuple[str, str, Any]] = []
        self.queries: list[dict[str, str]] = []
        """The query parameters of each request, in step with ``requests``."""
        self.pdb_blocked: set[str] = set()
        self.pdb_several: set[str] = set()
        """Pods two disruption budgets select: their eviction is an internal error (500)."""
        self.pdb_negative: set[str] = set()
        """Pods whose budget's allowed disruptions are negative: Forbidden, the budget named (403)."""
        self.evictions_forbidden = False
        """RBAC refuses the caller pods/eviction (403, the pod named)."""
        self.logs: dict[tuple[str, str, str], list[tuple[float, str]]] = {}
        """(namespace, pod, container) → the container's log: (time written, line), oldest first."""
        self.now = 1_800_000_000.0
        """The server's clock, for sinceSeconds."""
        self.fail_with: int | Refused | None = None
        """Every request is answered with this status (a bare Status), or with this Status."""
        self.epoch = 1
        """etcd's compaction epoch: continue tokens carry the one their listing began in (``compact``)."""
        self.between_pages: Callable[[], None] | None = None
        """Called whenever a page is answered with more to come: a test's way to compact while a client pages."""
        self._full_list_due = False
        """A continue token was just refused as expired: the one full list client-go's pager falls back to is due."""
        self.timeouts: list[Any] = []
        """Each request's urllib3 timeout, as RESTClientObject passes it (None: none)."""
        self.unanswered = False
        """No answer at all: urllib3 gives up as the real PoolManager does once its retries are spent."""
        self._versions = itertools.count(1)
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., tuple[int, Any]]]] = [
            ("GET", re.compile(r"/api/v1/nodes"), self._list_nodes),
            ("GET", re.compile(r"/api/v1/nodes/([^/]+)"), self._read_node),
            ("PATCH", re.compile(r"/api/v1/nodes/([^/]+)"), self._patch_node),
            ("GET", re.compile(r"/api/v1/pods"), self._list_all_pods),
            ("GET", re.compile(r"/api/v1/namespaces/([^/]+)/pods"), self._list_pods),
            ("POST", re.compile(r"/api/v1/namespaces/([^/]+)/pods"), self._create_pod),
            ("GET", re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)"), self._read_pod),
            ("PATCH", re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)"), self._patch_pod),
            ("PUT", re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)"), self._replace_pod),
            ("DELETE", re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)"), self._delete_pod),
            ("POST", re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/eviction"), self._evict),
            ("GET", re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/log"), self._pod_log),
            ("GET", re.compile(r"/apis/coordination.k8s.io/v1/namespaces/([^/]+)/leases/([^/]+)"), self._read_lease),
            ("POST", re.compile(r"/apis/coordination.k8s.io/v1/namespaces/([^/]+)/leases"), self._create_lease),
            ("PUT", re.compile(r"/apis/coordination.k8s.io/v1/namespaces/([^/]+)/leases/([^/]+)"),
             self._replace_lease),
            ("POST", re.compile(r"/apis/batch/v1/namespaces/([^/]+)/jobs"), self._create_job),
            ("GET", re.compile(r"/apis/batch/v1/namespaces/([^/]+)/jobs/([^/]+)"), self._read_job),
            ("DELETE", re.compile(r"/apis/batch/v1/namespaces/([^/]+)/jobs/([^/]+)"), self._delete_job),
            ("GET", re.compile(r"/apis/rbac.authorization.k8s.io/v1/namespaces/([^/]+)/rolebindings"),
             self._list_rolebindings),
            ("DELETE", re.compile(r"/apis/rbac.authorization.k8s.io/v1/namespaces/([^/]+)/rolebindings/([^/]+)"),
             self._delete_rolebinding),
            ("GET", re.compile(r"/api/v1/namespaces/([^/]+)/configmaps/([^/]+)"), self._read_configmap),
            ("POST", re.compile(r"/api/v1/namespaces/([^/]+)/configmaps"), self._create_configmap),
            ("PUT", re.compile(r"/api/v1/namespaces/([^/]+)/configmaps/([^/]+)"), self._replace_configmap),
        ]

    # urllib3.PoolManager.request, as RESTClientObject calls it
    def request(self, method: str, url: str, body: str | None = None, **kwargs: Any) -> urllib3.HTTPResponse:
        self.timeouts.append(kwargs.get("timeout"))
        parsed = urlparse(url)
        q = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        data = json.loads(body) if body else None
        self.requests.append((method, parsed.path, data))
        self.queries.append(q)
        if self.unanswered:
            raise urllib3.exceptions.MaxRetryError(None, url, urllib3.exceptions.ProtocolError(  # type: ignore[arg-type]
                "Connection aborted.", ConnectionResetError(104, "Connection reset by peer")))
        if isinstance(self.fail_with, Refused):
            return self._resp(self.fail_with.code, self.fail_with.status())
        if self.fail_with:
            return self._resp(self.fail_with, {"kind": "Status", "message": "injected"})
        self._stamp()
        try:
            status, payload = self._route(method, parsed.path, q, data)
        except Refused as refused:
            status, payload = refused.code, refused.status()
        return self._resp(status, payload)

    def _route(self, method: str, path: str, q: dict[str, str], data: Any) -> tuple[int, Any]:
        if path.startswith("/apis/coordination.k8s.io/v1/") and self.served < (1, 14):
            # No such API group version before 1.14 (https://kubernetes.io/docs/reference/using-api/
            # deprecation-guide/#lease-v122: v1 "available since v1.14"): the server's mux answers 404.
            return 404, "404 page not found\n"
        for verb, pattern, handler in self._routes:
            if verb == method and (m := pattern.fullmatch(path)):
                return handler(*m.groups(), q=q, data=data)
        raise AssertionError(f"the fake API server does not implement {method} {path}")

    @staticmethod
    def _resp(status: int, payload: Any) -> urllib3.HTTPResponse:
        if isinstance(payload, str):  # the pod log endpoint answers text/plain
            return urllib3.HTTPResponse(body=io.BytesIO(payload.encode()), status=status,
                                        headers={"Content-Type": "text/plain"}, preload_content=False)
        return urllib3.HTTPResponse(body=json.dumps(payload).encode(), status=status,
                                    headers={"Content-Type": "application/json"}, preload_content=False)

    # --- object bookkeeping ------------------------------------------------------------------------------

    def _stamp(self) -> None:
        """Objects a test put straight into the dicts get what the server gives every stored object."""
        for obj in [*self.nodes.values(), *self.pods.values(), *self.leases.values(), *self.configmaps.values(),
                    *self.rolebindings.values(), *self.jobs.values()]:
            meta = obj.setdefault("metadata", {})
            if "resourceVersion" not in meta:
                meta["resourceVersion"] = str(next(self._versions))
                meta.setdefault("uid", f"uid-{meta['resourceVersion']}")

    def _update(self, obj: dict[str, Any], new: dict[str, Any], data: dict[str, Any] | None) -> dict[str, Any]:
        """Store ``new`` in place of ``obj``. Optimistic concurrency: a write naming a resourceVersion other
        than the stored one is a 409 Conflict (https://github.com/kubernetes/community/blob/master/contributors/
        devel/sig-architecture/api-conventions.md#concurrency-control-and-consistency); every accepted write
        gets a new resourceVersion."""
        wanted = ((data or {}).get("metadata") or {}).get("resourceVersion")
        meta = obj["metadata"]
        if wanted is not None and wanted != meta["resourceVersion"]:
            raise Refused(409, "Conflict", f'Operation cannot be fulfilled on {obj.get("kind", "object").lower()}s '
                                           f'"{meta["name"]}": the object has been modified; please apply your '
                                           "changes to the latest version and try again")
        self._validate(new)
        obj.clear()
        obj.update(json.loads(json.dumps(new)))
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        obj["metadata"]["uid"] = meta["uid"]
        return obj

    def _validate(self, obj: dict[str, Any]) -> None:
        """The body against the OpenAPI schema. A value of the wrong JSON type cannot be decoded (400), nor can
        a field the schema does not know: the fake always decodes as with ``fieldValidation=Strict`` (kubectl's
        default since 1.27; the server's own default, Warn, would drop the field with a warning —
        https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation). A missing required
        field or a value the schema does not allow is invalid (422)."""
        try:
            kubernetes_validate.validate(obj, self.version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            if exc.validator == "additionalProperties":
                raise Refused(400, "BadRequest", f"strict decoding error: {where}: {exc.message}") from exc
            if exc.validator == "type":
                raise Refused(400, "BadRequest", f"{where}: {exc.message}") from exc
            raise Refused(422, "Invalid", f"{where}: {exc.message}") from exc

    def _namespace(self, namespace: str, data: dict[str, Any] | None = None) -> None:
        if namespace not in self.namespaces:
            raise _not_found("namespaces", namespace)
        given = ((data or {}).get("metadata") or {}).get("namespace")
        if given is not None and given != namespace:
            # apiserver's rest.BeforeCreate / BeforeUpdate: the object's namespace must be the request's.
            raise Refused(400, "BadRequest", "the namespace of the provided object does not match the namespace "
                                             "sent on the request")

    def _pod(self, namespace: str, name: str) -> dict[str, Any]:
        pod = self.pods.get((namespace, name))
        if pod is None:
            raise _not_found("pods", name)
        return pod

    # --- listings in pages: https://kubernetes.io/docs/reference/using-api/api-concepts/
    # #retrieving-large-results-sets-in-chunks

    def _paged(self, q: dict[str, str]) -> None:
        """A listing that grows with the cluster (every pod, every node) asks ``limit``, as kubectl (--chunk-size 500)
        and client-go's pager do; the fake fails the test otherwise. The one exception is client-go's fallback: one
        full list right after a continue token was refused as expired (tools/pager/pager.go, ListPager.list)."""
        if "limit" not in q:
            assert self._full_list_due, f"an unpaginated listing of the whole cluster ({q or 'no limit'}): ask pages"
        self._full_list_due = False

    def compact(self) -> None:
        """etcd compacts: every continue token handed out so far has expired."""
        self.epoch += 1

    def _page(self, kind: str, objects: dict[str, dict[str, Any]], q: dict[str, str]) -> dict[str, Any]:
        """One page of ``objects`` (etcd key → object) in key order, as etcd3's store lists (etcd3/store.go, GetList):
        after the token's start key, at most ``limit`` of them, with ``metadata.continue`` when more remain. A token
        from before the last compaction is refused 410 Expired; one with rv -1 goes on from the latest revision.
        Unlike the real server's, a later page is read from the objects as they are then, not as they were at the
        first page's revision: a test that changes them between pages sees what no server would show."""
        rv, start = _decoded(q["continue"]) if "continue" in q else (self.epoch, "")
        if 0 < rv < self.epoch:
            self._full_list_due = True
            raise expired(start, self.served)
        keys = sorted(k for k in objects if k > start)
        limit = int(q.get("limit") or 0)
        meta: dict[str, Any] = {}
        if 0 < limit < len(keys):
            keys = keys[:limit]
            meta["continue"] = continue_token(self.epoch, keys[-1])
            if self.between_pages is not None:
                self.between_pages()
        return {"kind": kind, "apiVersion": "v1", "metadata": meta, "items": [objects[k] for k in keys]}

    # --- nodes -------------------------------------------------------------------------------------------

    def _list_nodes(self, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        assert set(q) <= {"limit", "continue"}, f"node list with {q} is not served"
        self._paged(q)
        return 200, self._page("NodeList", self.nodes, q)

    def _read_node(self, name: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        node = self.nodes.get(name)
        if node is None:
            raise _not_found("nodes", name)
        return 200, node

    def _patch_node(self, name: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        assert isinstance(data, dict), "only merge patches (a map) are served"
        _, node = self._read_node(name, q=q, data=None)
        return 200, self._update(node, _patched(node, data), data)

    # --- pods ------------------------------------------------------------------------------------------------

    def _pod_list(self, items: list[dict[str, Any]], q: dict[str, str], *,
                  cluster_wide: bool = False) -> dict[str, Any]:
        """The pods of ``items`` the selectors select, a page of them; ``cluster_wide``: every namespace's."""
        assert set(q) <= {"labelSelector", "fieldSelector", "limit", "continue"}, f"pod list with {q} is not served"
        fields: set[str] = set()
        for sel in filter(None, q.get("labelSelector", "").split(",")):
            assert re.fullmatch(r"[^!=]+=[^!=]*", sel), f"label selector {sel!r}: only key=value is served"
            k, v = sel.split("=")
            items = [p for p in items if (p["metadata"].get("labels") or {}).get(k) == v]
        for sel in filter(None, q.get("fieldSelector", "").split(",")):
            k, v = sel.split("=")
            section, _, field = k.partition(".")
            # Every kind may be selected by metadata.name and metadata.namespace; pods also by these two.
            assert k in ("spec.nodeName", "status.phase", "metadata.name", "metadata.namespace"), \
                f"field selector {k} is not served"
            items = [p for p in items if (p.get(section) or {}).get(field) == v]
            fields.add(k)
        if cluster_wide and not fields & set(_BOUNDED):
            self._paged(q)
        # etcd keys pods /registry/pods/<namespace>/<name>: a listing goes in that order.
        return self._page("PodList", {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in items}, q)

    def _list_all_pods(self, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        return 200, self._pod_list(list(self.pods.values()), q, cluster_wide=True)

    def _list_pods(self, namespace: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        return 200, self._pod_list([p for (ns, _), p in self.pods.items() if ns == namespace], q)

    def _create_pod(self, namespace: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        assert not q, f"pod create with {q} is not served"
        _quantities(data)
        self._validate(data)
        self._namespace(namespace, data)
        name = (data.get("metadata") or {}).get("name") or ""
        _name("Pod", name)
        if (namespace, name) in self.pods:
            raise Refused(409, "AlreadyExists", f'pods "{name}" already exists')
        pod = {**data, "metadata": {**data["metadata"], "namespace": namespace}, "status": {"phase": "Pending"}}
        self.pods[(namespace, name)] = pod
        self._stamp()
        return 201, pod

    def _read_pod(self, namespace: str, name: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        return 200, self._pod(namespace, name)

    def _patch_pod(self, namespace: str, name: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        assert isinstance(data, dict), "only merge patches (a map) are served"
        pod = self._pod(namespace, name)
        self._namespace(namespace, data)
        patched = _patched(pod, data)
        _quantities(patched)
        return 200, self._update(pod, patched, data)

    def _replace_pod(self, namespace: str, name: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        pod = self._pod(namespace, name)
        self._namespace(namespace, data)
        if (data.get("metadata") or {}).get("name") != name:
            raise Refused(400, "BadRequest", "the name of the object does not match the name on the URL")
        _quantities(data)
        return 200, self._update(pod, data, data)

    def _delete_pod(self, namespace: str, name: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        """A pod bound to a node is deleted gracefully: the API server sets its deletionTimestamp and keeps it until
        the kubelet has stopped its containers (``kubelet_stops``); one not bound, or finished, goes at once
        (kubernetes pkg/registry/core/pod/strategy.go, podStrategy.CheckGracefulDelete)."""
        pod = self._pod(namespace, name)
        bound = (pod.get("spec") or {}).get("nodeName")
        finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if bound and not finished and (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30) > 0:
            pod["metadata"].setdefault("deletionTimestamp", "2027-01-15T08:00:00Z")
            return 200, pod
        del self.pods[(namespace, name)]
        return 200, pod

    def evicted(self, namespace: str, name: str) -> bool:
        """Whether the pod is gone or marked for deletion (an allowed eviction, a DELETE): its kubelet stops it."""
        pod = self.pods.get((namespace, name))
        return pod is None or bool(pod["metadata"].get("deletionTimestamp"))

    def kubelet_stops(self) -> None:
        """The kubelets have stopped every pod marked for deletion: the API server removes them."""
        for key in [k for k, p in self.pods.items() if p["metadata"].get("deletionTimestamp")]:
            del self.pods[key]

    def _pod_log(self, namespace: str, name: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        """GET .../pods/{name}/log (https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/
        #get-read-log-of-the-specified-pod). The container rules and their messages are the API server's
        (kubernetes pkg/registry/core/pod/strategy.go, LogLocation): without ``container`` the pod's only
        container, else 400 naming the choices; a container not in the pod is 400. sinceSeconds keeps the lines
        written in that many seconds before now, tailLines the last lines; a followed log here ends with the
        lines stored, as it does when the container has terminated."""
        assert set(q) <= {"container", "follow", "sinceSeconds", "tailLines"}, f"pod log with {q} is not served"
        pod = self._pod(namespace, name)
        containers = [c["name"] for c in pod["spec"]["containers"]]
        container = q.get("container")
        if container is None:
            if len(containers) != 1:
                raise Refused(400, "BadRequest", f"a container name must be specified for pod {name}, choose one "
                                                 f"of: [{' '.join(containers)}]")
            container = containers[0]
        elif container not in containers:
            raise Refused(400, "BadRequest", f"container {container} is not valid for pod {name}")
        lines = self.logs.get((namespace, name, container), [])
        if "sinceSeconds" in q:
            lines = [(t, line) for t, line in lines if t >= self.now - int(q["sinceSeconds"])]
        if "tailLines" in q:
            lines = lines[len(lines) - int(q["tailLines"]):] if int(q["tailLines"]) else []
        return 200, "".join(f"{line}\n" for _, line in lines)

    # --- leases (coordination.k8s.io/v1) -----------------------------------------------------------------

    def _read_lease(self, namespace: str, name: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        lease = self.leases.get((namespace, name))
        if lease is None:
            raise _not_found("leases.coordination.k8s.io", name)
        return 200, lease

    def _create_lease(self, namespace: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        self._validate(data)
        self._namespace(namespace, data)
        name = data["metadata"]["name"]
        if (namespace, name) in self.leases:
            raise Refused(409, "AlreadyExists", f'leases.coordination.k8s.io "{name}" already exists')
        self.leases[(namespace, name)] = {**data, "metadata": {**data["metadata"], "namespace": namespace}}
        self._stamp()
        return 201, self.leases[(namespace, name)]

    def _replace_lease(self, namespace: str, name: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        _, lease = self._read_lease(namespace, name, q=q, data=None)
        self._namespace(namespace, data)
        return 200, self._update(lease, data, data)

    # --- configmaps (v1) ---------------------------------------------------------------------------------

    def _read_configmap(self, namespace: str, name: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        cm = self.configmaps.get((namespace, name))
        if cm is None:
            raise _not_found("configmaps", name)
        return 200, cm

    def _create_configmap(self, namespace: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        self._validate(data)
        self._namespace(namespace, data)
        name = data["metadata"]["name"]
        if (namespace, name) in self.configmaps:
            raise Refused(409, "AlreadyExists", f'configmaps "{name}" already exists')
        self.configmaps[(namespace, name)] = {**data, "metadata": {**data["metadata"], "namespace": namespace}}
        self._stamp()
        return 201, self.configmaps[(namespace, name)]

    def _replace_configmap(self, namespace: str, name: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        _, cm = self._read_configmap(namespace, name, q=q, data=None)
        self._namespace(namespace, data)
        return 200, self._update(cm, data, data)

    # --- jobs (batch/v1) ----------------------------------------------------------------------------------

    def _create_job(self, namespace: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        assert not q, f"job create with {q} is not served"
        _quantities((data.get("spec") or {}).get("template") or {})
        self._validate(data)
        self._namespace(namespace, data)
        name = (data.get("metadata") or {}).get("name") or ""
        _name("Job", name)
        if (namespace, name) in self.jobs:
            raise Refused(409, "AlreadyExists", f'jobs.batch "{name}" already exists')
        # A new Job's status is empty until the Job controller fills it in; a test sets its conditions for it.
        self.jobs[(namespace, name)] = {**data, "metadata": {**data["metadata"], "namespace": namespace},
                                        "status": {}}
        self._stamp()
        return 201, self.jobs[(namespace, name)]

    def _read_job(self, namespace: str, name: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        assert not q, f"job read with {q} is not served"
        job = self.jobs.get((namespace, name))
        if job is None:
            raise _not_found("jobs.batch", name)
        return 200, job

    def _delete_job(self, namespace: str, name: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        """DELETE with propagationPolicy Background, in the query or the body's DeleteOptions
        (https://kubernetes.io/docs/reference/kubernetes-api/common-parameters/common-parameters/#propagationpolicy):
        the Job goes at once and the garbage collector deletes its pods after it
        (https://kubernetes.io/docs/concepts/architecture/garbage-collection/#cascading-deletion); the server answers
        a Status. Another policy or none is not served: Foreground keeps the Job until its pods are gone, and so does
        batch/v1's default, Orphan, until the garbage collector has cut them loose (the Job marked for deletion,
        finalizer orphan; kubernetes pkg/registry/batch/job/strategy.go, DefaultGarbageCollectionPolicy)."""
        assert set(q) <= {"propagationPolicy"} and not (data or {}).keys() - {"apiVersion", "kind",
                                                                             "propagationPolicy"}, \
            f"job delete with {q}, {data} is not served"
        policy = (data or {}).get("propagationPolicy") or q.get("propagationPolicy")
        assert policy == "Background", f"job delete with propagationPolicy {policy} is not served"
        job = self.jobs.pop((namespace, name), None)
        if job is None:
            raise _not_found("jobs.batch", name)
        return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                     "details": {"name": name, "group": "batch", "kind": "jobs", "uid": job["metadata"]["uid"]}}

    # --- rolebindings (rbac.authorization.k8s.io/v1) ------------------------------------------------------

    def _rbac_allowed(self, verb: str, namespace: str) -> None:
        if namespace in self.rbac_forbidden:
            # The authorizer's refusal (apiserver endpoints/handlers/responsewriters, ForbiddenStatusError).
            raise Refused(403, "Forbidden", f'rolebindings.rbac.authorization.k8s.io is forbidden: User '
                                            f'"system:serviceaccount:enclave:enclave" cannot {verb} resource '
                                            f'"rolebindings" in API group "rbac.authorization.k8s.io" in the '
                                            f'namespace "{namespace}"', {"group": "rbac.authorization.k8s.io",
                                                                         "kind": "rolebindings"})

    def _list_rolebindings(self, namespace: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        """A namespace's RoleBindings the label selector selects, in name order. A namespace that does not exist
        lists nothing, as the server lists an empty etcd prefix (no 404)."""
        assert set(q) <= {"labelSelector"}, f"rolebinding list with {q} is not served"
        self._rbac_allowed("list", namespace)
        match = label_selector(q.get("labelSelector", ""))
        items = {name: b for (ns, name), b in self.rolebindings.items()
                 if ns == namespace and match(b["metadata"].get("labels") or {})}
        return 200, {**self._page("RoleBindingList", items, {}), "apiVersion": "rbac.authorization.k8s.io/v1"}

    def _delete_rolebinding(self, namespace: str, name: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        """A RoleBinding has no finalizers or grace period: it goes at once, and the server answers a Status
        (apiserver registry/rest: a delete of an object that is gone at once returns Success with its details)."""
        assert not q and not (data or {}).keys() - {"apiVersion", "kind"}, \
            f"rolebinding delete with {q}, {data} is not served"
        self._rbac_allowed("delete", namespace)
        if (namespace, name) not in self.rolebindings:
            raise _not_found("rolebindings.rbac.authorization.k8s.io", name)
        del self.rolebindings[(namespace, name)]
        return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                     "details": {"name": name, "group": "rbac.authorization.k8s.io", "kind": "rolebindings"}}

    def _evict(self, namespace: str, name: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        self._pod(namespace, name)
        if (data.get("metadata") or {}).get("name") != name:
            raise Refused(400, "BadRequest", "name in URL does not match name in Eviction object")
        if name in self.pdb_several:
            # pkg/registry/core/pod/storage/eviction.go, EvictionREST.Create: errors.NewInternalError.
            raise Refused(500, "InternalError", "This pod has more than one PodDisruptionBudget, which the "
                                                "eviction subresource does not support.")
        if name in self.pdb_negative:
            # eviction.go, checkAndDecrement: errors.NewForbidden(policy.Resource("poddisruptionbudget"), ...).
            raise Refused(403, "Forbidden", 'poddisruptionbudget.policy "budget" is forbidden: pdb disruptions '
                                            "allowed is negative",
                          {"name": "budget", "group": "policy", "kind": "poddisruptionbudget"})
        if self.evictions_forbidden:
            # The authorizer's refusal (apiserver endpoints/handlers/responsewriters, ForbiddenStatusError).
            raise Refused(403, "Forbidden", f'pods "{name}" is forbidden: User "system:serviceaccount:enclave:'
                                            'enclave" cannot create resource "pods/eviction" in API group "" in the '
                                            f'namespace "{namespace}"', {"name": name, "kind": "pods"})
        if name in self.pdb_blocked:
            # https://kubernetes.io/docs/concepts/scheduling-eviction/api-eviction/: 429 while a budget says no.
            raise Refused(429, "TooManyRequests",
                          "Cannot evict pod as it would violate the pod's disruption budget.")
        # An allowed eviction deletes the pod as a DELETE does, gracefully (same page: "the API server ... deletes
        # the Pod", the kubelet then shuts it down within its terminationGracePeriodSeconds).
        self._delete_pod(namespace, name, q={}, data=None)
        return 201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


# apimachinery pkg/util/validation IsValidLabelValue: at most 63 characters, empty or alphanumeric at both ends.
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def label_selector(text: str) -> Callable[[dict[str, str]], bool]:
    """Whether a labels map matches ``text``, as apimachinery pkg/labels parses it (selector.go, Parse): requirements
    joined by ',' all hold; ``k=v`` and ``k==v`` hold when the label is there with that value, ``k!=v`` when it is not
    (absent included). A value that is no valid label value is refused 400 as the server refuses the listing
    ("unable to parse requirement"). Set-based requirements (in, notin, exists) are not served: the test fails."""
    wanted: list[tuple[str, str, bool]] = []
    for req in filter(None, text.split(",")):
        m = re.fullmatch(r"([^!=\s]+)\s*(==|=|!=)\s*([^!=\s]*)", req)
        assert m is not None, f"label selector {req!r}: only k=v, k==v and k!=v are served"
        key, op, value = m.groups()
        if len(value) > 63 or not LABEL_VALUE.fullmatch(value):
            raise Refused(400, "BadRequest", f"unable to parse requirement: values[0][{key}]: Invalid value: "
                                             f'"{value}": a valid label must be an empty string or consist of '
                                             "alphanumeric characters, '-', '_' or '.', and must start and end with "
                                             "an alphanumeric character")
        wanted.append((key, value, op != "!="))
    return lambda labels: all((labels.get(k) == v) == equal for k, v, equal in wanted)


def account_view(username: str, uid: int, home_root: str = "/jhome", quota_gib: float = 100.0) -> AccountView:
    """An account as the services return it, for the home-provisioning paths."""
    home = f"{home_root}/{username}"
    return AccountView(username=username, uid=uid, gid=uid, kind=AccountKind.SCIENCE, status=AccountStatus.ACTIVE,
                       home=home, workspace=f"{home}/workspace", quota_gib=quota_gib, allocation_id=None,
                       allocation_quota_gib=None, allocation_expires=None, namespaces=[], roles=[], permissions=[],
                       person=Person(name=username.title(), email=f"{username}@example.org"), other_accounts=[])


@pytest.fixture
def spec() -> EnclaveSpec:
    return load(EXAMPLES / "lsst-ldf.yaml")


@pytest.fixture
def server(spec: EnclaveSpec) -> ApiServer:
    s = ApiServer(schema_version(spec), served=spec.cluster.kubernetes_version)
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
