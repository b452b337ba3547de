"""The live Kubernetes adapter, through the official ``kubernetes`` client.

Covers the Kubernetes half of the broker's Backend: which workers exist and what their pods request, the
HTCondor worker pods (BCS 3, 4), the broker's taint and drain through the Eviction API (BCS 5 step 1, so
PodDisruptionBudgets are honoured), HTCondor on a drained node (BCS 5 steps 2–3) and the way back.
Every call is idempotent: creating what exists (409) or deleting what is gone (404) is success.

Connecting: ``KubeCluster.connect(spec)`` loads the in-cluster service account when run in a pod, else
``~/.kube/config`` (or ``$KUBECONFIG``). The account needs nodes get/list/patch, pods list and pods/eviction
create in every namespace, pods create/delete/patch in the batch namespace, and pods/log get and rolebindings
list/delete in the application namespaces (developers' logs, ``pod_log``; a departed account's bindings,
``revoke_bindings``): ``enclave.cluster.deploy``
renders exactly that, and tests/deploy/test_rbac.py checks it against every request this module makes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3 import Retry
from urllib3.exceptions import HTTPError

from enclave.access.render import MANAGED, app_namespaces, legacy_user_labels, user_label
from enclave.accounts.homes import Provisioned
from enclave.accounts.types import AccountView
from enclave.cluster import objects
from enclave.cluster.homes import home_job
from enclave.domain.capacity import Node, NodeState, PendingSpawn, Startd, StartdKind
from enclave.domain.logs import LogRequest
from enclave.errors import Conflict, EnclaveError, ExternalError, InputError, InvalidTransition, NotFound, Problem
from enclave.logs import event, logger
from enclave.spec.models import DrainFlags, EnclaveSpec, NodeRole, QuotaTool

_MIB = Decimal(1024 * 1024)
# KubeSpawner labels every user server pod with its ``component_label`` trait, "singleuser-server" unless
# configured otherwise; enclave.notebooks (hook.configure, profiles.z2jh_values) leaves it at that default.
# Z2JH's user-placeholder pods carry component=user-placeholder instead.
NOTEBOOK_SELECTOR = "component=singleuser-server"
# kube-scheduler's NodeResourcesFit reasons, as they appear in the PodScheduled condition's message
# ("0/20 nodes are available: 3 Insufficient cpu, 17 Insufficient memory.").
_SHORT_OF = ("Insufficient cpu", "Insufficient memory")


REQUEST_TIMEOUT = (10.0, 60.0)
"""Seconds to connect to the API server and to wait for its answer, on every call: without them a server that
accepts the connection and never answers blocks the broker's cycle under its lock for ever. The answer's is
kube-apiserver's own limit on a request (``--request-timeout``, 1m0s by default), within the 90 s Lease a
single call must stay under (``enclave.cluster.lease``); a followed log has ``FOLLOW_TIMEOUT``."""

FOLLOW_TIMEOUT = (REQUEST_TIMEOUT[0], 86400.0)
"""A followed log (``kubectl logs -f``) waits for lines as long as they take, but not for a server that never
accepts the connection: the same connect timeout, and a day without a line as the read one. The client takes no
"none" for either (its methods' ``_request_timeout`` is validated as positive numbers, kubernetes 37
``CoreV1Api.read_namespaced_pod_log``)."""

_log = logger("cluster")

PAGE_SIZE = 500
"""Items a page of a listing that grows with the cluster asks (``_paged``): kubectl's default ``--chunk-size``
(kubectl pkg/cmd/util/helpers.go, ``DefaultChunkSize = 500``) and client-go's pager's (tools/pager/pager.go,
``defaultPageSize = 500``). The API server then reads and encodes every pod of a large cluster a page at a time,
not in one answer."""

RETRIES = Retry(total=0)
"""One try per call: urllib3's default (3 retries) would make a call that times out take four times as long, past
the Lease; the broker's next cycle is the retry (``KubeCluster.connect``, ``Factory.live_backend``)."""

_UNREACHED = (ApiException, HTTPError)
"""What a call may fail with: the API server's refusal, or no answer at all (urllib3 gave up: connection refused,
reset, timed out), which is reported as an ``ExternalError``, never as a crash of the cycle or a bare 500."""

_ANY = object()
MARK_TRIES, MARK_RETRY_SECONDS = 5, 0.01
"""Reads and patches of a node that changed in between before ``KubeCluster._mark`` gives up, and the wait between
them: client-go's retry.DefaultRetry (k8s.io/client-go/util/retry/util.go: ``Steps: 5``, ``Duration: 10ms``)."""


def _external(what: str, exc: ApiException | HTTPError) -> ExternalError:
    if not isinstance(exc, ApiException):
        return ExternalError(f"Kubernetes API: {what} failed, the API server did not answer ({exc})",
                             where="Kubernetes", fix="check the server address in the kubeconfig and that the API "
                                                     "server runs and is reachable from here")
    # The server's own words (its Status message) say what to fix; the HTTP reason alone does not.
    return ExternalError(f"Kubernetes API: {what} failed ({exc.status}: {_message(exc)})", where="Kubernetes",
                         fix="check the API server and that the broker's service account may do this (RBAC)")


@dataclass(frozen=True)
class WorkerPod:
    name: str
    node: str
    pool: str
    kind: StartdKind
    cores: int
    memory_mib: int
    since: float = 0.0
    """When the broker made it or last relabelled it (``objects.SINCE_ANNOTATION``); 0 if not set."""
    running: bool = False
    """It runs: phase Running and each container's state running (not waiting on an image pull, a crash loop)."""
    deleting: bool = False
    """Marked for deletion: its kubelet is stopping it, and the API server keeps its name until it has."""


class KubeCluster:
    """Kubernetes for the broker. One instance per enclave spec."""

    def __init__(self, spec: EnclaveSpec, api: k8s.ApiClient, *, namespace: str = objects.DEFAULT_NAMESPACE,
                 image: str | None = None, clock: Callable[[], float] = time.time) -> None:
        self.spec = spec
        self.api = api
        self.core = k8s.CoreV1Api(api)
        self.namespace = namespace
        # The worker image by digest when the spec pins it (the admission policy admits only digests).
        self.image = image or spec.registry.system_images.get("htcondor-worker") \
            or f"{spec.registry.host}/htcondor/execute:25"
        self.clock = clock
        self.groups = {g.name: g for g in spec.cluster.node_groups}
        self._drains: dict[str, tuple[DrainFlags, int | None]] = {}
        """Node → the flags and grace period it was drained with (``drain``), for its later eviction rounds."""
        # policy/v1 Eviction exists from 1.22; older API servers (the seed's 1.9) take policy/v1beta1.
        self._eviction_api = "policy/v1" if spec.cluster.serves(1, 22) else "policy/v1beta1"

    @classmethod
    def connect(cls, spec: EnclaveSpec, kubeconfig: Path | None = None, **kwargs: Any) -> KubeCluster:
        """The adapter on ``kubeconfig``'s cluster, else in-cluster credentials, else $KUBECONFIG or
        ~/.kube/config; each call tried once (``RETRIES``)."""
        from kubernetes import config

        configuration = k8s.Configuration()
        if kubeconfig is not None:
            try:
                config.load_kube_config(config_file=str(kubeconfig),  # type: ignore[no-untyped-call]
                                        client_configuration=configuration)
            except (config.ConfigException, OSError) as exc:
                raise ExternalError(f"cannot read kubeconfig {kubeconfig}: {exc}", where="--kubeconfig",
                                    fix="give a readable kubeconfig for the cluster") from exc
        else:
            try:
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            except config.ConfigException:
                try:
                    config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
                except (config.ConfigException, OSError) as exc:
                    raise ExternalError(f"no Kubernetes credentials: {exc}", where="kubeconfig",
                                        fix="run inside the cluster, or point $KUBECONFIG at a kubeconfig") from exc
        configuration.retries = RETRIES
        return cls(spec, k8s.ApiClient(configuration), **kwargs)

    def _plain(self, obj: Any) -> Any:
        return self.api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]

    @staticmethod
    def _json(response: Any) -> dict[str, Any]:
        """A listing (a page of one) from the API server's JSON as it sent it (``_preload_content=False``): building
        the client's models and turning them back into the same dicts (``_plain``) cost six times the JSON's parsing,
        for every pod of the cluster, on every observation and before every action (review: ~6 s at 5,000 pods). The
        client still raises the server's refusals before handing the response back, as for the pod log."""
        try:
            return dict(json.loads(response.data))
        finally:
            response.release_conn()

    def _list(self, what: str, call: Callable[..., Any], *, paged: bool, **kwargs: Any) -> list[dict[str, Any]]:
        """The items ``call`` (a CoreV1Api listing) lists with ``kwargs``: in pages (``_paged``) or, for a listing
        bounded whatever the cluster's size, in one request."""
        def page(**paging: Any) -> dict[str, Any]:
            return self._json(call(**kwargs, **paging, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))

        try:
            return _paged(page) if paged else list(page().get("items") or [])
        except _UNREACHED as exc:
            raise _external(what, exc) from exc

    # --- observe -----------------------------------------------------------------------------------

    def _pods(self, **kwargs: Any) -> list[dict[str, Any]]:
        """Pods of every namespace, as the selectors in ``kwargs`` choose: all of them or the worker pods, as many as
        the cluster has, so in pages."""
        return self._list("listing pods", self.core.list_pod_for_all_namespaces, paged=True, **kwargs)

    def _pods_on(self, node: str) -> list[dict[str, Any]]:
        """The pods bound to ``node``, in pages too (mostly one): a node runs at most the kubelet's maxPods, 110 by
        default (pkg/kubelet/apis/config/v1beta1/defaults.go), but its finished pods stay bound to it until the pod
        garbage collector deletes them, past 12,500 in the cluster (pkg/controller/podgc/config/v1alpha1/
        defaults.go, TerminatedPodGCThreshold), as kubectl drain pages them (pkg/drain/drain.go, GetPodsForDeletion:
        ``Limit: d.ChunkSize``)."""
        return self._pods(field_selector=f"spec.nodeName={node}")

    def node_items(self) -> list[dict[str, Any]]:
        """The nodes as the API lists them (labels, conditions, allocatable), in pages: one listing ``nodes`` and
        ``pending_notebooks`` may share."""
        return self._list("listing nodes", self.core.list_node, paged=True)

    def nodes(self, items: list[dict[str, Any]] | None = None) -> list[Node]:
        """The spec's Kubernetes nodes (control plane and workers) as the API reports them (``items``: a listing
        the caller has, else one is made).

        Cores and memory are the node's ``status.allocatable``, not the spec's hardware: the scheduler fits pods
        against capacity less kube-reserved, system-reserved and the eviction threshold, and a broker counting
        the hardware would believe a spawn fits where the scheduler says Insufficient cpu.
        """
        items = self.node_items() if items is None else items
        cpu: dict[str, Decimal] = {}
        mem: dict[str, Decimal] = {}
        daemons: dict[str, Decimal] = {}  # what a drain leaves there (``Node.k8s_cores_daemons``)
        for pod in self._pods():
            node = (pod.get("spec") or {}).get("nodeName")
            if not node or objects.is_worker_pod(pod) or not objects.counts_on_node(pod):
                continue
            c, m = objects.pod_requests(pod)
            cpu[node] = cpu.get(node, Decimal(0)) + c
            mem[node] = mem.get(node, Decimal(0)) + m
            if not objects.is_evictable(pod):  # running and still counted: a DaemonSet's or a static pod
                daemons[node] = daemons.get(node, Decimal(0)) + c
        found = {}
        for item in items:
            name = item["metadata"]["name"]
            group = self._group_of(name)
            if group is None or group.role == NodeRole.BATCH_ONLY:
                continue
            cores, memory_mib = _allocatable(item, group.cores, int(group.memory_gib * 1024))
            found[name] = Node(name=name, group=group.name, role=group.role, cores=cores,
                               memory_mib=memory_mib, state=objects.node_state(item),
                               k8s_cores_requested=float(cpu.get(name, 0)),
                               k8s_memory_requested_mib=int(mem.get(name, Decimal(0)) / _MIB),
                               since=objects.node_since(item), k8s_cores_daemons=float(daemons.get(name, 0)),
                               drain_stuck=objects.node_drain_stuck(item))
        return [found[n] for n in sorted(found)]

    def _group_of(self, node: str) -> Any:
        group, _, index = node.rpartition("-")
        g = self.groups.get(group)
        return g if g is not None and index.isdigit() and 1 <= int(index) <= g.count else None

    def worker_pods(self, *, deleting: bool = False) -> list[WorkerPod]:
        """HTCondor worker pods the broker deployed (whatever their phase: they are ours); with ``deleting``, those
        marked for deletion too (``WorkerPod.deleting``), which are no longer the broker's but still hold their
        names and their requests until their kubelet has stopped them."""
        out = []
        for pod in self._pods(label_selector=f"{objects.APP_LABEL}={objects.WORKER_APP}"):
            meta, spec = pod["metadata"], pod.get("spec") or {}
            marked = bool(meta.get("deletionTimestamp"))
            if marked and not deleting:
                continue
            labels = meta.get("labels") or {}
            c, m = objects.pod_requests(pod)
            kind = StartdKind.NODE if labels.get(objects.KIND_LABEL) == "node" else StartdKind.POD
            group = self._group_of(spec.get("nodeName") or "")
            if kind == StartdKind.NODE and c == 0 and group is not None:  # made before whole-node pods requested
                c, m = Decimal(group.cores), Decimal(int(group.memory_gib * 1024)) * _MIB
            out.append(WorkerPod(name=meta["name"], node=spec.get("nodeName") or "", pool=labels.get(
                objects.POOL_LABEL, ""), kind=kind, cores=int(c), memory_mib=int(m / _MIB), since=_since(pod),
                running=_running(pod), deleting=marked))
        return sorted(out, key=lambda p: p.name)

    def pending_notebooks(self, items: list[dict[str, Any]] | None = None) -> list[PendingSpawn]:
        """Notebook servers the scheduler found no node with room for, with what each requests; one that some ready
        worker refuses (its node selector or affinity, ``objects.admits``; a taint it does not tolerate,
        ``objects.tolerates``) with the workers it may go to. ``items``: a node listing the caller has, else one is
        made when a spawn waits.

        Only users' servers: Zero to JupyterHub's user-placeholder pods in the same namespace are unschedulable
        on purpose (they keep room warm), and freeing cores for them would only be taken back by the next one.
        """
        namespace = self.spec.notebooks.namespace
        # One request, not in pages: the server selects the namespace's user servers still pending, the spawns
        # under way, a few at a time, however many pods the cluster runs.
        pending = self._list(f"listing pods in {namespace}", self.core.list_namespaced_pod, paged=False,
                             namespace=namespace, field_selector="status.phase=Pending",
                             label_selector=NOTEBOOK_SELECTOR)
        out = []
        workers: _Workers | None = None
        for pod in pending:
            if ((pod.get("spec") or {}).get("nodeName") or pod["metadata"].get("deletionTimestamp")
                    or not _short_of_resources(pod)):
                continue
            if workers is None:
                workers = _Workers(self._workers(self.node_items() if items is None else items))
            c, m = objects.pod_requests(pod)
            out.append(PendingSpawn(cpu=float(c), memory_mib=int(m / _MIB), nodes=workers.admitting(pod)))
        return out

    def _workers(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The spec's workers among listed nodes."""
        return [n for n in items if (g := self._group_of(n["metadata"]["name"])) is not None
                and g.role == NodeRole.WORKER]

    def pod_log(self, request: LogRequest) -> Iterator[str]:
        """AA2/AA3, ``kubectl logs``: ``CoreV1Api.read_namespaced_pod_log`` (GET
        /api/v1/namespaces/{namespace}/pods/{name}/log with container, sinceSeconds, tailLines, follow —
        https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#get-read-log-of-the-specified-pod).
        Unpreloaded (``_preload_content=False``: the client hands back the urllib3 response, ``api_client.py``
        ``_call_with_legacy_options``), so a followed log streams line by line. Errors are raised before the
        first line: no such pod (404), a container to choose or not in the pod (400, the server's words); a stream
        that breaks later raises an ``ExternalError`` from the iteration."""
        what = f"pod {request.namespace}/{request.pod}"
        try:
            response = self.core.read_namespaced_pod_log(
                request.pod, request.namespace, container=request.container, since_seconds=request.since_seconds,
                tail_lines=request.tail_lines, follow=request.follow or None, _preload_content=False,
                _request_timeout=FOLLOW_TIMEOUT if request.follow else REQUEST_TIMEOUT)
        except _UNREACHED as exc:
            if _status(exc) == 404:
                raise NotFound(f"there is no {what}", where=what,
                               fix=f"list the pods with `kubectl get pods -n {request.namespace}`") from exc
            if isinstance(exc, ApiException) and exc.status == 400:
                raise InputError([Problem("--container" if "container" in _message(exc) else what,
                                          _message(exc), "name one of the pod's containers with -c")]) from exc
            raise _external(f"reading the log of {what}", exc) from exc
        return _lines(response, what)

    # --- act ---------------------------------------------------------------------------------------

    def revoke_bindings(self, username: str) -> int:
        """Delete the RoleBindings ``enclave render access`` made for ``username`` in every application namespace
        (``domain.reach.ClusterAccess``, after depart, demote, expire); how many were deleted. Every namespace is
        tried before a failure is raised, so one refusal leaves no other namespace's bindings in place."""
        rbac = k8s.RbacAuthorizationV1Api(self.api)
        deleted, failed = 0, []
        for namespace in app_namespaces(self.spec):
            try:
                deleted += self._revoke_in(rbac, namespace, username)
            except ExternalError as exc:
                failed.append(exc.problem.what)
        if failed:
            raise ExternalError(f"{username}'s RoleBindings: {deleted} deleted, but {'; '.join(failed)}",
                                where="Kubernetes", fix="check the API server and that enclave's service account may "
                                                        "list and delete rolebindings there (Role enclave-bindings "
                                                        "of `enclave render deploy`), then `enclave accounts reach`")
        return deleted

    def _revoke_in(self, rbac: Any, namespace: str, username: str) -> int:
        deleted = 0
        for name in self._bindings_of(rbac, namespace, username):
            try:
                rbac.delete_namespaced_role_binding(name, namespace, _request_timeout=REQUEST_TIMEOUT)
                deleted += 1
            except _UNREACHED as exc:
                if _status(exc) != 404:  # gone meanwhile: as good as deleted, by someone else
                    raise _external(f"deleting RoleBinding {namespace}/{name}", exc) from exc
        return deleted

    def _bindings_of(self, rbac: Any, namespace: str, username: str) -> list[str]:
        """Names of the bindings enclave labelled for ``username`` in ``namespace`` and whose subjects are the user
        alone, as rendered (``access.render.binding``): by ``user_label``, which no other username shares, and by
        the values earlier releases labelled with (``legacy_user_labels``: the username itself, and the hashed
        form, which another username may carry — 'a_b' was labelled 'a-b-648fa9b3', a valid username), so that a
        cluster applied before still loses the user's bindings, and never another user's: a binding found by a
        label but bound to someone else is not the user's to delete. A binding is one per namespace, so a listing
        is one page."""
        managed = ",".join(f"{k}={v}" for k, v in MANAGED.items())
        names: set[str] = set()
        for value in {user_label(username), *legacy_user_labels(username)}:
            items = self._list(f"listing RoleBindings in {namespace}", rbac.list_namespaced_role_binding,
                               paged=False, namespace=namespace, label_selector=f"{managed},enclave/user={value}")
            names |= {item["metadata"]["name"] for item in items if _binds_only(item, username)}
        return sorted(names)

    def _node_patch(self, node: str, body: dict[str, Any]) -> None:
        try:
            self.core.patch_node(node, body, _request_timeout=REQUEST_TIMEOUT)
        except _UNREACHED as exc:
            if _status(exc) == 404:
                raise NotFound(f"Kubernetes has no node {node!r}", where=node,
                               fix="check `kubectl get nodes`; node names follow <group>-<NNN>") from exc
            if isinstance(exc, ApiException) and exc.status == 409:
                raise Conflict(f"node {node} changed while the broker patched it ({_message(exc)})", where=node,
                               fix="the broker's next cycle reads it again") from exc
            raise _external(f"patching node {node}", exc) from exc

    def _mark(self, node: str, batch: str | None, *, stamp: bool = True, labelled: object = _ANY) -> bool:
        """Label and taint ``node`` as the broker's, ``batch`` saying what for (``draining``, ``htcondor``), or take
        both off (None), and the broker's own cordon with them (``objects.broker_cordoned``), never anyone else's.
        ``stamp``: the node's state changes, and its since (``SINCE_ANNOTATION``, what cooldowns count from) with it;
        not when only the taint is put back (``keep_marks``). ``labelled``: what the label said when this was
        decided (``keep_marks``, from a listing); a node whose label says otherwise when read is left as it is
        (False).

        One patch, naming the resourceVersion it was made from: a node's taints are one list
        (``objects.broker_taints``) which the node lifecycle controller and administrators change too, so a patch
        made from a stale read would undo their change. The API server refuses it (409 Conflict) and it is made
        again from a fresh read, as client-go's retry.RetryOnConflict does (k8s.io/client-go/util/retry/util.go,
        DefaultRetry: 5 steps)."""
        for attempt in range(MARK_TRIES):
            item = self._node(node)
            if labelled is not _ANY and objects.batch_label(item) != labelled:
                return False  # changed since it was decided (someone gave it back by hand): the next cycle looks again
            spec: dict[str, Any] = {"taints": objects.broker_taints(item, batch) or None}
            if objects.broker_cordoned(item):  # an earlier broker's: its taint takes the cordon's place, or neither
                spec["unschedulable"] = None
            meta: dict[str, Any] = {"resourceVersion": item["metadata"]["resourceVersion"],
                                    "labels": {objects.BATCH_LABEL: batch}}
            if stamp:
                meta["annotations"] = {objects.SINCE_ANNOTATION: f"{self.clock():.0f}"}
            try:
                self._node_patch(node, {"metadata": meta, "spec": spec})
                return True
            except Conflict:
                if attempt + 1 == MARK_TRIES:
                    raise
                time.sleep(MARK_RETRY_SECONDS)
        return False  # not reached: the last try returns or raises

    def deploy_pods(self, node: str, pool: str, names: tuple[str, ...], cores: int, memory_mib: int) -> None:
        """BCS 4: create the worker pods that do not exist yet."""
        self._require_worker(node)
        for name in names:
            body = objects.worker_pod(self.spec, name=name, node=node, pool=pool, cores=cores,
                                      memory_mib=memory_mib, image=self.image, since=self.clock(),
                                      namespace=self.namespace)
            self._create(body)

    def _create(self, body: dict[str, Any]) -> None:
        pod = k8s.V1Pod.from_dict(body)
        assert pod is not None  # from_dict returns None only for None
        name = body["metadata"]["name"]
        try:
            self.core.create_namespaced_pod(self.namespace, pod, _request_timeout=REQUEST_TIMEOUT)
        except _UNREACHED as exc:
            if _status(exc) != 409:  # already there: the action is in effect
                raise _external(f"creating pod {name}", exc) from exc
            if self._terminating(name):  # not in effect: it goes, and nothing takes its place (review)
                raise Conflict(f"pod {self.namespace}/{name} is still terminating: a pod of that name is being "
                               "deleted and cannot be made again until it is gone", where=name,
                               fix="wait until it is gone (its jobs retire within their grace); the broker's "
                                   "next cycle deploys again") from exc

    def _terminating(self, name: str) -> bool:
        """Whether the batch namespace's pod ``name`` is marked for deletion (listed by name: the broker's role
        lists pods, it does not read them one by one)."""
        listed = self._list("listing pods", self.core.list_pod_for_all_namespaces, paged=False,  # at most one
                            field_selector=f"metadata.namespace={self.namespace},metadata.name={name}")
        return any(p["metadata"].get("deletionTimestamp") for p in listed)

    def delete_pods(self, names: tuple[str, ...]) -> None:
        """BCS 3: delete worker pods (the broker drained them of jobs first)."""
        for name in names:
            try:
                self.core.delete_namespaced_pod(name, self.namespace, _request_timeout=REQUEST_TIMEOUT)
            except _UNREACHED as exc:
                if _status(exc) != 404:
                    raise _external(f"deleting pod {name}", exc) from exc

    def _refusals(self, pods: list[dict[str, Any]], flags: DrainFlags) -> dict[str, str]:
        """``namespace/name`` → why kubectl drain with these flags would refuse it."""
        out = {}
        for pod in pods:
            why = objects.drain_refusal(pod, force=flags.force, ignore_daemonsets=flags.ignore_daemonsets,
                                        delete_emptydir_data=flags.delete_emptydir_data)
            if why is not None:
                out[f"{pod['metadata'].get('namespace')}/{pod['metadata']['name']}"] = why
        return out

    def drain(self, node: str, *, force: bool | None = None, ignore_daemonsets: bool | None = None,
              delete_emptydir_data: bool | None = None, grace_period_seconds: int | None = None) -> int:
        """BCS 5 step 1 as ``kubectl drain``: the broker's taint in place of the cordon
        (``objects.BATCH_TAINT_EFFECT``), then ask the Eviction API to move every evictable pod, so
        PodDisruptionBudgets are honoured. Returns how many pods are still to go (a budget may refuse some for
        now; ``evict`` again later). Pods kubectl would refuse without --force, --ignore-daemonsets or
        --delete-emptydir-data (given here, else the spec's ``cluster.drain``) stop the drain before anything
        changes: unlike kubectl, which cordons first, a refused drain leaves the node as it was. The flags
        and ``grace_period_seconds`` (kubectl's --grace-period) hold for this node's later eviction rounds
        too, until it is drained again or this process restarts (then the spec's flags apply)."""
        self._require_worker(node)
        spec = self.spec.cluster.drain
        flags = DrainFlags(force=spec.force if force is None else force,
                           ignore_daemonsets=spec.ignore_daemonsets if ignore_daemonsets is None else ignore_daemonsets,
                           delete_emptydir_data=spec.delete_emptydir_data if delete_emptydir_data is None
                           else delete_emptydir_data)
        pods = self._pods_on(node)
        refused = self._refusals(pods, flags)
        if refused:
            listed = "; ".join(f"{pod}: {why}" for pod, why in sorted(refused.items()))
            raise InvalidTransition(f"cannot drain {node}: {listed}", where=node,
                                    fix="move those pods away, or give the flag named in the message (enclave "
                                        "batch drain-node --force/--ignore-daemonsets/--delete-emptydir-data, "
                                        "or cluster.drain in the spec)")
        self._drains[node] = (flags, grace_period_seconds)
        self._mark(node, "draining")
        try:
            return self.evict(node)
        except ExternalError as exc:
            # The drain is in effect (tainted and labelled) and the next cycles' ``evict`` retries the pods, as after
            # a budget's refusal. Raised, the move was journaled as failed and never as done, since the next attempt
            # finds it in effect (review, stop 53; as the relabel's pod label, ``LiveBackend._label_pod``).
            event(_log, logging.WARNING, "drain started, its evictions left for the next rounds", node=node,
                  error=str(exc))
            return sum(1 for pod in pods if _drain_moves(pod))

    def evict(self, node: str) -> int:
        """One eviction round on a draining node; pods the drain flags refuse (arrived after the taint, e.g.
        tolerating it) are not evicted and count as still to go, as kubectl would not evict them either."""
        flags, grace = self._drains.get(node, (self.spec.cluster.drain, None))
        pods = self._pods_on(node)
        refused = self._refusals(pods, flags)
        left = 0
        for pod in pods:
            meta = pod["metadata"]
            # HTCondor worker pods go too (BCS 5 takes the whole node); HTCondor on the bare node stays.
            if not _drain_moves(pod) or meta.get("deletionTimestamp"):
                continue
            if f"{meta.get('namespace')}/{meta['name']}" in refused:
                left += 1
                continue
            left += self._evict_one(meta["namespace"], meta["name"], grace)
        return left

    def draining(self, node: str) -> bool:
        """Whether ``node`` is draining (labelled and tainted for it, ``objects.node_state``)."""
        return self._state(node) == NodeState.DRAINING

    def drain_left(self, node: str) -> int | None:
        """The pods a drain of ``node`` still has to move: those not evicted yet (a disruption budget refused, or
        the drain's flags) and those evicted that the API server still holds while they terminate. ``kubectl
        drain`` waits for both (pkg/drain/drain.go: evictPods, then waitForDelete until a pod is not found); what
        a drain leaves (DaemonSet, static, finished pods, the node's own HTCondor pod) is not counted. 0 once
        HTCondor runs there (the drain was done); None on a node labelled for neither (no drain under way: never
        drained, or given back, ``return_node``)."""
        state = self._state(node)
        if state != NodeState.DRAINING:
            return 0 if state == NodeState.HTCONDOR else None
        return sum(1 for pod in self._pods_on(node) if _drain_moves(pod))

    def _evict_one(self, namespace: str, name: str, grace: int | None) -> int:
        """1 if the API server refused the eviction, for now or for good, else 0. A grace period goes in the
        Eviction's deleteOptions, as kubectl drain --grace-period does (kubectl pkg/drain/drain.go,
        makeDeleteOptions: set only when >= 0, else the pod's own terminationGracePeriodSeconds).

        A disruption budget says "not now" with 429. Budgets refuse for other reasons too (pkg/registry/core/
        pod/storage/eviction.go, EvictionREST.Create: 500 for a pod under more than one budget, 504 after repeated
        conflicts on the budget, 403 with the budget as the Status's details.kind while its allowed disruptions
        are negative): the pod stays, counted as still to go and logged with the server's words, and the round goes
        on to the node's other pods, as kubectl evicts each pod apart and reports the failures together (drain.go,
        evictPods). Any other refusal (credentials, RBAC, a bad request) and no answer at all are errors: the round
        stops there."""
        options = k8s.V1DeleteOptions(grace_period_seconds=grace) if grace is not None else None
        body = k8s.V1Eviction(api_version=self._eviction_api, kind="Eviction", delete_options=options,
                              metadata=k8s.V1ObjectMeta(name=name, namespace=namespace))
        try:
            self.core.create_namespaced_pod_eviction(name, namespace, body, _request_timeout=REQUEST_TIMEOUT)
        except _UNREACHED as exc:
            status = _status(exc)
            if status == 429:  # a disruption budget says not now
                return 1
            if isinstance(exc, ApiException) and _budget_trouble(exc):
                event(_log, logging.WARNING, "eviction refused", pod=f"{namespace}/{name}", status=status,
                      reason=_message(exc))
                return 1
            if status != 404:
                raise _external(f"evicting pod {namespace}/{name}", exc) from exc
        return 0

    def start_htcondor(self, node: str, pool: str) -> None:
        """BCS 5 steps 2–3: HTCondor on the drained node, labelled for ``pool``."""
        item = self._node(node)  # read once: its state, then its room
        state = objects.node_state(item)
        if objects.batch_label(item) == "draining" and objects.someone_cordoned(item):
            # The broker's own hold is its taint: a cordon is an administrator's (maintenance), and the node is down
            # for the broker until they uncordon it (``objects.node_state``).
            raise Conflict(f"node {node} was cordoned by someone else while the broker drained it", where=node,
                           fix=f"leave it to them; once they uncordon it, the broker starts HTCondor there or gives "
                               f"it back (enclave batch return-node {node})")
        if state not in (NodeState.DRAINING, NodeState.HTCONDOR):
            raise InvalidTransition(f"node {node} is {state.value}; drain it before starting HTCondor there",
                                    where=node, fix=f"enclave batch drain-node {node}")
        cores, memory_mib = self._room_left(node, item)
        self._create(objects.worker_pod(self.spec, name=objects.node_pod_name(node), node=node, pool=pool,
                                        cores=cores, memory_mib=memory_mib, image=self.image,
                                        since=self.clock(), namespace=self.namespace, whole_node=True))
        if state != NodeState.HTCONDOR:
            # HTCondor runs there now: a mark that fails is put right by ``keep_marks`` (a draining node with its
            # node pod), logged rather than raised, which would journal the start as failed and never as done, the
            # next attempt finding it in effect (review, stop 53).
            self._marked(node, "htcondor")

    def _room_left(self, node: str, item: dict[str, Any]) -> tuple[int, int]:
        """(cores, MiB) a drained worker (``item``, as the API reports it) has for HTCondor: what the scheduler may
        allocate there (``_allocatable``) less what stays (the DaemonSet and static pods a drain leaves), in whole
        cores and MiB. The whole-node pod requests it and its startd offers it: detected, HTCondor would offer the
        whole machine, memory the kubelet and those pods need, and the kubelet evicts first the pods using more than
        they request (node-pressure eviction: https://kubernetes.io/docs/concepts/scheduling-eviction/
        node-pressure-eviction/)."""
        g = self._group_of(node)
        cpu, mem = _allocatable_exact(item, g.cores, int(g.memory_gib * 1024))
        for pod in self._pods_on(node):
            if not objects.is_worker_pod(pod) and objects.counts_on_node(pod):
                c, m = objects.pod_requests(pod)
                cpu, mem = cpu - c, mem - m
        cores, memory_mib = int(cpu), int(mem / _MIB)
        if cores < 1 or memory_mib < 1:
            raise InvalidTransition(f"node {node} has no room left for HTCondor ({cpu:.2f} cores, {mem / _MIB:.0f} MiB "
                                    "beside the pods that stay)", where=node,
                                    fix="see what still runs there (`kubectl describe node`); return it to the commons")
        return cores, memory_mib

    def return_node(self, node: str, *, drain_stuck: bool = False) -> None:
        """Reverse of BCS 5: stop HTCondor on the node and give it back to the commons (the broker's label and taint
        off, ``_mark``). The node pod's jobs retire within its grace while the API server keeps it, marked for
        deletion, until the kubelet has stopped it: the node stays tainted and labelled for HTCondor until then
        (``finish_returns``), so that no pod is placed on cores its jobs still use, and the broker sees it leaving,
        not back. ``drain_stuck``: it gives up a drain that did not finish, which the node's annotation remembers
        (``DRAIN_STUCK_ANNOTATION``)."""
        state = self._state(node)
        if drain_stuck:
            self._node_patch(node, {"metadata": {"annotations": {
                objects.DRAIN_STUCK_ANNOTATION: f"{self.clock():.0f}"}}})
        self.delete_pods((objects.node_pod_name(node),))
        if state not in (NodeState.DRAINING, NodeState.HTCONDOR):
            return
        if node not in self._with_node_pod():
            self._mark(node, None)
        elif state == NodeState.DRAINING:
            # Its node pod was made and the mark failed (``keep_marks``): labelled for HTCondor now, the node is
            # given back by ``finish_returns`` once the pod is gone, as any other.
            self._mark(node, "htcondor")

    def finish_returns(self, nodes: Iterable[Node]) -> list[str]:
        """Give back to the commons each worker labelled for HTCondor whose node pod is gone: returned, lost with
        the node (a node NotReady for long has its pods evicted by the taint manager, the label stays), or evicted
        by an administrator's ``kubectl drain --force``. Without this such a worker would wait for a startd that
        never comes. The administrator's cordon stays (``_mark``): the node is theirs until they uncordon it.
        ``nodes``: as ``nodes()`` reported them (the caller's, not listed again). Returns their names."""
        with_pod = self._with_node_pod()
        return [n.name for n in nodes if n.state == NodeState.HTCONDOR and n.name not in with_pod
                and self._marked(n.name, None)]

    def _marked(self, node: str, batch: str | None, **kwargs: Any) -> bool:
        """``_mark``, a failure logged rather than raised: one node's refusal (a conflict five times over, a node
        deleted meanwhile) does not stop the others' in the same pass. The next cycle tries it again."""
        try:
            return self._mark(node, batch, **kwargs)
        except EnclaveError as exc:
            event(_log, logging.WARNING, "node mark failed", node=node, batch=batch, error=str(exc))
            return False

    def keep_marks(self, items: list[dict[str, Any]], skip: Iterable[str] = ()) -> list[str]:
        """Put the broker's marks back in step where they fell out of it, on the workers as the API listed them
        (``items``) but ``skip`` (given back meanwhile); returns their names. From the label, never the other way:

        - a draining worker someone cordoned (their maintenance, ``objects.node_state``) is given back, its label and
          taint off, their cordon kept;
        - a draining worker where the node pod runs is labelled for HTCondor: ``start_htcondor`` made the pod and then
          failed to mark it, and the next cycle, finding HTCondor there, would ask nothing more;
        - a worker whose label says batch but whose broker taint is gone or says otherwise gets it back: ``kubectl
          taint`` replaces the taints without naming a resourceVersion (kubectl pkg/cmd/taint/taint.go), so one made
          meanwhile may drop it, and pods would be placed on the node the broker holds.

        Only the broker's taint is compared: where the others stand in the list is theirs (the node lifecycle
        controller appends its own), and a repair for their order would patch the node every cycle."""
        skipped, fixed = set(skip), []
        running: set[str] | None = None
        for item in self._workers(items):
            name, label = item["metadata"]["name"], objects.batch_label(item)
            if name in skipped or label not in ("draining", "htcondor"):
                continue
            wanted: str | None = label
            if label == "draining" and objects.someone_cordoned(item):
                wanted = None
            elif label == "draining":
                running = self._with_node_pod(running=True) if running is None else running
                wanted = "htcondor" if name in running else label
            if wanted == label and objects.broker_taint(item) == objects.batch_taint(label):
                continue
            if self._marked(name, wanted, stamp=wanted != label, labelled=label):
                fixed.append(name)
        return fixed

    def _with_node_pod(self, *, running: bool = False) -> set[str]:
        """Workers where a whole-node HTCondor pod exists, terminating ones included unless ``running``."""
        pods = self._pods(label_selector=f"{objects.APP_LABEL}={objects.WORKER_APP},{objects.KIND_LABEL}=node")
        return {(p.get("spec") or {}).get("nodeName") or "" for p in pods
                if not (running and p["metadata"].get("deletionTimestamp"))}

    def provision_home(self, account: AccountView) -> Provisioned:
        """Home, workspace and quota of ``account`` through a Job in enclave's namespace
        (``enclave.cluster.homes``), for when the home file system is not mounted here. Submitting is enough:
        the Job retries on its own (backoffLimit) and reports in its pod's log.

        The Job's name is fixed, so a re-provision (a quota change, a home made again) may find the last one there
        (409 AlreadyExists). One still running is in flight: success. One that has finished (a condition Complete
        or Failed with status "True": https://kubernetes.io/docs/concepts/workloads/controllers/job/
        #job-termination-and-cleanup) stays until its TTL passes (``homes.TTL_SECONDS``), and for good before 1.21,
        where the TTL controller is off: it would never run again. So it is deleted, with its pods
        (propagationPolicy Background: the Job goes at once, the garbage collector takes the pods), and submitted
        anew; one gone meanwhile (404) is as good as deleted, and a 409 on that second create is a Job someone else
        has just submitted, in flight too."""
        body = home_job(self.spec, account)
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        what = f"Job {namespace}/{name} for {account.username}'s home"
        batch = k8s.BatchV1Api(self.api)
        if not self._submit_job(batch, body, what):
            existing = self._read_job(batch, namespace, name, what)
            if existing is None or _finished(existing):
                if existing is not None:
                    self._delete_job(batch, namespace, name, what)
                self._submit_job(batch, body, what)
        quota = "submitted" if self.spec.storage.quota.tool != QuotaTool.NONE else "advisory"
        return Provisioned(paths=(account.home, account.workspace), quota=quota, how=f"job {namespace}/{name}")

    @staticmethod
    def _submit_job(batch: Any, body: dict[str, Any], what: str) -> bool:
        """Create the Job ``body``; False if one of its name is there already (409)."""
        job = k8s.V1Job.from_dict(body)
        assert job is not None  # from_dict returns None only for None
        try:
            batch.create_namespaced_job(body["metadata"]["namespace"], job, _request_timeout=REQUEST_TIMEOUT)
        except _UNREACHED as exc:
            if _status(exc) != 409:
                raise _external(f"creating {what}", exc) from exc
            return False
        return True

    def _read_job(self, batch: Any, namespace: str, name: str, what: str) -> dict[str, Any] | None:
        """The Job as the API reports it; None if it is gone (404: its TTL passed meanwhile)."""
        try:
            return dict(self._plain(batch.read_namespaced_job(name, namespace, _request_timeout=REQUEST_TIMEOUT)))
        except _UNREACHED as exc:
            if _status(exc) == 404:
                return None
            raise _external(f"reading {what}", exc) from exc

    @staticmethod
    def _delete_job(batch: Any, namespace: str, name: str, what: str) -> None:
        """Delete the Job and, through the garbage collector, its pods: batch/v1 would orphan them by default
        (``kubectl delete`` asks Background as this does). The options go in the body, as every version takes them."""
        options = k8s.V1DeleteOptions(propagation_policy="Background")
        try:
            batch.delete_namespaced_job(name, namespace, body=options, _request_timeout=REQUEST_TIMEOUT)
        except _UNREACHED as exc:
            if _status(exc) != 404:  # gone meanwhile: as good as deleted
                raise _external(f"deleting {what}", exc) from exc

    def label_pod_pool(self, name: str, pool: str, since: float | None = None) -> None:
        """Keep a worker pod's pool label, and its since, in step with its ClassAd after a relabel (BCS 4 step 2):
        its startd reads both when it restarts (``objects.worker_pod``), when the relabel's runtime setting is gone.
        ``since``: when the startd got the pool, if known (a repair after the fact); else now."""
        stamp = self.clock() if since is None else since
        body = {"metadata": {"labels": {objects.POOL_LABEL: pool},
                             "annotations": objects.pool_annotations(pool, stamp)}}
        try:
            self.core.patch_namespaced_pod(name, self.namespace, body, _request_timeout=REQUEST_TIMEOUT)
        except _UNREACHED as exc:
            if _status(exc) != 404:
                raise _external(f"labelling pod {name}", exc) from exc

    def _state(self, node: str) -> NodeState:
        return objects.node_state(self._node(node))

    def _node(self, node: str) -> dict[str, Any]:
        """The worker ``node`` as the API reports it."""
        self._require_worker(node)
        try:
            return dict(self._plain(self.core.read_node(node, _request_timeout=REQUEST_TIMEOUT)))
        except _UNREACHED as exc:
            if _status(exc) == 404:
                raise NotFound(f"Kubernetes has no node {node!r}", where=node) from exc
            raise _external(f"reading node {node}", exc) from exc

    def _require_worker(self, node: str) -> None:
        g = self._group_of(node)
        if g is None:
            raise NotFound(f"{node!r} is no node of this enclave", where=node,
                           fix="node names follow <group>-<NNN> for the spec's node groups")
        if g.role != NodeRole.WORKER:
            raise InvalidTransition(f"{node!r} is not a Kubernetes worker of this enclave", where=node,
                                    fix="only worker nodes lend capacity to batch (control-plane nodes never do)")


def _binds_only(item: dict[str, Any], username: str) -> bool:
    """Whether a listed RoleBinding binds ``username`` and nobody else: the one User subject enclave renders
    (``access.render.binding``)."""
    subjects = item.get("subjects") or []
    return bool(subjects) and all(s.get("kind") == "User" and s.get("name") == username for s in subjects)


def _status(exc: ApiException | HTTPError) -> int | None:
    """The API server's HTTP status; None when it did not answer (urllib3 gave up)."""
    return exc.status if isinstance(exc, ApiException) else None


def _finished(job: dict[str, Any]) -> bool:
    """A Job that has finished: a condition Complete or Failed with status "True" (https://kubernetes.io/docs/
    concepts/workloads/controllers/job/#job-termination-and-cleanup). One that is only about to (FailureTarget,
    SuccessCriteriaMet, its pods still terminating) is not yet."""
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


def _paged(page: Callable[..., dict[str, Any]]) -> list[dict[str, Any]]:
    """Every item of a listing ``page`` answers (its keyword arguments: ``limit``, ``_continue``), ``PAGE_SIZE`` at a
    time, each page's ``metadata.continue`` sent back for the next until one has none, as client-go's pager does
    (tools/pager/pager.go, ``ListPager.list``). A token lives only until etcd compacts the revision the listing began
    at; the server then answers 410 Expired (k8s.io/apiserver pkg/storage/etcd3/errors.go,
    ``handleCompactedErrorForPaging``). The pager, with ``FullListIfExpired`` as ``pager.New`` sets it, then lists
    once more, whole, without limit or token, and returns that list or its error ("the list expired while we were
    processing, fall back to a full list"); so does this. Expired on the first page, which has no token, is an error
    there too."""
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        try:
            listed = page(limit=PAGE_SIZE, _continue=token)
        except ApiException as exc:
            if token is None or not _expired(exc):
                raise
            return list(page().get("items") or [])
        items += listed.get("items") or []
        token = (listed.get("metadata") or {}).get("continue") or None
        if token is None:
            return items


def _expired(exc: ApiException) -> bool:
    """The server's 410 with reason Expired (k8s.io/apimachinery pkg/api/errors/errors.go, ``NewResourceExpired``),
    the reason client-go's pager tests (``errors.IsResourceExpired``)."""
    try:
        reason = json.loads(exc.body or "{}").get("reason")
    except (ValueError, AttributeError):
        return False
    return bool(exc.status == 410 and reason == "Expired")


def _budget_trouble(exc: ApiException) -> bool:
    """Whether an eviction was refused over the pod's disruption budgets, not by the caller's rights or request
    (``KubeCluster._evict_one``)."""
    if exc.status in (500, 504):
        return True
    try:
        kind = (json.loads(exc.body or "{}").get("details") or {}).get("kind")
    except (ValueError, AttributeError):
        return False
    return exc.status == 403 and kind == "poddisruptionbudget"


def _message(exc: ApiException) -> str:
    """The API server's own words from the Status it answered with."""
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


def _lines(response: Any, what: str) -> Iterator[str]:
    """A log response's lines as they arrive (urllib3's HTTPResponse iterates by line), then the connection back.
    ``what``: the pod (``pod namespace/name``), named by the error when the stream breaks."""
    try:
        for chunk in response:
            yield chunk.decode("utf-8", errors="replace").rstrip("\n")
    except HTTPError as exc:
        # The connection may drop or go quiet past the read timeout after the first lines: urllib3 raises its own
        # errors from the iteration (ProtocolError, ReadTimeoutError: urllib3/response.py, _error_catcher), which
        # are as much "no answer" as a refused connection (``_UNREACHED``).
        raise _external(f"reading the log of {what}", exc) from exc
    finally:
        response.release_conn()


def _allocatable(node: dict[str, Any], cores: int, memory_mib: int) -> tuple[int, int]:
    """(cores, MiB) the scheduler may place pods in, each falling back to the given value when not reported.
    Node.cores is whole cores: rounded down, so the broker never counts room the scheduler does not have."""
    cpu, mem = _allocatable_exact(node, cores, memory_mib)
    return int(cpu), int(mem / _MIB)


def _allocatable_exact(node: dict[str, Any], cores: int, memory_mib: int) -> tuple[Decimal, Decimal]:
    """(cores, bytes) of ``_allocatable``, as the node reports them."""
    from kubernetes.utils import parse_quantity

    allocatable = (node.get("status") or {}).get("allocatable") or {}
    cpu = Decimal(parse_quantity(allocatable["cpu"])) if "cpu" in allocatable else Decimal(cores)  # type: ignore[no-untyped-call]
    mem = (Decimal(parse_quantity(allocatable["memory"])) if "memory" in allocatable  # type: ignore[no-untyped-call]
           else Decimal(memory_mib) * _MIB)
    return cpu, mem


class _Workers:
    """The workers a waiting spawn may go to, for ``KubeCluster.pending_notebooks``: each worker's labels and the
    taints that refuse pods (``objects.refusing_taints``) read once for all the spawns."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.named = [(n["metadata"]["name"], n) for n in items]
        self.taints = {name: objects.refusing_taints(n) for name, n in self.named}
        # Those up: ready, and those lent whole or draining, which the broker may give back for a spawn (a worker
        # dedicated to other work may be lent whole: pods bound by name pass NoSchedule, review).
        self.tainted_up = [self.taints[name] for name, n in self.named
                           if self.taints[name] and objects.node_state(n) != NodeState.DOWN]

    def admitting(self, pod: dict[str, Any]) -> frozenset[str] | None:
        """The workers ``pod`` may go to; None when every worker that is up takes it (room made anywhere places
        it). The scheduler places it only where it is admitted: room elsewhere is no help."""
        if not objects.pinned(pod) and all(objects.tolerates(pod, taints) for taints in self.tainted_up):
            return None
        return frozenset(name for name, n in self.named
                         if objects.admits(pod, n) and objects.tolerates(pod, self.taints[name]))


def _short_of_resources(pod: dict[str, Any]) -> bool:
    """The scheduler tried the pod and found no node with enough cpu or memory for it.

    A pod it has not tried yet may still fit; one held back by taints, affinity, a node selector, a GPU or a
    volume would wait just as long after the broker freed cores, so neither is waiting for room.
    """
    return any(c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable"
               and any(why in (c.get("message") or "") for why in _SHORT_OF)
               for c in (pod.get("status") or {}).get("conditions") or [])


def _drain_moves(pod: dict[str, Any]) -> bool:
    """A pod a drain of its node moves (``evict``, ``drain_left``): evictable, and not the node's own HTCondor pod
    (BCS 5 takes the whole node, its worker pods too; HTCondor on the bare node stays)."""
    return objects.is_evictable(pod) and not objects.is_node_pod(pod)


def _running(pod: dict[str, Any]) -> bool:
    """Phase Running, and each container's state running (the kubelet's ContainerStatus: ``state.running``; a pod
    still pulling its image, or in a crash loop, has a container ``waiting``)."""
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    return status.get("phase") == "Running" and bool(containers) and all(
        "running" in (c.get("state") or {}) for c in containers)


def _since(pod: dict[str, Any]) -> float:
    """When a worker pod was made or last relabelled (``objects.SINCE_ANNOTATION``); for a pod made before the
    annotation was, its creation time as the broker wrote it into the startd's environment (``POD_SINCE_ENV``)."""
    from enclave.batch.render import POD_SINCE_ENV  # as objects.worker_pod imports it

    stamp = ((pod.get("metadata") or {}).get("annotations") or {}).get(objects.SINCE_ANNOTATION)
    if stamp is not None:
        try:
            return float(stamp)
        except ValueError:
            return 0.0
    for container in (pod.get("spec") or {}).get("containers") or []:
        for e in container.get("env") or []:
            if e.get("name") == POD_SINCE_ENV:
                try:
                    return float(e.get("value") or 0)
                except ValueError:
                    return 0.0
    return 0.0


def startds_of(pods: list[WorkerPod]) -> tuple[Startd, ...]:
    """Worker pods as startds, for the moments the collector has not heard of them yet (tests, dry runs)."""
    return tuple(Startd(name=p.node if p.kind == StartdKind.NODE else p.name, node=p.node, kind=p.kind,
                        pool=p.pool, cores=p.cores, memory_mib=p.memory_mib, since=p.since, ready=False,
                        pod_up=p.running)
                 for p in pods)
