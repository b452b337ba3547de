"""`enclave batch drain-node --timeout`: wait as kubectl drain does — evict, then poll every second until each
evicted pod is gone (kubectl pkg/drain/drain.go: evictPods, then waitForDelete) — and give up with a clear error
when pods remain: the drain itself stays applied and journaled, the node tainted, as kubectl leaves it cordoned.

A command's own twin is driven by the wait (``Factory.broker(drives=True)``): its clock moves only when advanced.
The live backend runs over the Kubernetes fake of tests/cluster, whose API server keeps an evicted pod, marked for
deletion, until its kubelet has stopped it."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from enclave.domain.capacity import ReturnNode
from enclave.errors import Conflict, EnclaveError, exit_code
from enclave.journal import query
from enclave.services.broker import DRAIN_POLL_SECONDS, BrokerService, DrainOverrides, DrainTimedOut
from enclave.services.factory import Factory
from enclave.spec.defaults import EXAMPLES, default_spec_path
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec, NodeRole
from enclave.twin.backend import TwinBackend
from enclave.twin.sim import SimNode
from tests.broker.test_conformance import World, live_world, twin_world


@pytest.fixture
def factory() -> Iterator[Factory]:
    with Factory.scratch(load(default_spec_path())) as made:
        yield made


def _twin(factory: Factory) -> tuple[BrokerService, TwinBackend, SimNode]:
    """A command's twin one hour into the one-night scenario, and a worker where notebooks run then."""
    twin = factory.twin_backend("one-night", 1.0)
    node = next(n for n in twin.sim.nodes.values() if n.role == NodeRole.WORKER and n.notebooks)
    return factory.broker(twin, "twin (test)", drives=True), twin, node


def _drain(broker: BrokerService, node: str, timeout: float | None) -> object:
    return broker.drain_node("enclave-broker", node, reason="BCS 5", flags=DrainOverrides(timeout_seconds=timeout))


def test_timeout_zero_waits_until_the_evicted_pods_are_gone(factory: Factory) -> None:
    """The drain's evictions end the notebooks at once, but their pods hold the node for their termination grace
    (the twin's ``kubernetes.termination_grace_s``): the wait ends once they are gone, a poll after at most."""
    broker, twin, node = _twin(factory)
    sim, start = twin.sim, twin.sim.now
    took = sim.sc.timing.drain_s + sim.sc.kubernetes.termination_grace_s
    assert took > 0
    assert _drain(broker, node.name, 0).applied  # type: ignore[attr-defined]
    assert node.drained and not node.notebooks
    assert took <= sim.now - start < took + DRAIN_POLL_SECONDS


def test_without_timeout_it_does_not_wait(factory: Factory) -> None:
    broker, twin, node = _twin(factory)
    start = twin.sim.now
    assert _drain(broker, node.name, None).applied  # type: ignore[attr-defined]
    assert twin.sim.now == start and not node.drained and twin.drain_left(node.name) == len(node.notebooks)


def test_a_timeout_with_pods_left_is_an_error_and_the_drain_stays_journaled(factory: Factory) -> None:
    broker, twin, node = _twin(factory)
    sim, start, pods = twin.sim, twin.sim.now, len(node.notebooks)
    timeout = sim.sc.kubernetes.termination_grace_s / 3  # the notebooks' pods still terminate then
    slept: list[float] = []
    drive = broker.sleep

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        drive(seconds)

    broker.sleep = sleep
    with pytest.raises(DrainTimedOut) as err:
        _drain(broker, node.name, timeout)
    assert f"{pods} pod(s) still to evict or terminating after {timeout:g} s" in str(err.value)
    assert "journal entry" in str(err.value)
    assert isinstance(err.value, EnclaveError) and exit_code(err.value) != 0
    assert sim.now - start == pytest.approx(timeout)  # polled each second, the last poll at the timeout
    # and it ends there: the twin's clock has reached the timeout, so no poll of zero seconds follows, spinning
    # until as much real time has passed (a mutant ending only past the timeout, not at it, did)
    assert len(slept) == math.ceil(timeout / DRAIN_POLL_SECONDS) and all(s > 0 for s in slept)
    assert any(n.name == node.name and n.state.value == "draining" for n in broker.observe().nodes)
    with factory.db.session() as s:
        assert [e.action for e in query(s, action="broker.*")] == ["broker.DrainNode"]


def test_a_drain_undone_while_waiting_is_an_error(factory: Factory) -> None:
    """Given back while the command waits (the broker's cycle, or someone else), the drain will never finish: the
    wait ends with an error naming the drain's journal entry, not with success (review: it said done)."""
    broker, twin, node = _twin(factory)

    def returned_meanwhile(seconds: float) -> None:
        twin.apply(ReturnNode(actor="enclave-broker", reason="given back", node=node.name))
        twin.advance(seconds)

    broker.sleep = returned_meanwhile
    with pytest.raises(Conflict, match=f"{node.name} is no longer draining: its drain .journal entry [0-9]+. was"):
        _drain(broker, node.name, 0)


def _live_with_a_notebook() -> tuple[EnclaveSpec, World, Any]:
    """The live backend over the minimal spec, a notebook running on worker-002; and its fake API server."""
    spec = load(EXAMPLES / "minimal.yaml")
    world = live_world(spec, twin_world(spec).backend.observe())
    server = world.backend.kube.api.rest_client.pool_manager  # type: ignore[attr-defined]
    server.pods[("jupyter-lsst", "nb-alice")] = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nb-alice", "namespace": "jupyter-lsst"},
        "spec": {"nodeName": "worker-002", "containers": [{"name": "c", "image": "x"}]},
        "status": {"phase": "Running"}}
    return spec, world, server


def _drain_live(spec: EnclaveSpec, world: World, sleep: Callable[[float], None]) -> None:
    """Drain worker-002 through the live backend with ``--timeout 0s``, the wait's sleeps going to ``sleep``."""
    with Factory.scratch(spec) as factory:
        broker = factory.broker(world.backend, "live")
        broker.sleep = sleep
        assert _drain(broker, "worker-002", 0).applied  # type: ignore[attr-defined]


def test_live_it_waits_for_the_evicted_pods_to_be_gone_not_only_evicted() -> None:
    """The eviction is accepted at once (no budget holds it); the pod is gone only once its kubelet has stopped
    it, here after the second poll: the wait polls a third time and then ends."""
    spec, world, server = _live_with_a_notebook()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:
            server.kubelet_stops()

    _drain_live(spec, world, sleep)
    assert slept == [DRAIN_POLL_SECONDS, DRAIN_POLL_SECONDS] and ("jupyter-lsst", "nb-alice") not in server.pods


def test_live_each_poll_looks_at_the_drained_node_alone() -> None:
    """A wait polls each second: it retries the evictions of its node and counts what is left there, listing that
    node's pods (field selector ``spec.nodeName``), as kubectl drain looks only at its own node's pods. It lists
    neither every pod nor every node (the broker's cycle does, once per cycle), which each second on a cluster of
    thousands of workers would load the API server with the whole cluster's pods (review: it did)."""
    spec, world, server = _live_with_a_notebook()
    polls: list[list[tuple[str, str, dict[str, str]]]] = []

    def sleep(seconds: float) -> None:
        polls.append([(m, path, q) for (m, path, _), q in zip(server.requests, server.queries, strict=True)])
        server.requests.clear()
        server.queries.clear()
        if len(polls) == 3:
            server.kubelet_stops()

    _drain_live(spec, world, sleep)
    for poll in polls[1:]:  # the first holds the drain's own requests
        gets = [(path, q) for m, path, q in poll if m == "GET"]
        assert gets and all(path == "/api/v1/nodes/worker-002" or (path == "/api/v1/pods" and q == {
            "fieldSelector": "spec.nodeName=worker-002", "limit": "500"}) for path, q in gets), gets
