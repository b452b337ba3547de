"""What an action does to an observed state, as a pure function.

``project(observed, actions)`` is the state the broker expects once the actions have taken effect (jobs
and evictions aside: running jobs keep running and evicted pods take time to go). ``enclave broker plan``
uses it to show the result; the property tests use it to check that deciding again on that result changes
nothing. Applying an action that is already in effect changes nothing, as the Backend contract demands.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from enclave.broker.model import (
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
from enclave.errors import InvalidTransition, NotFound
from enclave.spec.models import NodeRole


def project(observed: Observed, actions: Iterable[Action]) -> Observed:
    for action in actions:
        observed = apply_one(observed, action)
    return observed


def apply_one(o: Observed, action: Action) -> Observed:
    now = o.now
    nodes = {n.name: n for n in o.nodes}
    startds = {s.name: s for s in o.startds}
    if isinstance(action, DeployPods | DrainNode | StartHTCondor | ReturnNode):
        n = _node(nodes, action.node)
        if n.role != NodeRole.WORKER:
            raise InvalidTransition(f"{n.name!r} is not a Kubernetes worker ({n.role.value})", where=n.name,
                                    fix="only worker nodes lend capacity to batch; batch-only nodes change pool "
                                        "with `enclave batch move`")
    match action:
        case Relabel(startd=name, to_pool=to_pool):
            s = _startd(startds, name)
            if s.pool != to_pool:
                startds[name] = replace(s, pool=to_pool, since=now)
        case DeployPods(node=node, pool=pool, pods=pods, cores_per_pod=cores, memory_mib_per_pod=mem):
            n = _node(nodes, node)
            if n.state != NodeState.READY:
                raise InvalidTransition(f"node {node} is {n.state}, not ready: HTCondor pods cannot start there",
                                        where=node, fix="return the node to the commons first")
            for pod in pods:
                if pod not in startds:
                    startds[pod] = Startd(name=pod, node=node, kind=StartdKind.POD, pool=pool, cores=cores,
                                          memory_mib=mem, since=now)
        case DeletePods(pods=pods):
            for pod in pods:
                startds.pop(pod, None)
        case DrainNode(node=node):
            n = _node(nodes, node)
            if n.state == NodeState.READY:
                nodes[node] = replace(n, state=NodeState.DRAINING, since=now)
            elif n.state not in (NodeState.DRAINING, NodeState.HTCONDOR):
                raise InvalidTransition(f"node {node} is {n.state}; only a ready worker can be drained", where=node)
            for pod in [s.name for s in startds.values() if s.node == node and s.kind == StartdKind.POD]:
                del startds[pod]
        case StartHTCondor(node=node, pool=pool):
            n = _node(nodes, node)
            if n.state not in (NodeState.DRAINING, NodeState.HTCONDOR):
                raise InvalidTransition(f"node {node} is {n.state}; drain it before starting HTCondor there",
                                        where=node, fix=f"enclave batch drain-node {node}")
            nodes[node] = replace(n, state=NodeState.HTCONDOR, since=now if n.state != NodeState.HTCONDOR
                                  else n.since)
            if node not in startds:
                startds[node] = Startd(name=node, node=node, kind=StartdKind.NODE, pool=pool, cores=n.cores,
                                       memory_mib=n.memory_mib, since=now)
        case ReturnNode(node=node):
            n = _node(nodes, node)
            for name in [s.name for s in startds.values() if s.node == node and s.kind == StartdKind.NODE]:
                del startds[name]
            if n.state in (NodeState.DRAINING, NodeState.HTCONDOR):
                nodes[node] = replace(n, state=NodeState.READY, since=now)
        case DrainStartd(startd=name):
            s = _startd(startds, name)
            if not s.draining:
                startds[name] = replace(s, draining=True, since=now)
        case _:
            raise NotFound(f"unknown action {action.kind}")
    return replace(o, nodes=tuple(nodes.values()), startds=tuple(startds.values()))


def _node(nodes: dict[str, Node], name: str) -> Node:
    if name not in nodes:
        raise NotFound(f"no node named {name!r}", where=name, fix="`enclave broker plan` lists the nodes")
    return nodes[name]


def _startd(startds: dict[str, Startd], name: str) -> Startd:
    if name not in startds:
        raise NotFound(f"no HTCondor startd named {name!r}", where=name,
                       fix="`enclave broker plan` lists the startds and their pools")
    return startds[name]
