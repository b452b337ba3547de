"""``enclave.broker.census.Census.free_cores``: the commons' free cores, worked out by hand."""

from __future__ import annotations

from enclave.broker.census import Census
from enclave.domain.capacity import Node, NodeState
from enclave.spec.models import NodeRole


def _worker(name: str, requested: float, state: NodeState = NodeState.READY) -> Node:
    return Node(name, "kub", NodeRole.WORKER, 48, 256 * 1024, state, requested, int(requested * 1024))


def test_free_cores_takes_each_workers_pods_from_what_its_requests_leave() -> None:
    # Ready: w1 (48 − 10.5 − 16 pods), w2 (48 − 0.25, no pods), w3 (48 − 40 − 8 pods); w4 drains with 6 cores of
    # pods to move, which need room elsewhere; pods on w4 itself free nothing (it is not ready).
    census = Census.of([], [_worker("w1", 10.5), _worker("w2", 0.25), _worker("w3", 40.0),
                            _worker("w4", 6.0, NodeState.DRAINING)])
    pods = {"w1": 16, "w3": 8, "w4": 8}
    assert census.free_cores(pods) == (48 - 10.5 - 16) + (48 - 0.25) + (48 - 40 - 8) - 6
    # Asked again with other pods (the census counts what requests leave once): w2 now runs one.
    assert census.free_cores({"w2": 8}) == (48 - 10.5) + (48 - 0.25 - 8) + (48 - 40) - 6


def test_free_cores_of_a_worker_listed_twice_takes_its_pods_from_each_entry() -> None:
    # A map of the workers by name would count w1 once; the rule counts every entry the observation lists.
    census = Census.of([], [_worker("w1", 8.0), _worker("w1", 8.0), _worker("w2", 0.0)])
    assert census.free_cores({"w1": 16}) == 2 * (48 - 8 - 16) + 48
