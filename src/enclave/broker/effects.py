"""What an action does to an observed state, as a pure function.

``project(observed, actions)`` is the state the broker expects once the actions have taken effect (jobs
and evictions aside: running jobs keep running and evicted pods take time to go; new startds are not ready
until their daemons join the pool, which no decision can bring about). ``enclave broker plan``
uses it to show the result; the property tests use it to check that deciding again on that result changes
nothing. Whether an action changes anything, is in effect already, or is refused is decided by
``enclave.broker.transitions.changes`` — the rule the twin and the live backend apply too; this module only
says what the change is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from enclave.broker.transitions import ObservedWorld, changes
from enclave.domain.capacity import (
    Action,
    DeletePods,
    DeployPods,
    DrainNode,
    DrainStartd,
    Node,
    NodeState,
    Observed,
    Relabel,
    ReturnNode,
    Startd,
    StartdKind,
    StartHTCondor,
)

Nodes = dict[str, Node]
Startds = dict[str, Startd]


def project(observed: Observed, actions: Iterable[Action]) -> Observed:
    for action in actions:
        observed = apply_one(observed, action)
    return observed


def apply_one(o: Observed, action: Action) -> Observed:
    """``o`` after ``action``: ``o`` itself when the action is in effect already; the rule's error if refused."""
    nodes = {n.name: n for n in o.nodes}
    startds = {s.name: s for s in o.startds}
    if not changes(action, ObservedWorld(nodes, startds)):
        return o
    _EFFECTS[type(action)](action, o.now, nodes, startds)
    return replace(o, nodes=tuple(nodes.values()), startds=tuple(startds.values()))


# --- one effect per action kind; each runs only after ``changes`` accepted the action ---------------------


def _relabel(a: Relabel, now: float, nodes: Nodes, startds: Startds) -> None:
    startds[a.startd] = replace(startds[a.startd], pool=a.to_pool, since=now)


def _drain_startd(a: DrainStartd, now: float, nodes: Nodes, startds: Startds) -> None:
    startds[a.startd] = replace(startds[a.startd], draining=True, since=now)


def _deploy_pods(a: DeployPods, now: float, nodes: Nodes, startds: Startds) -> None:
    for pod in a.pods:
        startds.setdefault(pod, Startd(name=pod, node=a.node, kind=StartdKind.POD, pool=a.pool,
                                       cores=a.cores_per_pod, memory_mib=a.memory_mib_per_pod, since=now,
                                       ready=False))


def _delete_pods(a: DeletePods, now: float, nodes: Nodes, startds: Startds) -> None:
    for pod in a.pods:
        startds.pop(pod, None)


def _drain_node(a: DrainNode, now: float, nodes: Nodes, startds: Startds) -> None:
    nodes[a.node] = replace(nodes[a.node], state=NodeState.DRAINING, since=now)
    for pod in [s.name for s in startds.values() if s.node == a.node and s.kind == StartdKind.POD]:
        del startds[pod]


def _start_htcondor(a: StartHTCondor, now: float, nodes: Nodes, startds: Startds) -> None:
    n = replace(nodes[a.node], state=NodeState.HTCONDOR, since=now)
    nodes[a.node] = n
    startds[a.node] = Startd(name=a.node, node=a.node, kind=StartdKind.NODE, pool=a.pool, cores=n.cores,
                             memory_mib=n.memory_mib, since=now, ready=False)


def _return_node(a: ReturnNode, now: float, nodes: Nodes, startds: Startds) -> None:
    for name in [s.name for s in startds.values() if s.node == a.node and s.kind == StartdKind.NODE]:
        del startds[name]
    n = nodes[a.node]
    nodes[a.node] = replace(n, state=NodeState.READY, since=now, drain_stuck=now if a.drain_stuck else n.drain_stuck)


_EFFECTS: dict[type[Action], Callable[[Any, float, Nodes, Startds], None]] = {
    Relabel: _relabel,
    DrainStartd: _drain_startd,
    DeployPods: _deploy_pods,
    DeletePods: _delete_pods,
    DrainNode: _drain_node,
    StartHTCondor: _start_htcondor,
    ReturnNode: _return_node,
}
