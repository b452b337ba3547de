"""Kubernetes objects the broker creates, and how it reads the ones it finds — pure functions, no client.

HTCondor worker pods (BCS 4) hold a fixed share of a worker: requests = limits, so the scheduler packs
them like any other pod and HTCondor is told the same cores and memory (``ENCLAVE_POD_CPUS``/``_MIB``, read
by the worker-pod config that ``enclave render condor`` writes). A whole-node pod (BCS 5) runs HTCondor on
a drained worker with the host's network and every core, pinned by ``nodeName`` so the broker's taint
(``BATCH_TAINT_EFFECT``) does not stop it. Labels and annotations carry what the broker needs to observe the state
back after a restart.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from enclave.domain.capacity import NodeState
from enclave.spec.models import WORKER_POD_PREFIX, EnclaveSpec

APP_LABEL = "app.kubernetes.io/name"
WORKER_APP = "htcondor-worker"
POOL_LABEL = "enclave.io/pool"
KIND_LABEL = "enclave.io/startd-kind"
BATCH_LABEL = "enclave.io/batch"
"""On a node: ``draining`` (BCS 5 step 1 under way) or ``htcondor`` (HTCondor runs on the bare node). The node also
carries the broker's taint of that key and value (``broker_taints``)."""
BATCH_TAINT_EFFECT = "NoSchedule"
"""The broker keeps pods off a node it drains or lends whole with a taint of its own, not a cordon
(``spec.unschedulable``): a cordon says nothing of whose it is, and an administrator's ``kubectl drain`` of a
worker lent whole — a cordon the node has already, then the eviction of its HTCondor pod — looked to the broker like a
return, which it ended by uncordoning the node under the administrator's maintenance. With a taint the cordon
stays the administrator's: the broker takes off only its own. NoSchedule, as a cordon: the scheduler places no new
pod that does not tolerate it, and the pods already there stay until the drain's evictions move them, disruption
budgets honoured (NoExecute would have the taint-eviction controller delete them at once, budgets ignored:
https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/). Unlike the cordon's taint, which the
DaemonSet controller's pods tolerate by default (kubernetes.io/docs/concepts/workloads/controllers/daemonset/,
"Taints and tolerations"), it keeps off a DaemonSet pod made while the node is the broker's (a new DaemonSet, a
rolling update) unless that DaemonSet tolerates every taint, as most node agents do (docs/broker.md)."""
SINCE_ANNOTATION = "enclave.io/since"
"""Unix time of the node's last state change, so cooldowns survive a broker restart; on a worker pod, when it was
made or last relabelled, what its startd reads as its pool's since when it (re)starts (``worker_pod``)."""
POOL_CONFIG_ANNOTATION = "enclave.io/startd-config"
"""A worker pod's pool as HTCondor config (``render.pod_pool_config``), which its startd includes from a downward-API
file: the broker writes it, and whoever else can patch the pod could write any config there — no more than patching
the pod already allows: its containers' image may be changed in place (kube-apiserver's ValidatePodUpdate, "pod updates
may not change fields other than `spec.containers[*].image`, …")."""
DRAIN_STUCK_ANNOTATION = "enclave.io/drain-stuck"
"""Unix time a drain of the node was last given up unfinished (``ReturnNode.drain_stuck``): the broker does not
drain it again for ``broker.drain_retry_seconds``, across its restarts too."""
LEASE_API_SINCE = (1, 14)
"""The first Kubernetes with coordination.k8s.io/v1 Lease ("available since v1.14",
https://kubernetes.io/docs/reference/using-api/deprecation-guide/#lease-v122); before it ``lease.LeaseLock`` keeps
its record in the ConfigMap alone, as client-go's ConfigMapLock did, and from it in the ConfigMap and the Lease."""
DEFAULT_NAMESPACE = "htcondor"
CONFIG_FILE = "50-enclave-worker.conf"
"""The key of each worker ConfigMap: the file HTCondor reads from /etc/condor/config.d."""
# Where the HTCondor images (htcondor/execute, built from htcondor/htcondor build/docker/services) take what a pod
# adds, per their README ("Providing Additional Configuration", "Configuring Access and Security"): the image's
# start.sh runs update-config, which copies /root/config/*.conf into /etc/condor/config.d beside the image's own
# files (the partitionable slot, the slot users that keep one job from another, ENABLE_KERNEL_TUNING off), and
# update-secrets, which copies tokens-orig.d into tokens.d and passwords-orig.d into passwords.d with the
# ownership and modes HTCondor wants. A ConfigMap mounted over config.d itself would hide the image's files.
CONFIG_MOUNT = "/root/config"
TOKENS_MOUNT = "/etc/condor/tokens-orig.d"
SIGNING_KEY_MOUNT = "/etc/condor/passwords-orig.d"
WORKER_SECRET = "htcondor-worker"
"""Secret in the worker pods' namespace: ``token``, the IDTOKEN its startd and master advertise with (the image's
README: READ, ADVERTISE_MASTER, ADVERTISE_STARTD), and ``BROKER_KEY``. ``render deploy``'s kustomization makes it
from two files the operator writes (docs/deploy.md)."""
BROKER_KEY = "ENCLAVE"
"""The signing key of the broker's IDTOKEN, a key of its own (HTCondor manual, "Token Authentication": "each pool
signing key is named ... by its corresponding filename in SEC_PASSWORD_DIRECTORY"): a daemon checks a token only
with the key that signed it ("Daemon-to-Daemon Connections": "as long as the server has a copy of the Signing
Key"), and the broker's drains and settings go to the startds and masters in the pods. Not the pool's key ``POOL``:
a daemon holding a key mints itself a ``condor@password`` token for any server that takes that key
(condor_auth_passwd.cpp, the client's "access to the master key"), and POOL is taken by every daemon of the pool;
this one only by those the broker commands."""


SUPERVISOR_FILE = "supervisord.ini"
SUPERVISOR_PATH = "/etc/supervisord.conf"
PRE_EXEC_FILE = "pre-exec.sh"
"""The images run condor_master under supervisord (start.sh: ``exec /usr/bin/supervisord -c /etc/supervisord.conf``),
whose ``stopwaitsecs`` is 10 s by default (supervisord.org, "[program:x] Section Settings"): when the kubelet stops
the pod, supervisord would kill the master 10 s after its SIGTERM, and the startd — shutting down gracefully, its
jobs retiring (condor_startd.V6 startd_main.cpp ``main_shutdown_graceful``: ``releaseAllClaims`` retires each
claim) — would lose its parent and kill them. The worker ConfigMaps carry the image's program with the pod's own
grace (``supervisor_conf``), which the image's own hook installs over its file: start.sh runs
``/root/config/pre-exec.sh`` just before supervisord. Not a subPath mount: a kubelet before 1.19 cannot remount a
ConfigMap subPath once the map changed, and the container then crash-loops (kubernetes/kubernetes#68211). Named
``.ini`` so the image's update-config, which copies /root/config/*.conf into config.d, leaves it out."""


def supervisor_conf(spec: EnclaveSpec) -> str:
    """The images' supervisord.conf (htcondor/htcondor build/docker/services/base/supervisord.conf: supervisord as
    root in the foreground, its control socket, condor_master -f) with ``stopwaitsecs`` the pod's grace."""
    from enclave.batch.render import pod_grace_seconds

    return "\n".join([
        "; Rendered by enclave: the HTCondor image's supervisord.conf, condor_master given the pod's grace to stop.",
        "[supervisord]", "user = root", "nodaemon = true", "logfile = /var/log/supervisord.log", "",
        "[unix_http_server]", "file = /var/run/supervisord.sock", "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
        "[supervisorctl]", "serverurl = unix:///var/run/supervisord.sock", "",
        "[program:condor_master]", "user = root", "command = /usr/sbin/condor_master -f",
        f"stopwaitsecs = {pod_grace_seconds(spec)}", ""])


def config_map_name(whole_node: bool) -> str:
    """Each pod shape has its own ConfigMap: the startd says which it is (``EnclaveStartdKind``: a share is a
    "pod", a whole worker's a "node"), which the broker reads to tell how to give it back."""
    return "htcondor-worker-whole" if whole_node else "htcondor-worker-partitioned"


def worker_config_maps(spec: EnclaveSpec, namespace: str = DEFAULT_NAMESPACE) -> list[dict[str, Any]]:
    """The ConfigMaps the worker pods mount, one per pod shape, holding the rendered worker-pod config."""
    from enclave.batch.render import worker_pod as worker_config

    return [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": config_map_name(whole), "namespace": namespace,
                          "labels": {APP_LABEL: WORKER_APP, KIND_LABEL: "node" if whole else "pod"}},
             "data": {CONFIG_FILE: worker_config(spec, whole_node=whole).text, SUPERVISOR_FILE: supervisor_conf(spec),
                      PRE_EXEC_FILE: f"install -m 0644 {CONFIG_MOUNT}/{SUPERVISOR_FILE} {SUPERVISOR_PATH}\n"}}
            for whole in (True, False)]


def pool_annotations(pool: str, since: float) -> dict[str, str]:
    """A worker pod's annotations for its pool, set at its creation and patched by a relabel (with ``POOL_LABEL``):
    when it got the pool, and the config its startd reads them from after a restart (``render.pod_pool_config``)."""
    from enclave.batch.render import pod_pool_config

    return {SINCE_ANNOTATION: f"{since:.0f}", POOL_CONFIG_ANNOTATION: pod_pool_config(pool, since)}


_POOL_FIELD = f"metadata.labels['{POOL_LABEL}']"
_SINCE_FIELD = f"metadata.annotations['{SINCE_ANNOTATION}']"
_CONFIG_FIELD = f"metadata.annotations['{POOL_CONFIG_ANNOTATION}']"


def node_pod_name(node: str) -> str:
    return f"{WORKER_POD_PREFIX}node-{node}"


def worker_pod(spec: EnclaveSpec, *, name: str, node: str, pool: str, cores: int, memory_mib: int,
               image: str, since: float, namespace: str = DEFAULT_NAMESPACE,
               whole_node: bool = False) -> dict[str, Any]:
    """The manifest of one HTCondor worker pod (``whole_node``: BCS 5 on a drained node), created at ``since`` (Unix
    seconds, the broker's clock)."""
    from enclave.batch.render import (
        POD_CPUS_ENV,
        POD_INFO_DIR,
        POD_MEMORY_ENV,
        POD_NODE_ENV,
        POD_POOL_ENV,
        POD_POOL_FILE,
        POD_SINCE_ENV,
        pod_grace_seconds,
    )

    env: list[dict[str, Any]] = [
        # The pool and its since from the pod's own label and annotation (the downward API, read as the container
        # starts), which a relabel patches (``KubeCluster.label_pod_pool``): the relabel's runtime setting "is lost on
        # restarts" (htcondor/htcondor src/condor_daemon_core.V6/README.config, DC_CONFIG_RUNTIME), so a container
        # that restarts (its worker's reboot, supervisord's crash) comes back in the pool it was moved to. A startd
        # its master restarts inside the container reads them from the "pod-info" volume below, which the kubelet
        # keeps up to date, where the environment is the container's at its start.
        {"name": POD_POOL_ENV, "valueFrom": {"fieldRef": {"fieldPath": _POOL_FIELD}}},
        {"name": POD_SINCE_ENV, "valueFrom": {"fieldRef": {"fieldPath": _SINCE_FIELD}}},
        {"name": POD_NODE_ENV, "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "CONDOR_HOST", "value": spec.batch.central_manager},
    ]
    container: dict[str, Any] = {
        "name": "startd",
        "image": image,
        "env": env,
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
            {"name": "token", "mountPath": TOKENS_MOUNT, "readOnly": True},
            {"name": "signing-key", "mountPath": SIGNING_KEY_MOUNT, "readOnly": True},
            {"name": "software", "mountPath": "/software", "readOnly": True},
            {"name": "pod-info", "mountPath": POD_INFO_DIR, "readOnly": True},
        ],
    }
    pod_spec: dict[str, Any] = {
        "nodeName": node,
        "restartPolicy": "Always",
        # Running jobs get the pool's grace to retire when the pod is deleted (BCS 3 drains first anyway).
        "terminationGracePeriodSeconds": pod_grace_seconds(spec),
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": config_map_name(whole_node)}},
            # Read by root alone (0400): the image's update-secrets installs the copies 0600, root's.
            {"name": "token", "secret": {"secretName": WORKER_SECRET, "defaultMode": 0o400,
                                         "items": [{"key": "token", "path": "token"}]}},
            {"name": "signing-key", "secret": {"secretName": WORKER_SECRET, "defaultMode": 0o400,
                                               "items": [{"key": BROKER_KEY, "path": BROKER_KEY}]}},
            {"name": "software", "hostPath": {"path": "/software", "type": "Directory"}},
            # One label's or annotation's value by key, in a volume as in the environment, since Kubernetes 1.9
            # (CHANGELOG-1.9.md, Node, Pod API: kubernetes/kubernetes#55902).
            {"name": "pod-info", "downwardAPI": {"items": [
                {"path": POD_POOL_FILE, "fieldRef": {"fieldPath": _CONFIG_FIELD}}]}},
        ],
    }
    if whole_node:
        pod_spec["hostNetwork"] = True
        # On the host's network a pod resolves through the node's resolver unless told otherwise, and a central
        # manager named as a Service would not resolve (kubernetes.io/docs/concepts/services-networking/
        # dns-pod-service/#pod-s-dns-policy: "ClusterFirstWithHostNet" for pods running with hostNetwork).
        pod_spec["dnsPolicy"] = "ClusterFirstWithHostNet"
        # The broker's taint, and a cordon (an administrator's, or the broker's own from before its taint): bound by
        # ``nodeName``, the pod passes no scheduler, but said here it holds for whoever reads the pod.
        pod_spec["tolerations"] = [{"key": BATCH_LABEL, "operator": "Exists", "effect": BATCH_TAINT_EFFECT},
                                   {"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                    "effect": "NoSchedule"}]
        container["securityContext"] = {"privileged": True}
    # NUM_CPUS and MEMORY as the image's README names them too: its start.sh writes them (default 1 core and
    # 1024 MiB) into 01-env.conf, which the rendered file, read after it, overrides with the same figures.
    env += [{"name": POD_CPUS_ENV, "value": str(cores)}, {"name": POD_MEMORY_ENV, "value": str(memory_mib)},
            {"name": "NUM_CPUS", "value": str(cores)}, {"name": "MEMORY", "value": str(memory_mib)}]
    amount = {"cpu": str(cores), "memory": f"{memory_mib}Mi"}
    # A share is held to its request (Guaranteed); a whole worker's pod requests what the node has left
    # (``KubeCluster._room_left``) with no limit (Burstable), so the kubelet's admission and eviction count it.
    container["resources"] = {"requests": dict(amount)} if whole_node else {"requests": dict(amount),
                                                                             "limits": dict(amount)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {APP_LABEL: WORKER_APP, POOL_LABEL: pool, KIND_LABEL: "node" if whole_node else "pod"},
            "annotations": pool_annotations(pool, since),
        },
        "spec": pod_spec,
    }


def node_state(node: dict[str, Any]) -> NodeState:
    """A node's broker state from its Kubernetes object (as a plain dict, the API's JSON)."""
    status = node.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    if not ready:
        return NodeState.DOWN
    if any(t["effect"] == "NoExecute" for t in refusing_taints(node)):
        # Tainted to empty it (maintenance, a repair): the taint-eviction controller evicts every pod that does not
        # tolerate the taint, pods bound by nodeName too — the broker's worker pods tolerate none, a whole worker's
        # only the broker's taint and the cordon's, both NoSchedule (``worker_pod``)
        # (https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/#taint-based-evictions).
        # Whatever the broker had it doing: a worker lent whole loses its startd as one NotReady for long does, and
        # is given back once the taint goes (``KubeCluster.finish_returns``); a draining one is emptied anyway.
        return NodeState.DOWN
    taint = broker_taint(node)
    batch = batch_label(node) or (taint or {}).get("value")
    if batch == "htcondor":
        return NodeState.HTCONDOR
    if batch == "draining":
        # Cordoned by someone else while the broker drained it: their maintenance, where HTCondor does not start;
        # the broker gives it back (``KubeCluster.keep_marks``). A worker lent whole stays the broker's while its
        # HTCondor pod runs (a cordon evicts nothing), and is given back once their drain evicts it.
        return NodeState.DOWN if someone_cordoned(node) else NodeState.DRAINING
    if (node.get("spec") or {}).get("unschedulable"):
        return NodeState.DOWN  # cordoned by someone else (maintenance): not ours to use
    return NodeState.READY


def batch_label(node: dict[str, Any]) -> str | None:
    """The value of the broker's label on the node (``BATCH_LABEL``), if it has one."""
    return ((node.get("metadata") or {}).get("labels") or {}).get(BATCH_LABEL)


def broker_taint(node: dict[str, Any]) -> dict[str, Any] | None:
    """The broker's taint on the node, if it has one. The broker sets it with its label in one patch
    (``KubeCluster._mark``), so they say the same unless someone changed one by hand: the node is the broker's while
    either says so, and giving it back takes both off."""
    return next((t for t in (node.get("spec") or {}).get("taints") or [] if t.get("key") == BATCH_LABEL), None)


def batch_taint(batch: str) -> dict[str, Any]:
    """The broker's taint for a node it holds for ``batch`` (``draining``, ``htcondor``)."""
    return {"key": BATCH_LABEL, "value": batch, "effect": BATCH_TAINT_EFFECT}


def node_since(node: dict[str, Any]) -> float:
    return _stamp(node, SINCE_ANNOTATION, 0.0)


def node_drain_stuck(node: dict[str, Any]) -> float:
    """``Node.drain_stuck``: -inf when no drain of it was given up (or the annotation is not a time)."""
    return _stamp(node, DRAIN_STUCK_ANNOTATION, -math.inf)


def _stamp(node: dict[str, Any], annotation: str, missing: float) -> float:
    raw = ((node.get("metadata") or {}).get("annotations") or {}).get(annotation)
    try:
        return float(raw) if raw is not None else missing
    except ValueError:
        return missing


def pod_requests(pod: dict[str, Any]) -> tuple[Decimal, Decimal]:
    """(cores, bytes) a pod requests, as the scheduler's NodeResourcesFit and the kubelet's admission count them
    (k8s.io/component-helpers resource/helpers.go, ``PodRequests`` and ``aggregateContainerResourcesByFn``; the
    sidecar KEP 753, "Resources calculation for scheduling and pod admission"):

    - the containers' requests summed, with the sidecars' (init containers whose ``restartPolicy`` is Always: they
      run beside the containers);
    - at least what any other init container needs while it runs: its own request plus the sidecars before it;
    - a pod-level request (``spec.resources.requests``, PodLevelResources) in place of the sum, for what it names;
    - and the RuntimeClass's ``spec.overhead``."""
    spec = pod.get("spec") or {}
    return _request(spec, "cpu"), _request(spec, "memory")


def _request(spec: dict[str, Any], resource: str) -> Decimal:
    """One resource of ``pod_requests``."""
    total = sum((_amount(c.get("resources"), resource) for c in spec.get("containers") or []), Decimal(0))
    sidecars = Decimal(0)
    init_use = Decimal(0)
    for c in spec.get("initContainers") or []:
        need = _amount(c.get("resources"), resource)
        if c.get("restartPolicy") == "Always":
            total += need
            sidecars += need
            need = sidecars
        else:
            need += sidecars
        init_use = max(init_use, need)
    total = max(total, init_use)
    if resource in ((spec.get("resources") or {}).get("requests") or {}):
        total = _amount(spec.get("resources"), resource)
    return total + _amount({"requests": spec.get("overhead") or {}}, resource)


def _amount(resources: dict[str, Any] | None, resource: str) -> Decimal:
    """A request of ``resources`` (a container's, the pod's), 0 if it names none; parsed as the API server does."""
    from kubernetes.utils import parse_quantity

    raw = ((resources or {}).get("requests") or {}).get(resource, "0")
    return Decimal(parse_quantity(raw))  # type: ignore[no-untyped-call]


def is_worker_pod(pod: dict[str, Any]) -> bool:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(APP_LABEL) == WORKER_APP


def is_node_pod(pod: dict[str, Any]) -> bool:
    """The pod that runs HTCondor on a whole drained node (BCS 5)."""
    return is_worker_pod(pod) and ((pod.get("metadata") or {}).get("labels") or {}).get(KIND_LABEL) == "node"


def drain_refusal(pod: dict[str, Any], *, force: bool, ignore_daemonsets: bool,
                  delete_emptydir_data: bool) -> str | None:
    """Why ``kubectl drain`` with these flags would refuse to drain a node holding ``pod`` (None: it would not).

    The rules and messages of kubectl's pod filters (pkg/drain/filters.go: daemonSetFilter, localStorageFilter,
    unreplicatedFilter; https://github.com/kubernetes/kubectl/blob/master/pkg/drain/filters.go). Pods
    ``is_evictable`` passes over (mirror and finished pods) are never refused. enclave's own HTCondor worker
    pods have no controller object, but enclave is their controller: they never need --force.
    """
    meta = pod.get("metadata") or {}
    owners = [o for o in meta.get("ownerReferences") or [] if o.get("controller")]
    if any(o.get("kind") == "DaemonSet" for o in owners):
        # daemonSetFilter: "Any finished pod can be removed", before the flag is looked at (review, stop 53)
        if ignore_daemonsets or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return None
        return "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"
    if not is_evictable(pod):
        return None
    volumes = (pod.get("spec") or {}).get("volumes") or []
    if not delete_emptydir_data and any("emptyDir" in v for v in volumes):
        return "cannot delete Pods with local storage (use --delete-emptydir-data to override)"
    if not force and not owners and not is_worker_pod(pod):
        return "cannot delete Pods that declare no controller (use --force to override)"
    return None


def is_evictable(pod: dict[str, Any]) -> bool:
    """What ``kubectl drain`` evicts: not DaemonSet pods, not static (mirror) pods, not finished pods."""
    meta = pod.get("metadata") or {}
    if any(o.get("kind") == "DaemonSet" for o in meta.get("ownerReferences") or []):
        return False
    if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
        return False
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def counts_on_node(pod: dict[str, Any]) -> bool:
    """Whether a pod still holds its requests on the node: not finished. One being deleted still does until the API
    server has removed it, as the scheduler counts it (kube-scheduler drops a pod from its node's resources only
    once it is deleted: kubernetes/kubernetes#96515, #87621), so a drain has not finished while evicted pods
    terminate, and a spawn is not counted to fit where they still hold room."""
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def admits(pod: dict[str, Any], node: dict[str, Any]) -> bool:
    """Whether the pod's node selector and required node affinity let it run on ``node``, as kube-scheduler's
    NodeAffinity filter decides (https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/;
    k8s.io/component-helpers/scheduling/corev1/nodeaffinity, GetRequiredNodeAffinity): every ``nodeSelector``
    label, and — when ``requiredDuringSchedulingIgnoredDuringExecution`` is set — one of its ``nodeSelectorTerms``,
    each term's expressions and fields all holding (an empty term matches nothing). Taints are ``tolerates``'s."""
    if not pinned(pod):
        return True
    spec = pod.get("spec") or {}
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    fields = {"metadata.name": meta.get("name") or ""}
    return any(_term_holds(t, labels, fields) for t in required.get("nodeSelectorTerms") or [])


def pinned(pod: dict[str, Any]) -> bool:
    """The pod names a node selector or a required node affinity: ``admits`` may refuse it some nodes."""
    spec = pod.get("spec") or {}
    affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    return bool(spec.get("nodeSelector")) or "requiredDuringSchedulingIgnoredDuringExecution" in affinity


STATE_TAINTS = frozenset({"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable",
                          "node.kubernetes.io/unschedulable", BATCH_LABEL})
"""The taints the node lifecycle controller and a cordon put on a node for what ``node_state`` reads already (its
Ready condition, ``spec.unschedulable``; k8s.io/api core/v1 well_known_taints.go), and the broker's own (its
batch label): such a node is not ready for the broker, whatever a pod tolerates."""


def broker_taints(node: dict[str, Any], batch: str | None) -> list[dict[str, Any]]:
    """The node's taints (as the API reports it) with the broker's set to ``batch`` (None: taken off), the others
    kept as they are, in their order. A patch replaces a node's taints whole, so it must carry the others too:
    core/v1 NodeSpec.Taints is ``+listType=atomic`` since k8s.io/api 1.30, and before it had no patch strategy,
    which strategic merge patch takes the same way (apimachinery strategicpatch ``mergeSliceHandler``: a list is
    merged only under ``patchStrategy: merge``)."""
    taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("key") != BATCH_LABEL]
    if batch is not None:
        taints.append(batch_taint(batch))
    return taints


def broker_cordoned(node: dict[str, Any]) -> bool:
    """Whether the node's cordon is the broker's own, from before it held nodes by its taint: labelled for batch
    and cordoned, without the taint (``BATCH_TAINT_EFFECT``). The broker's next mark of such a node takes the cordon
    off as it puts the taint on (``KubeCluster._mark``); any other cordon is someone else's and stays. An
    administrator's cordon of such a node cannot be told from the broker's, and goes with it."""
    return (batch_label(node) is not None and bool((node.get("spec") or {}).get("unschedulable"))
            and broker_taint(node) is None)


def someone_cordoned(node: dict[str, Any]) -> bool:
    """Whether someone other than the broker cordoned the node (an administrator's ``kubectl cordon`` or ``drain``):
    the broker holds nodes by its taint, not a cordon (``BATCH_TAINT_EFFECT``), save those of ``broker_cordoned``."""
    return bool((node.get("spec") or {}).get("unschedulable")) and not broker_cordoned(node)


def refusing_taints(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The node's taints that keep a pod off unless it tolerates them: kube-scheduler's TaintToleration filter
    looks at effects NoSchedule and NoExecute only (pkg/scheduler/framework/plugins/tainttoleration, Filter;
    PreferNoSchedule only scores). ``STATE_TAINTS`` are left out (``node_state`` reads them)."""
    return [t for t in (node.get("spec") or {}).get("taints") or []
            if t.get("effect") in ("NoSchedule", "NoExecute") and t.get("key") not in STATE_TAINTS]


def tolerates(pod: dict[str, Any], taints: list[dict[str, Any]]) -> bool:
    """Whether the pod tolerates each of ``taints`` (``refusing_taints``), as k8s.io/api core/v1 toleration.go
    ToleratesTaint matches one: an empty toleration effect matches every effect, else the effects are equal; an
    empty key (operator Exists) matches every key, else the keys are equal; operator Exists matches any value,
    Equal (the default) the same value; any other operator matches nothing."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    return all(any(_tolerated(t, taint) for t in tolerations) for taint in taints)


def _tolerated(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    effect, key = toleration.get("effect") or "", toleration.get("key") or ""
    if effect and effect != taint.get("effect"):
        return False
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def _term_holds(term: dict[str, Any], labels: dict[str, str], fields: dict[str, str]) -> bool:
    expressions, on_fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not expressions and not on_fields:
        return False  # "A null or empty node selector term matches no objects" (NodeSelectorTerm, core/v1)
    return (all(_holds(e, labels) for e in expressions)
            and all(_holds(e, fields) for e in on_fields))


def _holds(e: dict[str, Any], values: dict[str, str]) -> bool:
    """One NodeSelectorRequirement (core/v1 NodeSelectorOperator: In, NotIn, Exists, DoesNotExist, Gt, Lt; Gt and
    Lt compare the value as an integer, and a label that is not one does not match)."""
    key, op, wanted = e.get("key") or "", e.get("operator"), e.get("values") or []
    has = key in values
    value = values.get(key, "")
    if op == "In":
        return has and value in wanted
    if op == "NotIn":
        return not has or value not in wanted
    if op == "Exists":
        return has
    if op == "DoesNotExist":
        return not has
    if op in ("Gt", "Lt") and has and len(wanted) == 1:
        try:
            mine, bound = int(value), int(wanted[0])
        except ValueError:
            return False
        return mine > bound if op == "Gt" else mine < bound
    return False
