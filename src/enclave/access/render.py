"""Rendered Kubernetes access (pure): Namespaces, RoleBindings, NetworkPolicies, ResourceQuota, LimitRange.

Input is plain data (:class:`Subject`), so this module never touches the database; ``subjects`` in
``enclave.access.repository`` builds them from accounts. Only API groups and fields that exist from
Kubernetes 1.9 on are used (rbac v1, networking v1, core v1), so the output applies to the 2018 LDF
cluster as well as to current ones; e.g. the DNS rule allows port 53 to any peer because a peer that
combines namespace and pod selectors needs Kubernetes 1.11.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from enclave.access.permissions import Permission, permissions_for
from enclave.outdir import output_dir
from enclave.spec.models import EnclaveSpec, NodeRole, Role

MANAGED = {"app.kubernetes.io/managed-by": "enclave"}
SERVICE_POD_ROOM = 10
"""Pods the notebook namespace's quota leaves beyond one notebook per user when nobody says which service pods run
there (``default_room``); ``enclave render access`` is told (``notebooks.profiles.service_room``)."""

VIEW_ROLE = "enclave-view"
"""The Role a ``view`` binding names: Kubernetes' ``view`` without ``pods/log``. The built-in one reads logs, so a
member or security officer bound to it could read any container's log with kubectl, past ``logs.read`` and the
journal (``may_read_logs``)."""
_READ = ["get", "list", "watch"]
# Kubernetes 1.9's system:aggregate-to-view, which the built-in view aggregates (kubernetes/kubernetes release-1.9,
# plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go), less "pods/log". RBAC takes resource names as given,
# so the 1.9 list applies to later releases too, which only add to view (status subresources, newer APIs).
_VIEW_RULES: list[tuple[str, list[str]]] = [
    ("", ["pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
          "endpoints", "persistentvolumeclaims", "configmaps"]),
    ("", ["limitranges", "resourcequotas", "bindings", "events", "pods/status", "resourcequotas/status",
          "namespaces/status", "replicationcontrollers/status"]),
    ("", ["namespaces"]),
    ("apps", ["controllerrevisions", "statefulsets", "statefulsets/scale", "daemonsets", "deployments",
              "deployments/scale", "replicasets", "replicasets/scale"]),
    ("autoscaling", ["horizontalpodautoscalers"]),
    ("batch", ["jobs", "cronjobs"]),
    ("extensions", ["daemonsets", "deployments", "deployments/scale", "ingresses", "replicasets", "replicasets/scale",
                    "replicationcontrollers/scale"]),
    ("policy", ["poddisruptionbudgets"]),
]
# NetworkPolicies joined view in 1.10 (kubernetes/kubernetes#56650, CHANGELOG-1.10: "admin, edit and view roles now
# have the expected permissions on NetworkPolicy"); 1.9's view could not read them, nor can this Role.


@dataclass(frozen=True)
class ServiceRoom:
    """What the notebook namespace's quota leaves its service pods (the hub, its proxy, the chart's scheduler and image
    pullers: ``notebooks.profiles.service_room``, which knows what the rendered values run there)."""

    pods: int
    cpu: float
    memory_mib: int
    limit_cpu: float
    limit_memory_mib: int


@dataclass(frozen=True)
class Subject:
    username: str
    kind: str
    status: str
    roles: frozenset[Role] = frozenset()
    namespaces: frozenset[str] = field(default_factory=frozenset)


def app_namespaces(spec: EnclaveSpec) -> list[str]:
    names = list(spec.cluster.namespaces)
    if spec.notebooks.namespace not in names:
        names.append(spec.notebooks.namespace)
    return names


NARROWED = "enclave/narrowed"
"""The annotation on a RoleBinding that names less than the subject's roles and membership give elsewhere: why."""
NARROWED_FROM = "enclave/narrowed-from"
"""Beside ``NARROWED``: the role the binding would otherwise name."""
KEY_NARROWING = (
    "a developer's membership binds view here, not edit, while notebooks.batch_tokens.enabled is true: this namespace "
    "holds the HTCondor key that signs any account's batch token (Secret enclave-notebook-key) and every notebook "
    "pod's token Secret, and edit reads Secrets, execs into pods and creates pods mounting any Secret "
    "(docs/batch.md, 'Who can read them'); edit comes back when batch tokens are turned off")


@dataclass(frozen=True)
class Grant:
    """What a subject's RoleBinding in a namespace names (``role``: view, edit or admin) and, when that is less than
    the subject's roles and membership give in other namespaces, why (``narrowed``, the binding's ``NARROWED``)."""

    role: str
    narrowed: str | None = None
    instead_of: str | None = None
    """With ``narrowed``: the role the binding would name elsewhere."""


def holds_notebook_key(spec: EnclaveSpec, namespace: str) -> bool:
    """Whether ``namespace`` holds the hub's HTCondor signing key and the notebook pods' token Secrets: the notebook
    namespace while batch tokens are on (docs/batch.md, "Notebook pods' tokens")."""
    return spec.notebooks.batch_tokens.enabled and namespace == spec.notebooks.namespace


def cluster_role(subject: Subject, namespace: str, spec: EnclaveSpec) -> Grant | None:
    """The role a subject's RoleBinding in a namespace names, or None: the one rule of who gets what.

    k8s cluster and service admins administer every application namespace (§8, §13.1); security views
    every namespace to audit it; a developer edits the namespaces they belong to, which includes reading
    container logs (AA2/AA3); any other member only views. Inactive accounts get nothing.

    Except where the notebook namespace holds the batch-token signing key (``holds_notebook_key``): a developer's
    membership there binds view (``VIEW_ROLE``, no Secrets), narrowed, with ``KEY_NARROWING`` as the reason.
    Kubernetes RBAC cannot keep one Secret from a role that reads Secrets: permissions are purely additive, with no
    deny rule, and resourceNames only name what a rule allows, never a whole collection's list or watch, nor a
    create ("Using RBAC Authorization", Kubernetes docs, "Role and ClusterRole" and "Referring to resources") —
    and the pods' token Secrets get a fresh name at each spawn. The built-in ``edit`` reads and writes secrets
    (get/list/watch among them), and creates pods and pods/exec (Kubernetes 1.9's system:aggregate-to-edit,
    bootstrappolicy/policy.go; "User-facing roles": edit "allows accessing Secrets and running Pods as any
    ServiceAccount in the namespace"). So a developer bound to edit there reads the key, or mounts it in a pod of
    their own, and mints any account's token and the broker's. The Kubernetes administrators keep ``admin``: they
    administer the hub, and could start any account's pod anyway (docs/batch.md, "Who can read them"). The
    membership itself is kept (the accounts' state, not the rendering), so edit comes back when tokens are turned
    off; ``enclave accounts join`` says so (``AccountService.join_namespace``). The narrowing keeps the key only
    while ``edit`` elsewhere is not node root: ``namespace_pod_security`` (Kubernetes 1.23 on).
    """
    if subject.status != "active":
        return None
    if subject.roles & {Role.K8S_CLUSTER_ADMIN, Role.K8S_SERVICE_ADMIN}:
        return Grant("admin")
    if namespace in subject.namespaces and Role.DEVELOPER in subject.roles:
        return Grant("view", KEY_NARROWING, "edit") if holds_notebook_key(spec, namespace) else Grant("edit")
    if namespace in subject.namespaces or Role.SECURITY in subject.roles:
        return Grant("view")
    return None


def may_read_logs(subject: Subject, namespace: str, spec: EnclaveSpec) -> bool:
    """AA2/AA3: logs.read, in a namespace the subject's rendered RoleBinding reaches (``cluster_role``): a
    developer in the namespaces they belong to, a Kubernetes service administrator in every one; nobody with
    logs.read but no binding there (a developer of another namespace), nobody bound there without logs.read —
    whose binding (``VIEW_ROLE``) grants no ``pods/log`` either. (``edit`` and ``admin`` do, so developers' and
    administrators' own kubectl reads are theirs to make, not journaled; a cluster administrator holds
    cluster-admin anyway.) A developer whose membership of the notebook namespace is narrowed to view there
    (``holds_notebook_key``) still reads its logs, through enclave and journaled: a log is no Secret."""
    return (Permission.LOGS_READ in permissions_for(subject.roles)
            and cluster_role(subject, namespace, spec) is not None)


def _meta(name: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {**MANAGED, **(labels or {})}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def cpu_quantity(cores: float) -> str:
    """Cores as a Kubernetes quantity: whole cores plain, else millicores."""
    millis = round(cores * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


POD_SECURITY_ENFORCE = "pod-security.kubernetes.io/enforce"
"""The Namespace label Pod Security admission enforces a Pod Security Standards level by (privileged, baseline or
restricted: https://kubernetes.io/docs/concepts/security/pod-security-admission/); the API server reads it from
Kubernetes 1.23 (beta, on by default; GA in 1.25), and older servers ignore it."""


def pod_security(level: str) -> dict[str, str]:
    """The one rule of enclave's namespaces' Pod Security labels: ``level`` enforced, whatever the cluster's default
    (``namespace_pod_security`` for the application namespaces, ``cluster.deploy`` for the HTCondor workers')."""
    return {POD_SECURITY_ENFORCE: level}


def namespace_pod_security(spec: EnclaveSpec, namespace: str) -> str:
    """The Pod Security level an application namespace enforces. ``baseline`` forbids what makes ``edit`` node root
    (https://kubernetes.io/docs/concepts/security/pod-security-standards/: privileged containers, hostPath volumes,
    the host's network, PID and IPC namespaces, hostPorts, added capabilities): without it a developer with ``edit``
    in any application namespace creates a privileged pod mounting the host's / on the hub's node (``nodeName``)
    and reads the HTCondor signing key from the kubelet's copy of its Secret, every notebook pod's token Secret and
    every home — so narrowing the notebook namespace to ``view`` (``KEY_NARROWING``) kept nothing from them (review
    of `render access`, node_escape). The notebook namespace is ``privileged``: every notebook pod mounts its home
    as a hostPath (``notebooks.profiles``, docs/notebooks.md), which baseline refuses; there nobody but the Kubernetes
    administrators creates pods while the key is there (``cluster_role``). Before Kubernetes 1.23 no level holds:
    ``edit`` anywhere is node root (docs/batch.md, "Who can read them"; docs/hardening.md)."""
    return "privileged" if namespace == spec.notebooks.namespace else "baseline"


def namespace_objects(spec: EnclaveSpec, namespace: str) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": _meta(namespace, labels={"enclave/namespace": namespace,
                                              **pod_security(namespace_pod_security(spec, namespace))})},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": _meta("default-deny", namespace),
         "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": _meta("allow-dns", namespace),
         "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                  "egress": [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}},
        # Policies only add to each other ("Default deny all ingress and all egress traffic", Kubernetes docs,
        # network-policies): without this the namespace's own pods could not reach each other. A bare podSelector
        # peer is the policy's own namespace. The notebook namespace's is narrower (``notebook_same_namespace``).
        notebook_same_namespace(namespace) if namespace == spec.notebooks.namespace else
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": _meta("allow-same-namespace", namespace),
         "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                  "ingress": [{"from": [{"podSelector": {}}]}], "egress": [{"to": [{"podSelector": {}}]}]}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta(VIEW_ROLE, namespace),
         "rules": [{"apiGroups": [group], "resources": resources, "verbs": _READ} for group, resources in _VIEW_RULES]},
    ]
    if namespace == spec.notebooks.namespace:
        objects += [notebook_submit_egress(namespace), chart_api_egress(namespace)]
    return objects


CHART_POLICED = ("hub", "proxy", "autohttps", "singleuser-server")
"""The ``component`` labels of the Zero-to-JupyterHub 4.1.0 pods the chart gives a NetworkPolicy of its own, for
ingress and egress (templates/hub/, proxy/, proxy/autohttps/ and singleuser/netpol.yaml; the label is
``jupyterhub.componentLabel``, templates/_helpers.tpl). Theirs are per pod: a notebook server (``notebook-port``,
8888) admits only pods labelled ``hub.jupyter.org/network-access-singleuser`` (the hub and the proxy), the proxy's
REST API (``api``, 8001) only ``hub.jupyter.org/network-access-proxy-api`` (the hub). NetworkPolicies add up ("a
connection is allowed if any policy allows it", Kubernetes docs, network-policies, "The two sorts of pod
isolation"), so a policy of enclave's that admitted the whole namespace to these pods would undo that: any notebook
would reach any other user's server and the proxy's API (review of `render access`, netpol_same_ns). enclave's
namespace-wide rules leave these pods to the chart's."""
NOT_CHART_POLICED = {"matchExpressions": [{"key": "component", "operator": "NotIn", "values": list(CHART_POLICED)}]}
"""The notebook namespace's other pods: the chart's user-scheduler and image-pullers, and the operator's own (a
commons schedd). ``NotIn`` also selects a pod without a ``component`` label (Kubernetes docs, "Labels and Selectors",
"Set-based requirement")."""
NOTEBOOK_SERVERS = {"matchLabels": {"component": "singleuser-server"}}
"""Every user's notebook pod: KubeSpawner labels it ``component: singleuser-server`` (the chart's singleuser policy
selects it so)."""
SCHEDD_PORT = 9618
"""Where a commons schedd takes submissions: HTCondor's shared port, ``SHARED_PORT_PORT``, whose default is
``$(COLLECTOR_PORT)``, 9618 (htcondor/htcondor src/condor_utils/param_info.in)."""


def notebook_same_namespace(namespace: str) -> dict[str, Any]:
    """``allow-same-namespace`` of the notebook namespace: its pods other than the chart's policed ones
    (``NOT_CHART_POLICED``) reach each other, as in any other namespace, and take notebooks' submissions on
    ``SCHEDD_PORT`` (a commons schedd: docs/batch.md, ``render.commons_schedd``). Notebook servers, the hub, the
    proxy and autohttps are neither selected nor peers: the chart's policies alone say who reaches them and whom they
    reach. Same name as elsewhere, so `kubectl apply` narrows the one a cluster holds (apply never deletes)."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _meta("allow-same-namespace", namespace),
            "spec": {"podSelector": NOT_CHART_POLICED, "policyTypes": ["Ingress", "Egress"],
                     "ingress": [{"from": [{"podSelector": NOT_CHART_POLICED}]},
                                 {"from": [{"podSelector": NOTEBOOK_SERVERS}],
                                  "ports": [{"protocol": "TCP", "port": SCHEDD_PORT}]}],
                     "egress": [{"to": [{"podSelector": NOT_CHART_POLICED}]}]}}


def notebook_submit_egress(namespace: str) -> dict[str, Any]:
    """Notebooks' one flow in their namespace beyond the chart's (the hub, the proxy, DNS): `condor_submit` to a
    commons schedd, a pod of the namespace (``NOT_CHART_POLICED``) on ``SCHEDD_PORT``. The chart's singleuser egress
    admits no pod address (``egressAllowRules.privateIPs: false``, values.yaml), so without this a notebook could not
    submit. Not to another notebook, nor the proxy's API: those are the chart's to admit."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _meta("allow-notebook-submit", namespace),
            "spec": {"podSelector": NOTEBOOK_SERVERS, "policyTypes": ["Egress"],
                     "egress": [{"to": [{"podSelector": NOT_CHART_POLICED}],
                                 "ports": [{"protocol": "TCP", "port": SCHEDD_PORT}]}]}}


CHART_API_CLIENTS = ("user-scheduler", "image-puller")
"""The components of Zero-to-JupyterHub 4.1.0 in the notebook namespace that call the API server and that the chart
gives no NetworkPolicy of its own (only hub, proxy, autohttps and singleuser have one): the user-scheduler, which
every notebook pod is scheduled by (files/hub/jupyterhub_config.py sets KubeSpawner.scheduler_name to it) and which
holds a Lease and binds pods, and the hook-image-awaiter Job (templates/image-puller/job.yaml,
``-api-server-address``). Their ``component`` label is their template folder's name (templates/_helpers.tpl,
``jupyterhub.componentLabel``)."""


def chart_api_egress(namespace: str) -> dict[str, Any]:
    """Egress to the API server for ``CHART_API_CLIENTS``: default-deny (above) cut them off it, so notebook pods
    stayed Pending and ``helm upgrade`` waited on the awaiter (review, stop 48). On 443, the ``kubernetes`` Service's
    port, and 6443, kube-apiserver's own (kubeadm's default), since a policy may see the connection before or after
    the Service's address is translated to the endpoint's, depending on the network plugin. The API server's
    address is not in the spec, so any destination on those ports: the pods are the chart's, not users'."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _meta("allow-chart-api-clients", namespace),
            "spec": {"podSelector": {"matchExpressions": [{"key": "component", "operator": "In",
                                                           "values": list(CHART_API_CLIENTS)}]},
                     "policyTypes": ["Egress"],
                     "egress": [{"ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]}]}}


def default_room(spec: EnclaveSpec) -> ServiceRoom:
    """``SERVICE_POD_ROOM`` pods at the default size's request and limit: what LimitRanger gives a container that
    states no resources (Kubernetes docs, "Configure Default Memory Requests and Limits for a Namespace")."""
    nb = spec.notebooks
    size = nb.sizes.get(nb.default_size) or next(iter(nb.sizes.values()))
    n = SERVICE_POD_ROOM
    return ServiceRoom(n, n * size.cpu_request, n * size.memory_request_mib, n * size.cpu_limit,
                       n * size.memory_limit_mib)


def notebook_limits(spec: EnclaveSpec, spawners: int, room: ServiceRoom | None = None) -> list[dict[str, Any]]:
    """LimitRange from the notebook bounds (§13.2–13.3) and a ResourceQuota sized for ``spawners`` users and the
    service pods' ``room`` (``default_room`` when not told), requests capped at what the Kubernetes workers hold."""
    nb = spec.notebooks
    bounds = nb.bounds
    default = nb.sizes.get(nb.default_size) or next(iter(nb.sizes.values()))
    worker_cores = spec.cores(NodeRole.WORKER)
    worker_mib = int(spec.memory_gib(NodeRole.WORKER) * 1024)
    limit_range = {
        "apiVersion": "v1", "kind": "LimitRange", "metadata": _meta("notebook-bounds", nb.namespace),
        "spec": {"limits": [{
            "type": "Container",
            "min": {"cpu": cpu_quantity(bounds.min_cpu), "memory": f"{bounds.min_memory_mib}Mi"},
            "max": {"cpu": cpu_quantity(bounds.max_cpu), "memory": f"{bounds.max_memory_mib}Mi"},
            "default": {"cpu": cpu_quantity(default.cpu_limit), "memory": f"{default.memory_limit_mib}Mi"},
            "defaultRequest": {"cpu": cpu_quantity(default.cpu_request), "memory": f"{default.memory_request_mib}Mi"},
        }]},
    }
    room = room or default_room(spec)
    quota = {
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": _meta("notebook-quota", nb.namespace),
        "spec": {"hard": {
            "pods": str(spawners + room.pods),
            "requests.cpu": cpu_quantity(min(spawners * bounds.max_cpu + room.cpu, worker_cores)),
            "requests.memory": f"{min(spawners * bounds.max_memory_mib + room.memory_mib, worker_mib)}Mi",
            "limits.cpu": cpu_quantity(spawners * bounds.max_cpu + room.limit_cpu),
            "limits.memory": f"{spawners * bounds.max_memory_mib + room.limit_memory_mib}Mi",
        }},
    }
    return [limit_range, quota]


def _coded(username: str) -> str:
    """A username written with '.', which no username holds (``accounts.lifecycle.USERNAME``:
    ``[a-z][a-z0-9_-]{0,31}``), and otherwise only what both a DNS-1123 subdomain and a label value allow
    (lowercase letters, digits, '-' and '.', a letter or digit at each end of every dot-separated part; Kubernetes
    docs, "Object Names and IDs" and "Labels and Selectors", "Syntax and character set"): the username with each
    '_' as '-' and any trailing '-' dropped (the stem), '.', then 8 hex digits whose bit i is set where character i
    was '_' (a username has at most 32), and, when trailing '-' were dropped, '.' and the username's length.

    Exact, not a hash: the stem, the bits and the length give back the username, so no two usernames share a
    coded form. An 8-hex-digit hash, as before, was neither injective in principle (2^31 usernames differ only in
    which of 31 separators are '_') nor apart from plain usernames: 'a_b' rendered as 'a-b-648fa9b3', itself a
    valid username (review of `render access`, test_collision). Beyond the username alphabet (not a valid
    username: nothing onboards one) each other character counts as a '_' and a hash of the name follows."""
    skeleton = re.sub(r"[^a-z0-9-]", "-", username.lower())
    stem = skeleton.rstrip("-")
    mask = sum(1 << i for i, c in enumerate(username) if skeleton[i] != c)
    coded = f"{stem}.{mask:08x}" if stem == skeleton else f"{stem}.{mask:08x}.{len(username)}"
    if re.fullmatch(r"[a-z0-9_-]*", username) is None:
        coded += "." + hashlib.sha256(username.encode()).hexdigest()[:8]
    return coded


def object_name(username: str) -> str:
    """The user's part of their objects' names (``binding_name``): the username itself when it holds no '_', which
    an object name may not (RFC 1123), else ``_coded``. Injective over usernames: a name without '.' is a username
    unchanged, one with '.' is ``_coded``, which gives the username back. So 'a_b' is 'a-b.00000002' and the
    username 'a-b-648fa9b3' stays itself; a name without '_' is what it was before the coded form (no binding is
    renamed but those of usernames with '_', docs/accounts.md, "Upgrading")."""
    return username if re.fullmatch(r"[a-z0-9-]*", username) else _coded(username)


_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def is_label_value(text: str) -> bool:
    """A valid label value (apimachinery ``IsValidLabelValue``): at most 63 characters, beginning and ending with a
    letter or digit; the API server refuses any other, in an object and in a selector (400)."""
    return len(text) <= 63 and _LABEL_VALUE.fullmatch(text) is not None


def user_label(username: str) -> str:
    """The ``enclave/user`` label value of a username: its ``object_name`` when that is a label value, which must
    begin and end with a letter or digit (apimachinery ``IsValidLabelValue``), else ``_coded`` ('bob-' is
    'bob.00000000.4'). Injective as ``object_name`` is: without '.', the username; with '.', ``_coded``. The control
    plane deletes a departing user's bindings by this label (``KubeCluster.revoke_bindings``), so two users sharing
    one would lose each other's bindings."""
    name = object_name(username)
    return name if is_label_value(name) else _coded(username)


def legacy_user_labels(username: str) -> set[str]:
    """The ``enclave/user`` values earlier releases labelled the user's bindings with, which a cluster may still
    hold: the username itself (before ``user_label``), and the name with each '_' as '-' and '-' and 8 hex digits
    of its sha256 appended, or those digits appended to a name ending in '-' (before ``_coded``). The latter may be
    another user's label now or then ('a_b' was labelled 'a-b-648fa9b3', a valid username), so a binding found by
    them is the user's only if its subject names the user (``KubeCluster._bindings_of``). Only valid label values:
    the API server refuses any other in a selector."""
    digest = hashlib.sha256(username.encode()).hexdigest()[:8]
    hashed = re.sub(r"[^a-z0-9-]", "-", username.lower())
    if hashed != username:
        hashed += "-" + digest
    if not is_label_value(hashed):
        hashed += digest
    return {v for v in (username, hashed) if is_label_value(v)} - {user_label(username)}


def binding_name(username: str, role: str) -> str:
    return f"enclave-{object_name(username)}-{role}"


def binding(subject: Subject, namespace: str, grant: Grant) -> dict[str, Any]:
    """The subject's RoleBinding for ``grant``: ``view`` through ``VIEW_ROLE``, the others to the built-in
    ClusterRole. Its label names the user by ``user_label``; the subject keeps the name as it is. A narrowed grant
    says why and instead of what in the ``NARROWED`` and ``NARROWED_FROM`` annotations."""
    role = grant.role
    ref = ({"kind": "Role", "name": VIEW_ROLE} if role == "view" else {"kind": "ClusterRole", "name": role})
    meta = _meta(binding_name(subject.username, role), namespace, {"enclave/user": user_label(subject.username)})
    if grant.narrowed:
        meta["annotations"] = {NARROWED: grant.narrowed, NARROWED_FROM: grant.instead_of or ""}
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", **ref},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": subject.username}],
    }


def render_access(spec: EnclaveSpec, subjects: Iterable[Subject],
                  room: ServiceRoom | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every object, grouped by namespace, in a stable order (namespaces as in the spec, users by name); ``room``:
    the notebook namespace's service pods (``notebook_limits``)."""
    people = sorted(subjects, key=lambda s: s.username)
    spawners = sum(1 for s in people
                   if s.status == "active" and Permission.NOTEBOOKS_SPAWN in permissions_for(s.roles))
    out: dict[str, list[dict[str, Any]]] = {}
    for namespace in app_namespaces(spec):
        objects = namespace_objects(spec, namespace)
        if namespace == spec.notebooks.namespace:
            objects += notebook_limits(spec, spawners, room)
        for subject in people:
            grant = cluster_role(subject, namespace, spec)
            if grant is not None:
                objects.append(binding(subject, namespace, grant))
        out[namespace] = objects
    return out


@dataclass(frozen=True)
class Narrowed:
    """A RoleBinding rendered with less than the subject's roles and membership give elsewhere (``Grant``)."""

    namespace: str
    username: str
    binding: str
    """The binding rendered."""
    instead_of: str
    """The binding the subject's roles give elsewhere, which a cluster the files were applied to before may still
    hold: `kubectl apply` without ``--prune`` never deletes (docs/accounts.md)."""
    why: str


def narrowed(objects: dict[str, list[dict[str, Any]]]) -> list[Narrowed]:
    """The rendered bindings that carry ``NARROWED``, in render order: what `enclave render access` reports."""
    found = []
    for namespace, docs in objects.items():
        for o in docs:
            notes = o["metadata"].get("annotations", {})
            if o["kind"] == "RoleBinding" and NARROWED in notes:
                username = o["subjects"][0]["name"]
                found.append(Narrowed(namespace, username, o["metadata"]["name"],
                                      binding_name(username, notes[NARROWED_FROM]), notes[NARROWED]))
    return found


# The C dumper is an order of magnitude faster for the thousands of bindings a large enclave renders.
_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def write_yaml(objects: dict[str, list[dict[str, Any]]], out: Path) -> list[Path]:
    """One multi-document file per namespace: DIR/<namespace>.yaml. Returns the files written."""
    output_dir(out)
    written = []
    for namespace, docs in objects.items():
        path = out / f"{namespace}.yaml"
        path.write_text(yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False))
        written.append(path)
    return written
