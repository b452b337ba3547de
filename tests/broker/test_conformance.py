"""The Backend contract, held by both backends: the same action sequences give the same outcomes.

Each test runs on the twin (``TwinBackend`` over the simulator) and on the live backend (``LiveBackend`` over
the Kubernetes fake of tests/cluster and the HTCondor stand-ins of tests/batch), both starting from the same
state: the twin of the minimal spec at t=0 with no workload, and fakes seeded with the nodes and startds the
twin reports. What is compared is what the broker decides on — each node's state, and each startd's node,
kind, pool and drain state — and the expectation is the broker's own projection (``effects.apply_one``) of
the state before the action, so backends and projection are held to one another.

Effects take time in both worlds: the twin simulates drains, HTCondor starts and returns (``settle`` runs it
past them); live, a worker pod's startd reports to the collector only once the kubelet has started it and
leaves once the pod is gone (``settle`` plays kubelet and startd on the fakes). Refusals and duplicates are
answered at once, before anything settles.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from kubernetes import client as k8s

from enclave.batch.live import HTCondorBatch
from enclave.broker.decide import plan
from enclave.broker.effects import apply_one
from enclave.cluster import objects
from enclave.cluster.kube import KubeCluster
from enclave.cluster.live import LiveBackend
from enclave.domain.capacity import (
    Action,
    Backend,
    DeletePods,
    DeployPods,
    DrainNode,
    DrainStartd,
    NodeState,
    Observed,
    Relabel,
    ReturnNode,
    Startd,
    StartdKind,
    StartHTCondor,
)
from enclave.errors import Conflict, EnclaveError, InvalidTransition, NotFound
from enclave.spec.defaults import EXAMPLES
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec, NodeRole
from enclave.twin.backend import TwinBackend
from enclave.twin.policies import make
from enclave.twin.scenario import parse
from enclave.twin.sim import Sim
from tests.batch.conftest import Daemons
from tests.cluster.conftest import ApiServer, node_obj, schema_version

A = {"actor": "conformance", "reason": "conformance"}

# No jobs, no notebooks, no failures: only the actions move anything.
IDLE = """
name: conformance
duration_hours: 12
prompt: null
drp: null
user_batch: null
notebooks: null
timing: {drain_s: 100, htcondor_start_s: 50, return_s: 30}
"""

View = tuple[dict[str, NodeState], dict[str, tuple[str, StartdKind, str, bool]]]


def view(o: Observed) -> View:
    """What the broker decides on, by name."""
    return ({n.name: n.state for n in o.nodes},
            {s.name: (s.node, s.kind, s.pool, s.draining) for s in o.startds})


@dataclass
class World:
    """A backend and the means to let its effects take place."""

    name: str
    backend: Backend
    settle: Callable[[], None]
    slept: list[float] = field(default_factory=list)


def twin_world(spec: EnclaveSpec) -> World:
    twin = TwinBackend(Sim(parse(IDLE, "conformance.yaml", spec=spec), make("static")))
    timing, layout = twin.sim.sc.timing, twin.sim.sc.layout
    longest = timing.drain_s + timing.htcondor_start_s + timing.return_s + layout.pod_startup_s
    return World("twin", twin, lambda: twin.advance(longest + 1))


class Kubelet:
    """Plays what the fakes cannot do alone: the kubelets stop the pods marked for deletion, a started worker pod's
    startd reports to the collector, and a deleted one's startd stops reporting (the batch ``Daemons`` hold the
    collector's view)."""

    def __init__(self, spec: EnclaveSpec, server: ApiServer, daemons: Daemons) -> None:
        self.spec, self.server, self.daemons = spec, server, daemons
        self.addresses = (f"<10.0.2.{i}:9618>" for i in itertools.count(1))

    def settle(self) -> None:
        self.server.kubelet_stops()
        groups = {g.name: g for g in self.spec.cluster.node_groups}
        backed = set()
        for pod in self.server.pods.values():
            if not objects.is_worker_pod(pod):
                continue
            labels, node = pod["metadata"]["labels"], pod["spec"]["nodeName"]
            whole = objects.is_node_pod(pod)
            name = node if whole else pod["metadata"]["name"]
            backed.add(name)
            if name not in self.daemons.startds:
                g = groups[node.rsplit("-", 1)[0]]
                cpu, mem = objects.pod_requests(pod)
                cores, mib = (g.cores, int(g.memory_gib * 1024)) if whole else (int(cpu), int(mem / 2**20))
                self.daemons.add(Startd(name=name, node=node, kind=StartdKind.NODE if whole else StartdKind.POD,
                                        pool=labels[objects.POOL_LABEL], cores=cores, memory_mib=mib),
                                 next(self.addresses))
        for name, fs in list(self.daemons.startds.items()):
            if fs.startd.kind != StartdKind.STANDALONE and name not in backed:
                del self.daemons.startds[name]


def live_world(spec: EnclaveSpec, start: Observed) -> World:
    """The live backend over fakes seeded with ``start``'s nodes and startds."""
    server = ApiServer(schema_version(spec))
    for n in start.nodes:
        if n.role != NodeRole.BATCH_ONLY:
            server.nodes[n.name] = node_obj(n.name, allocatable={"cpu": str(n.cores), "memory": f"{n.memory_mib}Mi"})
    daemons = Daemons(spec=spec, jobs={host: [] for host in spec.batch.submit_hosts})
    for i, s in enumerate(start.startds, 1):
        assert s.kind == StartdKind.STANDALONE, "the idle twin starts with standalone startds only"
        daemons.add(s, f"<10.0.1.{i}:9618>")
    api = k8s.ApiClient(k8s.Configuration(host="https://kube.example.org:6443"))
    api.rest_client.pool_manager = server
    clock = itertools.count(int(start.now))
    kube = KubeCluster(spec, api, clock=lambda: float(next(clock)))
    backend = LiveBackend(spec, kube, HTCondorBatch(spec, bindings=daemons.bindings))
    kubelet = Kubelet(spec, server, daemons)

    def settle() -> None:  # time passes: the kubelets act, and the broker's next cycle carries on (``progress``)
        kubelet.settle()
        backend.progress()

    world = World("live", backend, settle)
    backend.sleep = world.slept.append
    backend.clock = lambda: start.now + sum(world.slept)
    return world


@pytest.fixture(scope="module")
def spec() -> EnclaveSpec:
    return load(EXAMPLES / "minimal.yaml")


@pytest.fixture(params=["twin", "live"])
def world(request: pytest.FixtureRequest, spec: EnclaveSpec) -> World:
    twin = twin_world(spec)
    if request.param == "twin":
        return twin
    return live_world(spec, twin.backend.observe())


def test_both_backends_start_from_the_same_state(spec: EnclaveSpec) -> None:
    twin = twin_world(spec)
    start = twin.backend.observe()
    live = live_world(spec, start)
    assert view(live.backend.observe()) == view(start)
    nodes, startds = view(start)
    assert set(nodes) == set(spec.node_names()) and all(s == NodeState.READY for s in nodes.values())
    assert {s[1] for s in startds.values()} == {StartdKind.STANDALONE} and len(startds) == 2


def standalone(o: Observed) -> list[Startd]:
    return sorted((s for s in o.startds if s.kind == StartdKind.STANDALONE), key=lambda s: s.name)


def other_pool(pool: str) -> str:
    return "drp" if pool != "drp" else "user"


def every_kind(o: Observed) -> list[Action]:
    """A legal path through every action kind, from the idle start."""
    first, second = standalone(o)
    pods = ("htcondor-worker-001-1", "htcondor-worker-001-2")
    return [
        Relabel(**A, startd=first.name, from_pool=first.pool, to_pool=other_pool(first.pool)),
        DrainStartd(**A, startd=second.name),
        DeployPods(**A, node="worker-001", pool="drp", pods=pods, cores_per_pod=2, memory_mib_per_pod=4096),
        DeletePods(**A, pods=pods[:1]),
        DrainNode(**A, node="worker-002"),
        StartHTCondor(**A, node="worker-002", pool="prompt"),
        ReturnNode(**A, node="worker-002"),
    ]


def test_every_action_has_the_effect_the_projection_predicts(world: World) -> None:
    backend = world.backend
    kinds = set()
    for action in every_kind(backend.observe()):
        before = backend.observe()
        expected = view(apply_one(before, action))
        assert expected != view(before), f"{action.kind} should change something"
        assert backend.apply(action) is True, action
        world.settle()
        assert view(backend.observe()) == expected, f"{world.name}: {action}"
        kinds.add(action.kind)
    assert kinds == {"Relabel", "DrainStartd", "DeployPods", "DeletePods", "DrainNode", "StartHTCondor",
                     "ReturnNode"}


def test_a_drain_evicts_the_workers_pods_and_a_drain_given_up_marks_it(world: World) -> None:
    """Beyond ``every_kind``'s path: a worker with an HTCondor pod on it is drained (the pod is evicted, as
    ``kubectl drain`` evicts every pod but DaemonSets'), and the drain is given up (``ReturnNode.drain_stuck``):
    both worlds mark the worker, as the projection does, so that the broker does not drain it again at once. The
    mark's time is each world's own clock; whether it is set is what is compared."""
    backend = world.backend
    steps = [DeployPods(**A, node="worker-002", pool="drp", pods=("htcondor-worker-002-1",), cores_per_pod=2,
                        memory_mib_per_pod=4096),
             DrainNode(**A, node="worker-002"),
             ReturnNode(**A, node="worker-002", drain_stuck=True)]
    for action in steps:
        before = backend.observe()
        projected = apply_one(before, action)
        assert backend.apply(action) is True, action
        world.settle()
        after = backend.observe()
        assert view(after) == view(projected), f"{world.name}: {action}"
        assert _marked(after) == _marked(projected), f"{world.name}: {action}"
    assert _marked(backend.observe()) == {"worker-002"}


def test_what_an_action_starts_has_not_joined_until_it_settles(world: World) -> None:
    """A worker pod deployed, or HTCondor started on a drained worker, is a startd that has not joined yet: the
    projection says so (``ready`` False, which make before break counts as no capacity), and both worlds report it
    so until their kubelet and startd have acted; once they have, it has joined."""
    backend = world.backend
    pod = "htcondor-worker-001-1"
    deploy = DeployPods(**A, node="worker-001", pool="drp", pods=(pod,), cores_per_pod=2, memory_mib_per_pod=4096)
    drain, start = DrainNode(**A, node="worker-002"), StartHTCondor(**A, node="worker-002", pool="prompt")
    for action, name in ((deploy, pod), (drain, None), (start, "worker-002")):
        projected = apply_one(backend.observe(), action)
        assert backend.apply(action) is True, action
        if name is not None:
            assert _ready(projected, name) is False
            assert _ready(backend.observe(), name) is False, f"{world.name}: {action}"
        world.settle()
        if name is not None:
            assert _ready(backend.observe(), name) is True, f"{world.name}: {action}"


def _ready(o: Observed, name: str) -> bool | None:
    return next((s.ready for s in o.startds if s.name == name), None)


def _marked(o: Observed) -> set[str]:
    """The nodes whose lending was last given up unfinished (``Node.drain_stuck`` set)."""
    return {n.name for n in o.nodes if math.isfinite(n.drain_stuck)}


def test_an_action_applied_twice_changes_nothing_the_second_time(world: World) -> None:
    backend = world.backend
    for action in every_kind(backend.observe()):
        assert backend.apply(action) is True, action
        # At once, while the first is still taking effect ...
        assert backend.apply(action) is False, f"{world.name}: {action} applied twice"
        world.settle()
        settled = view(backend.observe())
        # ... and once it has: the projection agrees it is in effect, and the backend does nothing.
        assert view(apply_one(backend.observe(), action)) == settled
        assert backend.apply(action) is False, f"{world.name}: {action} applied after it took effect"
        world.settle()
        assert view(backend.observe()) == settled


def refusal(backend: Backend, action: Action) -> type[EnclaveError]:
    before = view(backend.observe())
    with pytest.raises(EnclaveError) as err:
        backend.apply(action)
    assert view(backend.observe()) == before, f"a refused {action.kind} changed the state"
    return type(err.value)


def projected_refusal(backend: Backend, action: Action) -> type[EnclaveError]:
    with pytest.raises(EnclaveError) as err:
        apply_one(backend.observe(), action)
    return type(err.value)


def test_stale_actions_are_refused_alike(world: World) -> None:
    """The transitions table: Conflict for a state the action does not start from, InvalidTransition for a
    target of the wrong kind — the same error from the backend and from the projection."""
    backend = world.backend
    first, second = standalone(backend.observe())
    wrong_pool = next(p for p in ("prompt", "drp", "user", "general") if p not in (first.pool, "drp"))
    pods = ("htcondor-worker-001-1",)
    deploy = DeployPods(**A, node="worker-001", pool="drp", pods=pods, cores_per_pod=2, memory_mib_per_pod=4096)
    assert backend.apply(deploy) and backend.apply(DrainNode(**A, node="worker-002"))
    assert backend.apply(DrainStartd(**A, startd=second.name))
    world.settle()
    cases: list[tuple[Action, type[EnclaveError]]] = [
        # Labelled neither from_pool nor to_pool: someone moved it since the decision.
        (Relabel(**A, startd=first.name, from_pool=wrong_pool, to_pool="general"), Conflict),
        (Relabel(**A, startd=second.name, from_pool=second.pool, to_pool=other_pool(second.pool)), Conflict),
        (StartHTCondor(**A, node="worker-001", pool="prompt"), Conflict),  # ready, not drained
        (DeployPods(**A, node="worker-002", pool="drp", pods=("htcondor-worker-002-1",), cores_per_pod=2,
                    memory_mib_per_pod=4096), Conflict),  # draining
        (DeployPods(**A, node="worker-001", pool="prompt", pods=pods, cores_per_pod=2,
                    memory_mib_per_pod=4096), Conflict),  # that pod serves drp
        (DrainNode(**A, node="batch-001"), InvalidTransition),
        (DeployPods(**A, node="master-001", pool="drp", pods=("p",), cores_per_pod=1, memory_mib_per_pod=1024),
         InvalidTransition),
        (DeletePods(**A, pods=(first.name,)), InvalidTransition),  # a standalone startd is no pod
        (ReturnNode(**A, node="batch-002"), InvalidTransition),
    ]
    for action, error in cases:
        assert refusal(backend, action) is error, f"{world.name}: {action}"
        assert projected_refusal(backend, action) is error, action
    assert backend.apply(StartHTCondor(**A, node="worker-002", pool="prompt"))
    other = StartHTCondor(**A, node="worker-002", pool="drp")  # HTCondor there serves prompt
    assert refusal(backend, other) is Conflict
    world.settle()
    assert refusal(backend, other) is Conflict and projected_refusal(backend, other) is Conflict
    # On its way back (the twin for return_s; live until its node pod is gone): HTCondor does not start there again,
    # which would take it back from the commons without a drain (an audit found the twin accepting it).
    assert backend.apply(ReturnNode(**A, node="worker-002"))
    again = StartHTCondor(**A, node="worker-002", pool="prompt")
    assert refusal(backend, again) is Conflict, world.name


def test_a_worker_that_is_down_is_not_drained_nor_given_pods(spec: EnclaveSpec) -> None:
    """The transitions table for a worker that is down (NotReady: its kubelet is gone): no drain (only a ready
    worker can be drained; its pods cannot be evicted) and no worker pods (they would not start), refused as stale
    — the next observation may see it back."""
    o = twin_world(spec).backend.observe()
    o = replace(o, nodes=tuple(replace(n, state=NodeState.DOWN) if n.name == "worker-002" else n for n in o.nodes))
    for action in (DrainNode(**A, node="worker-002"),
                   DeployPods(**A, node="worker-002", pool="drp", pods=("htcondor-worker-002-1",), cores_per_pod=2,
                              memory_mib_per_pod=4096)):
        with pytest.raises(Conflict):
            apply_one(o, action)


def test_a_pod_still_starting_has_no_startd_to_relabel_or_drain(world: World) -> None:
    backend = world.backend
    pod = "htcondor-worker-001-1"
    assert backend.apply(DeployPods(**A, node="worker-001", pool="drp", pods=(pod,), cores_per_pod=2,
                                    memory_mib_per_pod=4096))
    relabel = Relabel(**A, startd=pod, from_pool="drp", to_pool="user")
    assert pod in view(backend.observe())[1]  # listed at once, so the broker does not deploy it twice
    assert refusal(backend, relabel) is Conflict and refusal(backend, DrainStartd(**A, startd=pod)) is Conflict
    world.settle()  # its startd reports: now it can be relabelled
    assert backend.apply(relabel) is True
    assert view(backend.observe())[1][pod] == ("worker-001", StartdKind.POD, "user", False)


def test_unknown_names(world: World) -> None:
    backend = world.backend
    first = standalone(backend.observe())[0]
    for action in (Relabel(**A, startd="nope", from_pool="drp", to_pool="user"),
                   DrainStartd(**A, startd="nope"),
                   DrainNode(**A, node="worker-099"),
                   StartHTCondor(**A, node="worker-099", pool="drp"),
                   ReturnNode(**A, node="worker-099"),
                   DeployPods(**A, node="worker-099", pool="drp", pods=("p",), cores_per_pod=1,
                              memory_mib_per_pod=1024)):
        assert refusal(backend, action) is NotFound, f"{world.name}: {action}"
        assert projected_refusal(backend, action) is NotFound
    # A pool the spec does not define: the backends know the spec (the projection does not).
    assert refusal(backend, Relabel(**A, startd=first.name, from_pool=first.pool, to_pool="nightly")) is NotFound
    # A pod that is not there is deleted already: nothing to do, on both.
    before = view(backend.observe())
    assert backend.apply(DeletePods(**A, pods=("htcondor-worker-001-9",))) is False
    assert view(backend.observe()) == before


def test_the_clock(world: World) -> None:
    backend = world.backend
    start = backend.observe().now
    backend.advance(600)
    assert backend.observe().now == start + 600
    assert backend.progress() == 0 and not backend.finished
    if world.name == "live":
        assert world.slept == [600]  # the live clock moves by itself: advance waits (here, injected)
    else:
        backend.advance(24 * 3600)  # past the 12 h scenario: the twin's clock stops at its horizon
        assert backend.finished and backend.observe().now == start + 12 * 3600


def test_a_drain_has_its_pods_left_until_they_are_gone(world: World) -> None:
    """``drain_left``: what ``enclave batch drain-node --timeout`` waits for, as kubectl drain waits for its evicted
    pods to be gone (pkg/drain/drain.go, waitForDelete). A worker's two HTCondor pods are left once it is drained
    (the twin: until its drain's evictions and their ends; live: until the kubelet has stopped them, the API server
    keeping them meanwhile); none once they are gone. On a worker no drain is under way on, None: a wait for its
    drain finds it undone."""
    backend = world.backend
    pods = ("htcondor-worker-002-1", "htcondor-worker-002-2")
    backend.apply(DeployPods(**A, node="worker-002", pool="drp", pods=pods, cores_per_pod=2, memory_mib_per_pod=4096))
    world.settle()
    assert backend.drain_left("worker-002") is None  # not draining
    assert backend.apply(DrainNode(**A, node="worker-002"))
    assert backend.drain_left("worker-002") == 2, world.name
    assert backend.drain_left("worker-001") is None
    world.settle()
    assert backend.drain_left("worker-002") == 0, world.name
    assert backend.apply(StartHTCondor(**A, node="worker-002", pool="prompt"))
    world.settle()
    assert backend.drain_left("worker-002") == 0, world.name  # drained, and HTCondor runs there
    assert backend.apply(DrainNode(**A, node="worker-001"))
    assert backend.apply(ReturnNode(**A, node="worker-001"))  # given back mid-drain: undone
    assert backend.drain_left("worker-001") is None, world.name


def test_a_drain_given_up_is_remembered_on_the_node(world: World) -> None:
    """``ReturnNode.drain_stuck``: the backend remembers when a drain was given up (live: the node's
    ``enclave.io/drain-stuck`` annotation, across restarts) and reports it as ``Node.drain_stuck``; a plain return
    leaves it as it was (never: -inf)."""
    backend = world.backend
    for node in ("worker-001", "worker-002"):
        assert backend.apply(DrainNode(**A, node=node))
    assert backend.apply(ReturnNode(**A, node="worker-001", drain_stuck=True))
    assert backend.apply(ReturnNode(**A, node="worker-002"))
    world.settle()
    o = backend.observe()
    nodes = {n.name: n for n in o.nodes}
    assert abs(nodes["worker-001"].drain_stuck - o.now) <= 300, world.name  # settling moved the clocks on
    assert nodes["worker-002"].drain_stuck == -math.inf and nodes["worker-001"].state == NodeState.READY


def test_live_a_pod_whose_startd_never_joins_is_given_up(spec: EnclaveSpec) -> None:
    """A worker pod Kubernetes holds but whose startd never reports (an image that does not pull) is listed as
    starting since its making (``ENCLAVE_POD_SINCE``), and ``start_timeout_seconds`` later the broker's decision
    deletes it; the pod goes. While its container runs, the startd is more likely one a restarted collector has not
    heard from yet: it is left — unless the collector started before the pod was made (``collector_since``, from
    its own ad's self-monitoring): then it has had the startd's first ad's chance and more."""
    world = live_world(spec, twin_world(spec).backend.observe())
    backend = world.backend
    assert isinstance(backend, LiveBackend)
    server: Any = backend.kube.api.rest_client.pool_manager
    pods = ("htcondor-worker-001-1",)
    backend.apply(DeployPods(**A, node="worker-001", pool="drp", pods=pods, cores_per_pod=2, memory_mib_per_pod=4096))
    backend.advance(spec.broker.start_timeout_seconds - 60)
    (young,) = [s for s in backend.observe().startds if s.name == pods[0]]
    assert not young.ready
    assert not any(isinstance(a, DeletePods) for a in plan(spec, backend.observe()).actions)
    backend.advance(60)
    pod = server.pods[("htcondor", pods[0])]
    # A ContainerStatus as the kubelet reports it (core/v1: name, image, imageID, ready, restartCount required).
    status = {"name": "htcondor", "image": "htcondor/execute", "imageID": "", "ready": True, "restartCount": 0}
    pod["status"] = {"phase": "Running", "containerStatuses": [
        {**status, "state": {"running": {"startedAt": "2026-06-21T12:00:05Z"}}}]}
    (up,) = [s for s in backend.observe().startds if s.name == pods[0]]
    assert up.pod_up and not up.ready
    collector = backend.condor.collector.daemons  # type: ignore[attr-defined]
    collector.collector_started = int(up.since) + 1  # restarted since the pod was made
    assert backend.observe().collector_since == up.since + 1
    assert not any(isinstance(a, DeletePods) for a in plan(spec, backend.observe()).actions)
    collector.collector_started = int(up.since)  # up before the pod was made: the startd never reached it
    (give_up,) = [a for a in plan(spec, backend.observe()).actions if isinstance(a, DeletePods)]
    assert give_up.pods == pods and "its pod runs, made after the collector started" in give_up.reason
    collector.collector_started = int(up.since) + 1
    pod["status"] = {"phase": "Pending", "containerStatuses": [
        {**status, "ready": False, "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}
    (give_up,) = [a for a in plan(spec, backend.observe()).actions if isinstance(a, DeletePods)]
    assert give_up.pods == pods and "has not joined drp" in give_up.reason
    assert backend.apply(give_up)
    server.kubelet_stops()
    assert not any(p.name == pods[0] for p in backend.kube.worker_pods()) and not server.pods


def test_live_progress_retries_evictions_a_budget_refused(spec: EnclaveSpec) -> None:
    world = live_world(spec, twin_world(spec).backend.observe())
    backend = world.backend
    assert isinstance(backend, LiveBackend)
    server: Any = backend.kube.api.rest_client.pool_manager
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nb-alice", "namespace": "jupyter-lsst"},
           "spec": {"nodeName": "worker-002", "containers": [{"name": "c", "image": "x"}]},
           "status": {"phase": "Running"}}
    server.pods[("jupyter-lsst", "nb-alice")] = pod
    server.pdb_blocked.add("nb-alice")
    assert backend.apply(DrainNode(**A, node="worker-002"))
    assert backend.progress() == 1 and ("jupyter-lsst", "nb-alice") in server.pods
    server.pdb_blocked.clear()  # the budget allows it now: `kubectl drain` retries until it does
    assert backend.progress() == 0 and server.evicted("jupyter-lsst", "nb-alice")
