"""The live backend: Kubernetes through the client boundary, the HTCondor half as the protocol it needs."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from enclave.broker.decide import decide
from enclave.cluster import objects
from enclave.cluster.kube import KubeCluster
from enclave.cluster.live import LiveBackend, LiveWorld
from enclave.domain.capacity import (
    Action,
    DeployPods,
    DrainStartd,
    NodeState,
    PendingSpawn,
    PoolDemand,
    Relabel,
    RunningJob,
    Startd,
    StartdKind,
)
from enclave.errors import Conflict
from enclave.spec import EnclaveSpec
from tests.cluster.conftest import ApiServer, pod_obj, unschedulable_pod


@dataclass
class Slot:
    startd: Startd
    draining: bool = False


@dataclass
class CondorSide:
    """Stands for enclave.batch.live.HTCondorBatch (tested by the batch suite against htcondor2)."""

    slots_: list[Slot]
    demand_: dict[str, PoolDemand]
    applied: list[Action] = field(default_factory=list)
    jobs_: dict[str, tuple[RunningJob, ...]] = field(default_factory=dict)
    words: list[bool] = field(default_factory=list)
    """The broker's words of calm, as advertised."""

    def slots(self, constraint: str | None = None) -> list[Slot]:
        return self.slots_

    def running_jobs(self) -> dict[str, tuple[RunningJob, ...]]:
        return self.jobs_

    def collector_since(self) -> float | None:
        return 1_700_000_000.0

    def demand(self) -> dict[str, PoolDemand]:
        return self.demand_

    def apply(self, action: Action) -> None:
        self.applied.append(action)

    def advertise_calm(self, calm: bool) -> None:
        self.words.append(calm)


def test_the_word_of_calm_goes_to_htcondor(spec: EnclaveSpec, kube: KubeCluster) -> None:
    """The startds read it from the collector (docs/batch.md, "Claims while calm"); Kubernetes has no part in it."""
    condor = CondorSide([], {})
    live = LiveBackend(spec, kube, condor, clock=lambda: 1_800_000_000.0)
    live.advertise_calm(True)
    live.advertise_calm(False)
    assert condor.words == [True, False] and condor.applied == []


def test_observe_merges_kubernetes_and_htcondor(spec: EnclaveSpec, kube: KubeCluster, server: ApiServer) -> None:
    spec = spec.model_copy(update={"broker": spec.broker.model_copy(update={"max_moves_per_cycle": 100})})
    slots = [Slot(Startd(f"condor-{i:03d}", f"condor-{i:03d}", StartdKind.STANDALONE, "drp", 24, 131072),
                  draining=i == 2) for i in range(1, 40)]  # condor-040 does not report: down
    busy = PoolDemand(idle_jobs=3000, idle_cores=3000)
    condor = CondorSide(slots, {"prompt": busy, "drp": busy, "user": busy, "general": busy})
    condor.jobs_ = {"condor-003": (RunningJob(cores=1, start=1_799_999_000.0, pool="drp"),)}
    live = LiveBackend(spec, kube, condor, clock=lambda: 1_800_000_000.0)
    o = live.observe()
    # The running jobs reach their startds (what the broker's victims weigh); the others run none known.
    assert {s.name: s.jobs for s in o.startds if s.jobs} == {"condor-003": condor.jobs_["condor-003"]}
    states = {n.name: n.state for n in o.nodes}
    assert states["condor-001"] == NodeState.READY and states["condor-040"] == NodeState.DOWN
    assert states["kub-001"] == NodeState.READY and len(o.nodes) == 60
    assert [s.draining for s in o.startds[:3]] == [False, True, False]
    assert o.demand["prompt"].idle_cores == 3000 and o.now == 1_800_000_000.0
    assert o.collector_since == 1_700_000_000.0
    assert o.notebook_spawns == () and o.notebook_pending_cores == 0.0

    actions = decide(spec, o)
    assert any(isinstance(a, Relabel) for a in actions) and any(isinstance(a, DeployPods) for a in actions)
    for a in actions:
        live.apply(a)
    assert condor.applied == [a for a in actions if isinstance(a, Relabel | DrainStartd)]
    deployed = {p for a in actions if isinstance(a, DeployPods) for p in a.pods}
    assert {k[1] for k in server.pods} == deployed
    # A relabelled worker pod carries its new pool on the Kubernetes side too.
    pod = sorted(deployed)[0]
    [wp] = [p for p in kube.worker_pods() if p.name == pod]
    condor.slots_.append(Slot(Startd(pod, wp.node, StartdKind.POD, wp.pool, wp.cores, wp.memory_mib)))  # reports
    assert live.apply(Relabel(actor="t", reason="t", startd=pod, from_pool=wp.pool, to_pool="drp"))
    assert server.pods[("htcondor", pod)]["metadata"]["labels"][objects.POOL_LABEL] == "drp"


def test_a_deleted_worker_pod_keeps_its_name_and_cores_until_its_kubelet_stops_it(
        spec: EnclaveSpec, kube: KubeCluster, server: ApiServer) -> None:
    """A pod being deleted keeps its name until its kubelet has stopped it: the API server refuses a create of that
    name with 409 AlreadyExists (kubernetes pkg/registry/core/pod/strategy.go, CheckGracefulDelete: a bound pod is
    only marked, deletionTimestamp, until the kubelet confirms), and the scheduler counts its requests on the node
    until then. Once its startd stops reporting, the broker saw neither: it named a new pod ``-1`` again on that
    worker, and the create failed every cycle until the pod was gone."""
    spec = spec.model_copy(update={"broker": spec.broker.model_copy(update={"max_moves_per_cycle": 100})})
    busy = PoolDemand(idle_jobs=3000, idle_cores=3000)
    slots = [Slot(Startd(f"condor-{i:03d}", f"condor-{i:03d}", StartdKind.STANDALONE, "drp", 24, 131072))
             for i in range(1, 41)]
    condor = CondorSide(slots, {"prompt": busy, "drp": busy, "user": busy, "general": busy})
    live = LiveBackend(spec, kube, condor, clock=lambda: 1_800_000_000.0)
    first = next(a for a in decide(spec, live.observe()) if isinstance(a, DeployPods))
    name = first.pods[0]
    assert name.endswith("-1")  # the worker's first pod: what a deleted one's successor is named too
    kube.deploy_pods(first.node, first.pool, (name,), first.cores_per_pod, first.memory_mib_per_pod)
    kube.delete_pods((name,))  # bound: marked, and kept until its kubelet stops it; its startd has gone
    assert server.pods[("htcondor", name)]["metadata"]["deletionTimestamp"]

    o = live.observe()
    [gone] = [s for s in o.startds if s.name == name]
    assert (gone.node, gone.kind, gone.draining, gone.ready) == (first.node, StartdKind.POD, True, False)
    assert gone.cores == first.cores_per_pod
    assert LiveWorld(live.view()).startd(name).leaving  # type: ignore[union-attr]
    deployed = [p for a in decide(spec, o) if isinstance(a, DeployPods) for p in a.pods]
    assert deployed and name not in deployed
    again = DeployPods(actor="t", reason="t", node=first.node, pool=first.pool, pods=(name,),
                       cores_per_pod=first.cores_per_pod, memory_mib_per_pod=first.memory_mib_per_pod)
    with pytest.raises(Conflict, match="being deleted"):
        live.apply(again)

    server.kubelet_stops()
    assert not any(s.name == name for s in live.observe().startds)
    assert live.apply(again)  # the name is free again


def test_observe_reports_notebook_spawns_waiting_for_room(spec: EnclaveSpec, kube: KubeCluster,
                                                          server: ApiServer) -> None:
    server.pods[("jupyter-lsst", "nb-carol")] = unschedulable_pod("nb-carol", cpu="2500m", memory="8Gi")
    server.pods[("jupyter-lsst", "nb-dave")] = unschedulable_pod("nb-dave", cpu="4", memory="16Gi")
    server.pods[("jupyter-lsst", "nb-alice")] = pod_obj("nb-alice", "kub-001", cpu="8")
    live = LiveBackend(spec, kube, CondorSide([], {}), clock=lambda: 1_800_000_000.0)
    o = live.observe()
    assert o.notebook_spawns == (PendingSpawn(cpu=2.5, memory_mib=8192), PendingSpawn(cpu=4.0, memory_mib=16384))
    assert o.notebook_pending_cores == 6.5


def test_a_whole_worker_startd_is_known_by_its_node_not_its_host_name(spec: EnclaveSpec, kube: KubeCluster,
                                                                    server: ApiServer) -> None:
    """The whole-node pod runs on the host network (``objects.worker_pod``), so its startd's Machine is the node's
    fully qualified name, not the node's name the pod is bound to; its EnclaveNode is that name
    (``render.worker_pod``: ``$ENV(ENCLAVE_NODE)``, the downward API's spec.nodeName). Matched by Machine, every
    lent worker read as leaving (drained and returned at once) and was listed twice."""
    kube.drain("kub-007")
    kube.start_htcondor("kub-007", "drp")
    reported = Startd("kub-007.example.org", "kub-007", StartdKind.NODE, "drp", 48, 262144, busy_cores=8)
    live = LiveBackend(spec, kube, CondorSide([Slot(reported)], {}), clock=lambda: 1_800_000_000.0)
    whole = [s for s in live.observe().startds if s.kind == StartdKind.NODE]
    assert [(s.name, s.node, s.draining) for s in whole] == [("kub-007.example.org", "kub-007", False)]
    kube.return_node("kub-007")  # its pod is being deleted: now it is leaving
    [s] = [s for s in live.observe().startds if s.kind == StartdKind.NODE]
    assert s.draining


def test_a_relabelled_whole_worker_carries_its_new_pool_on_its_node_pod(spec: EnclaveSpec, kube: KubeCluster,
                                                                         server: ApiServer) -> None:
    """The startd is named by the node's host name and its pod by the node (``objects.node_pod_name``): the pod is
    found through the startd's node. Unlabelled, the node read as lent to its first pool (``LiveWorld.node``), and
    a restarted startd came back there (``objects.pool_annotations``)."""
    kube.drain("kub-007")
    kube.start_htcondor("kub-007", "drp")
    reported = Startd("kub-007.example.org", "kub-007", StartdKind.NODE, "drp", 48, 262144)
    live = LiveBackend(spec, kube, CondorSide([Slot(reported)], {}), clock=lambda: 1_800_000_000.0)
    assert live.apply(Relabel(actor="t", reason="t", startd="kub-007.example.org", from_pool="drp", to_pool="user"))
    pod = server.pods[("htcondor", objects.node_pod_name("kub-007"))]
    assert pod["metadata"]["labels"][objects.POOL_LABEL] == "user"
    assert LiveWorld(live.view()).node_pools == {"kub-007": "user"}


def test_progress_gives_back_ended_returns_and_puts_marks_back(spec: EnclaveSpec, kube: KubeCluster,
                                                               server: ApiServer) -> None:
    """Each cycle's ``progress``: a worker whose node pod is gone goes back, and a worker whose broker taint went
    (someone's `kubectl taint`) gets it back — the returned one is not marked again."""
    live = LiveBackend(spec, kube, CondorSide([], {}), clock=lambda: 1_800_000_000.0)
    for node in ("kub-006", "kub-007"):
        kube.drain(node)
        kube.start_htcondor(node, "drp")
    del server.pods[("htcondor", "htcondor-node-kub-006")]  # evicted while NotReady
    for node in ("kub-006", "kub-007"):
        server.nodes[node]["spec"]["taints"] = []
    assert live.progress() == 0
    assert objects.BATCH_LABEL not in server.nodes["kub-006"]["metadata"]["labels"]
    assert "taints" not in server.nodes["kub-006"]["spec"]
    assert server.nodes["kub-007"]["spec"]["taints"] == [
        {"key": objects.BATCH_LABEL, "value": "htcondor", "effect": "NoSchedule"}]
