"""The live backend: Kubernetes (``enclave.cluster.kube``) + HTCondor (``enclave.batch.live``).

``observe()`` merges the two views: nodes from the spec and the Kubernetes API (batch-only nodes are up
when the collector has their startd), startds from the collector with their drain state. ``apply()``
routes each BCS action to the system that carries it out; a relabel of a worker pod also updates the
pod's pool label so ``kubectl`` shows the same pool as ``condor_status``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from enclave.broker.model import (
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
    Startd,
    StartdKind,
    StartHTCondor,
)
from enclave.cluster.kube import KubeCluster
from enclave.errors import InputError, Problem
from enclave.spec.models import EnclaveSpec, NodeRole, node_name


class Slot(Protocol):
    @property
    def startd(self) -> Startd: ...

    @property
    def draining(self) -> bool: ...


class Condor(Protocol):
    """What the live backend needs of ``enclave.batch.live.HTCondorBatch``."""

    def slots(self, constraint: str | None = None) -> list[Slot]: ...

    def demand(self) -> dict[str, PoolDemand]: ...

    def apply(self, action: Action) -> None: ...


class LiveBackend:
    def __init__(self, spec: EnclaveSpec, kube: KubeCluster, condor: Condor,
                 clock: Callable[[], float] = time.time) -> None:
        self.spec = spec
        self.kube = kube
        self.condor = condor
        self.clock = clock

    @classmethod
    def connect(cls, spec: EnclaveSpec) -> LiveBackend:
        from enclave.batch.live import HTCondorBatch

        condor: Condor = HTCondorBatch(spec)  # type: ignore[assignment]
        return cls(spec, KubeCluster.connect(spec), condor)

    def observe(self) -> Observed:
        startds = tuple(replace(s.startd, draining=s.draining) for s in self.condor.slots())
        reporting = {s.node for s in startds}
        nodes: list[Node] = list(self.kube.nodes())
        for g in self.spec.groups(NodeRole.BATCH_ONLY):
            for i in range(1, g.count + 1):
                name = node_name(g.name, i)
                nodes.append(Node(name=name, group=g.name, role=g.role, cores=g.cores,
                                  memory_mib=int(g.memory_gib * 1024),
                                  state=NodeState.READY if name in reporting else NodeState.DOWN))
        spawns = tuple(self.kube.pending_notebooks())
        return Observed(now=self.clock(), nodes=tuple(nodes), startds=startds, demand=self.condor.demand(),
                        notebook_pending_cores=sum((s.cpu for s in spawns), 0.0), notebook_spawns=spawns)

    def progress(self) -> int:
        """Retry evictions on nodes still draining (a disruption budget may have refused some); returns
        how many pods are still to go. Call once per broker cycle, like ``kubectl drain`` retries."""
        return sum(self.kube.evict(n.name) for n in self.kube.nodes() if n.state == NodeState.DRAINING)

    def apply(self, action: Action) -> None:
        match action:
            case Relabel() | DrainStartd():
                self.condor.apply(action)
                if isinstance(action, Relabel) and any(
                        p.name == action.startd and p.kind == StartdKind.POD for p in self.kube.worker_pods()):
                    self.kube.label_pod_pool(action.startd, action.to_pool)
            case DeployPods(node=node, pool=pool, pods=pods, cores_per_pod=cores, memory_mib_per_pod=mem):
                self.kube.deploy_pods(node, pool, pods, cores, mem)
            case DeletePods(pods=pods):
                self.kube.delete_pods(pods)
            case DrainNode(node=node):
                self.kube.drain(node)
            case StartHTCondor(node=node, pool=pool):
                self.kube.start_htcondor(node, pool)
            case ReturnNode(node=node):
                self.kube.return_node(node)
            case _:
                raise InputError([Problem(f"action {action.kind}", "the live backend does not know this action",
                                          "use one of the BCS actions in enclave.broker.model")])
