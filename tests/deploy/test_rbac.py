"""Least privilege, proven (issue 18): every request the live Kubernetes adapter (and the broker's Lease) makes
is allowed by the RBAC `enclave render deploy` writes, and that RBAC grants nothing the adapter never uses.

The adapter runs against the strict in-memory API server of tests/cluster/conftest.py, which records each
request. Each request is turned into an RBAC attribute set as the API server does: the verb from the HTTP method
(GET on an object: get, on a collection: list; POST: create; PATCH: patch; DELETE: delete —
https://kubernetes.io/docs/reference/access-authn-authz/authorization/#determine-the-request-verb), the
resource and subresource and the namespace from the path
(https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-uris). A ClusterRole bound by a
ClusterRoleBinding allows its rules in every namespace and on cluster-scoped resources; a Role bound by a
RoleBinding only in the Role's namespace (https://kubernetes.io/docs/reference/access-authn-authz/rbac/).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import pytest

from enclave.access.render import Grant, Subject, app_namespaces, binding
from enclave.cluster import deploy
from enclave.cluster.kube import KubeCluster
from enclave.cluster.lease import LeaseLock
from enclave.cluster.objects import LEASE_API_SINCE
from enclave.domain.logs import LogRequest
from enclave.spec import EnclaveSpec, load
from enclave.spec.defaults import EXAMPLES
from enclave.spec.load import dump
from tests.cluster.conftest import ApiServer, account_view, pod_obj, unschedulable_pod


@dataclass(frozen=True)
class Attrs:
    verb: str
    group: str
    resource: str
    """resource, or resource/subresource"""
    namespace: str | None
    name: str | None = None
    """The object's name, if the path names one (a create's does not): what a rule's resourceNames restrict."""


def attrs(method: str, path: str) -> Attrs:
    parts = path.strip("/").split("/")
    if parts[0] == "api":  # /api/v1/...: the core group ""
        group, rest = "", parts[2:]
    else:  # /apis/<group>/<version>/...
        group, rest = parts[1], parts[3:]
    namespace = None
    if rest[0] == "namespaces" and len(rest) > 2:
        namespace, rest = rest[1], rest[2:]
    resource, name, sub = rest[0], (rest[1] if len(rest) > 1 else None), (rest[2] if len(rest) > 2 else None)
    verb = {"POST": "create", "PATCH": "patch", "PUT": "update"}.get(method)
    if verb is None:
        verb = ("get" if name else "list") if method == "GET" else ("delete" if name else "deletecollection")
    return Attrs(verb, group, f"{resource}/{sub}" if sub else resource, namespace, name)


def grants(bundle: dict[str, list[dict[str, Any]]]) -> list[tuple[str | None, dict[str, Any], str]]:
    """(namespace the rule applies in — None: everywhere —, rule, which object) for every rule bound to the
    broker's ServiceAccount."""
    docs = [d for docs in bundle.values() for d in docs]
    subject = {"kind": "ServiceAccount", "name": deploy.BROKER_ACCOUNT, "namespace": deploy.NAMESPACE}
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs
             if d["kind"] in ("Role", "ClusterRole")}
    out = []
    for b in (d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        if subject not in b["subjects"]:
            continue
        ref = b["roleRef"]
        scope = b["metadata"].get("namespace")  # a RoleBinding grants in its own namespace only
        role = roles[(ref["kind"], None if ref["kind"] == "ClusterRole" else scope, ref["name"])]
        out += [(scope, rule, f"{role['kind']}/{role['metadata']['name']}") for rule in role["rules"]]
    return out


def allows(scope: str | None, rule: dict[str, Any], a: Attrs) -> bool:
    """As the RBAC authorizer matches a rule (plugin/pkg/auth/authorizer/rbac, RuleAllows): a rule with resourceNames
    allows only requests naming one of them, so never a create."""
    named = "resourceNames" not in rule or a.name in rule["resourceNames"]
    return ((scope is None or scope == a.namespace) and a.group in rule["apiGroups"]
            and a.resource in rule["resources"] and a.verb in rule["verbs"] and named)


def exercise(kube: KubeCluster, server: ApiServer) -> set[str]:
    """Every public operation of the adapter, on a cluster where each has something to do. Returns the
    names of the methods called."""
    called: set[str] = set()
    server.pods[("jupyter-lsst", "nb-alice")] = pod_obj("nb-alice", "kub-005")
    server.pods[("firefly", "ff")] = pod_obj("ff", "kub-005", namespace="firefly")
    server.pdb_blocked.add("ff")
    server.pods[("jupyter-lsst", "waiting")] = unschedulable_pod("waiting")

    def call(name: str, *args: Any) -> Any:
        called.add(name)
        return getattr(kube, name)(*args)

    call("nodes", call("node_items"))
    call("pending_notebooks")
    call("deploy_pods", "kub-006", "drp", ("htcondor-kub-006-1",), 8, 8192)
    call("worker_pods")
    call("label_pod_pool", "htcondor-kub-006-1", "user")
    call("delete_pods", ("htcondor-kub-006-1",))
    assert call("drain", "kub-005") == 1  # the budget holds ff back
    assert call("drain_left", "kub-005") == 2  # ff, and nb-alice terminating
    assert call("draining", "kub-005")
    server.pdb_blocked.clear()
    assert call("evict", "kub-005") == 0
    call("start_htcondor", "kub-005", "prompt")
    server.nodes["kub-005"]["spec"]["taints"] = []  # someone's `kubectl taint` dropped the broker's
    assert call("keep_marks", kube.node_items()) == ["kub-005"]
    call("return_node", "kub-005")
    server.kubelet_stops()
    call("finish_returns", kube.nodes())
    # Developers' logs (AA2/AA3): a pod's log in every application namespace of the spec.
    for ns in app_namespaces(kube.spec):
        server.namespaces.add(ns)
        server.pods[(ns, "svc")] = pod_obj("svc", "kub-005", namespace=ns)
        assert list(call("pod_log", LogRequest(ns, "svc"))) == []
        # A departed account's rendered binding there (docs/accounts.md, "Reaching the running systems").
        alice = Subject("alice", "staff", "active")
        server.rolebindings[(ns, "enclave-alice-edit")] = binding(alice, ns, Grant("edit"))
    assert call("revoke_bindings", "alice") == len(app_namespaces(kube.spec))
    # The Lease that picks the replica running the broker loop, in enclave's namespace: create, then renew.
    server.namespaces.add(deploy.NAMESPACE)
    lease = LeaseLock(kube.api, namespace=deploy.NAMESPACE, name="enclave-broker", identity="enclave-api-0",
                      duration_s=90, lease_api=kube.spec.cluster.serves(*LEASE_API_SINCE))
    assert lease.held() and lease.held()
    called.add("LeaseLock.held")
    # A home made through a Job where the API pods do not mount the homes (enclave.cluster.homes).
    call("provision_home", account_view("alice", 70001))
    # Provisioned again once that Job has finished: read, deleted and submitted anew (KubeCluster.provision_home).
    job = server.jobs[(deploy.NAMESPACE, "enclave-home-alice")]
    job["status"] = {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}
    call("provision_home", account_view("alice", 70001))
    return called


@pytest.fixture(params=["1.9.3", "1.29.4"])
def spec(request: pytest.FixtureRequest) -> EnclaveSpec:
    """The LDF spec on its own Kubernetes 1.9 (no Lease API: the leader's record is a ConfigMap's; policy/v1beta1
    evictions) and on a current one."""
    ldf = load(EXAMPLES / "lsst-ldf.yaml")
    return ldf.model_copy(update={"cluster": ldf.cluster.model_copy(update={"kubernetes_version": request.param})})


@pytest.fixture
def recorded(kube: KubeCluster, server: ApiServer) -> list[Attrs]:
    called = exercise(kube, server)
    public = {n for n, _ in inspect.getmembers(KubeCluster, inspect.isfunction) if not n.startswith("_")}
    public |= {f"LeaseLock.{n}" for n, _ in inspect.getmembers(LeaseLock, inspect.isfunction) if not n.startswith("_")}
    assert public - {"connect"} <= called, f"exercise() misses {sorted(public - called)}: add them"
    return [attrs(method, path) for method, path, _ in server.requests]


def test_every_request_of_the_adapter_is_allowed(recorded: list[Attrs], spec: EnclaveSpec) -> None:
    rules = grants(deploy.render_deploy(spec, dump(spec)))
    denied = [a for a in set(recorded) if not any(allows(scope, rule, a) for scope, rule, _ in rules)]
    assert not denied, f"the rendered RBAC refuses {denied}"


def test_the_rbac_grants_nothing_the_adapter_never_uses(recorded: list[Attrs], spec: EnclaveSpec) -> None:
    unused = []
    for scope, rule, where in grants(deploy.render_deploy(spec, dump(spec))):
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    used = [a for a in recorded if a.group == group and a.resource == resource and a.verb == verb
                            and (scope is None or a.namespace == scope)]
                    if not used:
                        unused.append((where, scope, group, resource, verb))
                    # A ClusterRole grant used only inside one namespace should have been a Role there.
                    elif scope is None and resource != "nodes" and len({a.namespace for a in used}) < 2:
                        unused.append((where, "cluster-wide", group, resource, verb))
    assert not unused, f"granted but never needed: {unused}"


def test_the_checker_refuses_what_rbac_refuses() -> None:
    # The matching rules themselves, on requests an RBAC authorizer would refuse.
    rule = {"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}
    assert allows("htcondor", rule, attrs("POST", "/api/v1/namespaces/htcondor/pods"))
    assert not allows("htcondor", rule, attrs("POST", "/api/v1/namespaces/jupyter-lsst/pods"))
    assert not allows("htcondor", rule, attrs("POST", "/api/v1/namespaces/htcondor/pods/x/eviction"))
    assert not allows(None, rule, attrs("GET", "/api/v1/namespaces/htcondor/pods"))
    assert attrs("GET", "/apis/apps/v1/namespaces/a/deployments/d") == Attrs("get", "apps", "deployments", "a", "d")
    named = {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["lock"], "verbs": ["get", "create"]}
    assert allows("e", named, attrs("GET", "/api/v1/namespaces/e/configmaps/lock"))
    assert not allows("e", named, attrs("GET", "/api/v1/namespaces/e/configmaps/enclave-spec"))
    assert not allows("e", named, attrs("POST", "/api/v1/namespaces/e/configmaps"))


def test_the_api_may_list_and_delete_rolebindings_in_each_app_namespace_only(spec: EnclaveSpec) -> None:
    # revoke_bindings() after depart, demote and expire: exactly list and delete, in each application namespace
    # (deleting a binding needs no bind or escalate right; RBAC restricts creating and updating one).
    rules = grants(deploy.render_deploy(spec, dump(spec)))
    on_bindings = sorted((scope or "*", verb) for scope, rule, _ in rules for verb in rule["verbs"]
                         if "rolebindings" in rule["resources"] or "*" in rule["resources"])
    assert on_bindings == sorted((ns, verb) for ns in app_namespaces(spec) for verb in ("delete", "list"))
    assert all("rbac.authorization.k8s.io" in rule["apiGroups"] and "resourceNames" not in rule
               for _, rule, _ in rules if "rolebindings" in rule["resources"])
