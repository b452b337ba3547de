"""The live backend: Kubernetes (``enclave.cluster.kube``) + HTCondor (``enclave.batch.live``).

``observe()`` merges the two views: nodes from the spec and the Kubernetes API (batch-only nodes are up
when the collector has their startd), startds from the collector with their drain state, plus the worker
pods Kubernetes runs whose startd has not reported yet (the twin lists a starting pod too, so the broker
never deploys it twice). ``apply()`` asks ``enclave.broker.transitions`` whether the action changes anything
(the rule the twin and the projection follow), then routes it to the system that carries it out; a relabel
of a worker pod also updates the pod's pool label so ``kubectl`` shows the same pool as ``condor_status``
(``progress`` repairs it if that patch failed).
The clock is the real one: ``advance`` waits, ``progress`` retries the evictions a disruption budget refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from enclave.broker.transitions import NodeFacts, StartdFacts, changes
from enclave.cluster.kube import KubeCluster, WorkerPod, startds_of
from enclave.domain.capacity import (
    Action,
    DeletePods,
    DeployPods,
    DrainNode,
    DrainStartd,
    Node,
    NodeState,
    Observed,
    PoolDemand,
    Relabel,
    ReturnNode,
    RunningJob,
    Startd,
    StartdKind,
    StartHTCondor,
)
from enclave.errors import ExternalError, InputError, Problem
from enclave.logs import event, logger
from enclave.spec.models import EnclaveSpec, NodeRole, node_name

_log = logger("cluster")


class Slot(Protocol):
    @property
    def startd(self) -> Startd: ...

    @property
    def draining(self) -> bool: ...


class Condor(Protocol):
    """What the live backend needs of ``enclave.batch.live.HTCondorBatch``."""

    def slots(self, constraint: str | None = None) -> Sequence[Slot]: ...

    def demand(self) -> dict[str, PoolDemand]: ...

    def running_jobs(self) -> dict[str, tuple[RunningJob, ...]]: ...

    def collector_since(self) -> float | None: ...

    def apply(self, action: Action) -> None: ...

    def advertise_calm(self, calm: bool) -> None: ...


@dataclass(frozen=True)
class View:
    """Nodes and startds as both systems report them now (no demand: that costs a query per schedd)."""

    nodes: tuple[Node, ...]
    startds: tuple[Startd, ...]
    pods: tuple[WorkerPod, ...]
    leaving: frozenset[str]
    """Startds whose worker pod is deleted (or whose node's HTCondor pod is): still reporting while they stop, or a
    deleted worker pod's no longer reporting while its kubelet stops the pod (``_stopping``)."""
    starting: frozenset[str]
    """Worker pods whose startd has not reported to the collector yet."""


class LiveWorld:
    """``enclave.broker.transitions.World`` over a ``View``."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.nodes = {n.name: n for n in view.nodes}
        self.startds = {s.name: s for s in view.startds}
        self.node_pools = {p.node: p.pool for p in view.pods if p.kind == StartdKind.NODE}

    def node(self, name: str) -> NodeFacts | None:
        n = self.nodes.get(name)
        if n is None:
            return None
        # Labelled for HTCondor with no node pod but one being deleted (or lost): on its way back to the commons,
        # which ``KubeCluster.finish_returns`` completes.
        returning = n.state == NodeState.HTCONDOR and name not in self.node_pools
        return NodeFacts(role=n.role, state=n.state, htcondor_pool=self.node_pools.get(name), returning=returning)

    def startd(self, name: str) -> StartdFacts | None:
        s = self.startds.get(name)
        return None if s is None else StartdFacts(node=s.node, kind=s.kind, pool=s.pool, draining=s.draining,
                                                  leaving=name in self.view.leaving,
                                                  starting=name in self.view.starting)


class LiveBackend:
    def __init__(self, spec: EnclaveSpec, kube: KubeCluster, condor: Condor,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self.spec = spec
        self.kube = kube
        self.condor = condor
        self.clock = clock
        self.sleep = sleep

    @classmethod
    def connect(cls, spec: EnclaveSpec) -> LiveBackend:
        from enclave.batch.live import HTCondorBatch

        return cls(spec, KubeCluster.connect(spec), HTCondorBatch(spec))

    # --- the clock -------------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """The real clock moves by itself: wait ``seconds``."""
        if seconds < 0:
            raise InputError([Problem("advance", f"cannot go back in time ({seconds} s)", "give seconds >= 0")])
        self.sleep(seconds)

    @property
    def finished(self) -> bool:
        """A live enclave never runs out of scenario."""
        return False

    def progress(self, node: str | None = None) -> int:
        """Retry evictions on nodes still draining (a disruption budget may have refused some), give back the
        workers whose return has ended (``KubeCluster.finish_returns``), put the broker's marks back where they
        fell out of step (``KubeCluster.keep_marks``) and worker pods' pool labels where they lag their startd's
        (``_keep_pod_pools``); returns how many pods are still to go.
        Call once per broker cycle, like ``kubectl drain`` retries. ``node``: retry that node's evictions alone, if
        it is draining — its pods listed, not every node's and pod's (a drain waited on polls each second).

        A node whose evictions fail (an admission webhook's 403, no answer) keeps its pods, still to go; the other
        nodes' evictions and the repairs go on, and one ``ExternalError`` naming what failed is raised at the end."""
        if node is not None:
            return self.kube.evict(node) if self.kube.draining(node) else 0
        items = self.kube.node_items()  # one listing for all three
        nodes = self.kube.nodes(items)
        failed: dict[str, ExternalError] = {}
        # Evictions first: the marks' repairs may change a draining worker's state.
        left = sum(self._evict(n.name, failed) for n in nodes if n.state == NodeState.DRAINING)
        returned = self.kube.finish_returns(nodes)
        self.kube.keep_marks(items, skip=returned)  # not those just given back: the listing is from before
        self._keep_pod_pools(failed)
        if failed:
            raise _left_for_next_cycle(failed)
        return left

    def _evict(self, node: str, failed: dict[str, ExternalError]) -> int:
        """``KubeCluster.evict`` on ``node``, a failure kept in ``failed`` (and logged) instead of raised: one
        node's refusal, every cycle the same, would otherwise stop every other node's drain for good."""
        try:
            return self.kube.evict(node)
        except ExternalError as exc:
            event(_log, logging.WARNING, "evictions failed", node=node, error=str(exc))
            failed[f"evicting on {node}"] = exc
            return 0

    def _keep_pod_pools(self, failed: dict[str, ExternalError]) -> None:
        """Label each worker pod with the pool its startd reports where the two differ: a relabel that HTCondor
        carried out and the pod's patch did not (``_label_pod``), which the next cycle, seeing the startd in its new
        pool, would never finish. Only where the startd's pool is the newer (its since not before the pod's): just
        after a relabel the collector may show the old pool until the startd's next update. Failures go to
        ``failed``, so one pod's does not keep the others stale."""
        reported = {(s.startd.kind, _key(s.startd)): s.startd for s in self.condor.slots()}
        for pod in self.kube.worker_pods():
            s = reported.get((pod.kind, _pod_key(pod)))
            if s is None or s.pool == pod.pool or s.since < pod.since:
                continue
            try:
                self.kube.label_pod_pool(pod.name, s.pool, since=s.since)
            except ExternalError as exc:
                event(_log, logging.WARNING, "pod pool label failed", pod=pod.name, pool=s.pool, error=str(exc))
                failed[f"labelling pod {pod.name}"] = exc

    def drain_left(self, node: str) -> int | None:
        """The pods a drain of ``node`` still has to move, evicted ones still terminating included
        (``KubeCluster.drain_left``)."""
        return self.kube.drain_left(node)

    # --- observe ---------------------------------------------------------------------------------------

    def view(self, node_items: list[dict[str, Any]] | None = None) -> View:
        """Both systems now (``node_items``: a node listing the caller has, else one is made)."""
        slots = self.condor.slots()
        listed = self.kube.worker_pods(deleting=True)
        pods = tuple(p for p in listed if not p.deleting)
        # A worker pod's startd is named by its Machine, the pod's host name (the pod's name); a whole-node pod's
        # runs on the host network, where Machine is the node's fully qualified name, so it is known by its
        # EnclaveNode (the pod's spec.nodeName, ``render.worker_pod``) instead.
        backed = {(p.kind, _pod_key(p)) for p in pods}
        leaving = frozenset(s.startd.name for s in slots
                            if s.startd.kind != StartdKind.STANDALONE and (s.startd.kind, _key(s.startd)) not in backed)
        reported = tuple(replace(s.startd, draining=s.draining or s.startd.name in leaving) for s in slots)
        known = {(r.kind, _key(r)) for r in reported}
        starting = tuple(s for s in startds_of(list(pods)) if (s.kind, _key(s)) not in known)
        stopping = _stopping(listed, known)
        leaving |= {s.name for s in stopping}
        reporting = {s.node for s in reported}
        nodes: list[Node] = list(self.kube.nodes(node_items))
        for g in self.spec.groups(NodeRole.BATCH_ONLY):
            for i in range(1, g.count + 1):
                name = node_name(g.name, i)
                nodes.append(Node(name=name, group=g.name, role=g.role, cores=g.cores,
                                  memory_mib=int(g.memory_gib * 1024),
                                  state=NodeState.READY if name in reporting else NodeState.DOWN))
        return View(nodes=tuple(nodes), startds=reported + starting + stopping, pods=pods, leaving=leaving,
                    starting=frozenset(s.name for s in starting))

    def observe(self) -> Observed:
        listed = self.kube.node_items()  # one listing for the nodes and the pinned spawns' workers
        view = self.view(listed)
        spawns = tuple(self.kube.pending_notebooks(listed))
        # Each startd's running jobs (its dynamic slots): what its jobs would lose, for the broker's victims.
        jobs = self.condor.running_jobs()
        startds = tuple(replace(s, jobs=jobs[s.name]) if s.name in jobs else s for s in view.startds)
        return Observed(now=self.clock(), nodes=view.nodes, startds=startds, demand=self.condor.demand(),
                        notebook_pending_cores=sum((s.cpu for s in spawns), 0.0), notebook_spawns=spawns,
                        collector_since=self.condor.collector_since())

    # --- act -------------------------------------------------------------------------------------------

    def advertise_calm(self, calm: bool) -> None:
        self.condor.advertise_calm(calm)

    def apply(self, action: Action) -> bool:
        view = self.view()
        if not changes(action, LiveWorld(view)):
            return False
        match action:
            case Relabel() | DrainStartd():
                self.condor.apply(action)
                if isinstance(action, Relabel) and (pod := _pod_of(view, action.startd)) is not None:
                    self._label_pod(pod, action)
            case DeployPods(node=node, pool=pool, pods=pods, cores_per_pod=cores, memory_mib_per_pod=mem):
                self.kube.deploy_pods(node, pool, pods, cores, mem)
            case DeletePods(pods=pods):
                self.kube.delete_pods(pods)
            case DrainNode(node=node):
                self.kube.drain(node, force=action.force, ignore_daemonsets=action.ignore_daemonsets,
                                delete_emptydir_data=action.delete_emptydir_data,
                                grace_period_seconds=action.grace_period_seconds)
            case StartHTCondor(node=node, pool=pool):
                self.kube.start_htcondor(node, pool)
            case ReturnNode(node=node):
                self.kube.return_node(node, drain_stuck=action.drain_stuck)
        return True

    def _label_pod(self, pod: str, action: Relabel) -> None:
        """The pod's half of a relabel whose HTCondor half is done. A failed patch is logged, not raised: the startd
        serves the new pool already, which is the move (its jobs vacated, the broker's churn), and
        ``_keep_pod_pools`` labels the pod after it. Raised, the move was journaled as failed and never as done,
        since the next attempt finds it in effect (review, stop 48)."""
        try:
            self.kube.label_pod_pool(pod, action.to_pool)
        except ExternalError as exc:
            event(_log, logging.WARNING, "relabel applied in HTCondor, pod label left for progress", pod=pod,
                  startd=action.startd, from_pool=action.from_pool, to_pool=action.to_pool, error=str(exc))


def _left_for_next_cycle(failed: dict[str, ExternalError]) -> ExternalError:
    """One error for what ``progress`` could not do, each part with the server's words."""
    parts = "; ".join(f"{what}: {exc.problem.what}" for what, exc in failed.items())
    return ExternalError(f"progress left {len(failed)} part(s) for the next cycle — {parts}", where="Kubernetes",
                         fix=next(iter(failed.values())).problem.fix)


def _pod_of(view: View, startd: str) -> str | None:
    """The worker pod ``startd`` runs in, a share's or a whole worker's (``_key``); None for a standalone startd."""
    s = next((s for s in view.startds if s.name == startd), None)
    if s is None or s.kind == StartdKind.STANDALONE:
        return None
    key = _key(s)
    return next((p.name for p in view.pods
                 if p.kind == s.kind and _pod_key(p) == key), None)


def _stopping(listed: list[WorkerPod], known: set[tuple[StartdKind, str]]) -> tuple[Startd, ...]:
    """Worker pods marked for deletion whose startd no longer reports, as startds on their way out (draining, not
    ready): until the kubelet has stopped the pod, the API server keeps its name, so creating a pod of that name is
    refused (409 AlreadyExists), and the scheduler still counts its requests on the node. Reported so, a new pod
    takes neither the name (``Census.names``) nor the cores (``Census.pod_cores``) for those seconds.
    Whole-worker pods are left out: their node, labelled for HTCondor with no node pod, is on its way back already
    (``LiveWorld.node``)."""
    gone = [p for p in listed if p.deleting and p.kind == StartdKind.POD and (p.kind, p.name) not in known]
    return tuple(replace(s, draining=True) for s in startds_of(gone))


def _key(s: Startd) -> str:
    """What ties a borrowed startd to its pod: a whole worker's node, a worker pod's name (``LiveBackend.view``)."""
    return s.node if s.kind == StartdKind.NODE else s.name


def _pod_key(p: WorkerPod) -> str:
    """``_key`` from the pod's side."""
    return p.node if p.kind == StartdKind.NODE else p.name
