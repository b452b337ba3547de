"""What each broker action does to the state it finds — one rule, shared by the projection and both backends.

``changes(action, world)`` answers before anything is done: ``True`` when the action would change something,
``False`` when it is already in effect (a duplicate, applied again: nothing to do), or it raises the typed error
below. ``enclave.broker.effects.apply_one`` (the broker's projection), ``TwinBackend.apply`` and
``LiveBackend.apply`` all ask it first, so the same stale, duplicate or conflicting action gets the same answer
from each. ``world`` looks up only the node or startd the action names (the ``World`` protocol): the projection
answers from an ``Observed``, the twin from its simulator's dicts, the live backend from the Kubernetes API and
the collector.

The errors (``enclave.errors``), one rule each:

- ``NotFound``: the node or startd the action names does not exist.
- ``InvalidTransition``: it exists, but the action never applies to its kind — a node that is not a Kubernetes
  worker, a startd that is not an HTCondor worker pod. Deciding again will not help.
- ``Conflict``: it exists and is of the right kind, but is not in a state the action starts from: the action was
  decided on a stale observation (someone else, or the action before, moved it on). Observe and decide again.
- no error, ``False``: the action is already in effect. Nothing changes, nothing is journaled.

=============  ================  ===================  ===================================  =========================
action         NotFound          InvalidTransition    Conflict (stale)                     already in effect (False)
=============  ================  ===================  ===================================  =========================
Relabel        no such startd    —                    labelled neither from_pool nor        labelled to_pool
                                                      to_pool; draining (leaving batch);
                                                      still starting
DrainStartd    no such startd    —                    still starting                       draining already
DeployPods     no such node      node not a worker    node not ready; a named pod is on     every named pod is there,
                                                      another node, in another pool, or      on the node, for the pool
                                                      being deleted
DeletePods     — (a pod that is  a named startd is    —                                    every named pod is gone
               not there is      not a worker pod                                          or being deleted
               deleted already)
DrainNode      no such node      node not a worker    node down                            draining, or HTCondor on it
StartHTCondor  no such node      node not a worker    node ready or down (not drained);    HTCondor started there
                                                      HTCondor started there for another    (running or starting) for
                                                      pool; node on its way back            the pool
ReturnNode     no such node      node not a worker    —                                    ready, down, or on its way
                                                                                           back already
=============  ================  ===================  ===================================  =========================

Pool names are checked against the spec by the backends, which know it (``NotFound``, as for any other name).
A worker pod whose startd has not reported to the collector yet is listed (so it is not deployed twice) but
has no daemon to relabel or drain; the backends know it is starting, an ``Observed`` does not tell.
An action of a kind not listed here is an ``InputError``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from enclave.domain.capacity import (
    Action,
    DeletePods,
    DeployPods,
    DrainNode,
    DrainStartd,
    Node,
    NodeState,
    Relabel,
    ReturnNode,
    Startd,
    StartdKind,
    StartHTCondor,
)
from enclave.errors import Conflict, InputError, InvalidTransition, NotFound, Problem
from enclave.spec.models import NodeRole


@dataclass(frozen=True)
class NodeFacts:
    """What the rules need to know of a node."""

    role: NodeRole
    state: NodeState
    htcondor_pool: str | None = None
    """The pool of the HTCondor started on the bare node (BCS 5), whether its startd reports yet or not."""
    returning: bool = False
    """ReturnNode was accepted and the node is still on its way back to the commons: the twin for ``return_s``,
    live while the node pod's jobs retire (the node stays labelled for HTCondor until the pod is gone)."""


@dataclass(frozen=True)
class StartdFacts:
    """What the rules need to know of a startd."""

    node: str
    kind: StartdKind
    pool: str
    draining: bool = False
    """Accepts no new jobs (drained, or on its way out)."""
    leaving: bool = False
    """Deleted (a pod) or returned (a node) already: gone once its jobs finish."""
    starting: bool = False
    """A worker pod Kubernetes runs whose startd has not reported to the collector yet."""


class World(Protocol):
    """Lookups for the nodes and startds an action names; None for a name that does not exist."""

    def node(self, name: str) -> NodeFacts | None: ...

    def startd(self, name: str) -> StartdFacts | None: ...


class ObservedWorld:
    """A ``World`` over the nodes and startds of an observation (``Observed.nodes`` / ``.startds`` by name)."""

    def __init__(self, nodes: Mapping[str, Node], startds: Mapping[str, Startd]) -> None:
        self.nodes = nodes
        self.startds = startds
        self._node_pool = {s.node: s.pool for s in startds.values() if s.kind == StartdKind.NODE}

    def node(self, name: str) -> NodeFacts | None:
        n = self.nodes.get(name)
        return None if n is None else NodeFacts(role=n.role, state=n.state, htcondor_pool=self._node_pool.get(name))

    def startd(self, name: str) -> StartdFacts | None:
        s = self.startds.get(name)
        return None if s is None else StartdFacts(node=s.node, kind=s.kind, pool=s.pool, draining=s.draining)


def changes(action: Action, world: World) -> bool:
    """True if ``action`` changes something; False if it is in effect already; else the typed error."""
    rule = _RULES.get(type(action))
    if rule is None:
        raise InputError([Problem(f"action {action.kind}", "not a broker action",
                                  "use one of the BCS actions in enclave.domain.capacity")])
    return rule(action, world)


# --- lookups that refuse ------------------------------------------------------------------------------


def _node(world: World, name: str) -> NodeFacts:
    n = world.node(name)
    if n is None:
        raise NotFound(f"no node named {name!r}", where=name, fix="observe again: `enclave broker plan` lists the "
                                                                  "nodes")
    return n


def _worker(world: World, name: str) -> NodeFacts:
    n = _node(world, name)
    if n.role != NodeRole.WORKER:
        raise InvalidTransition(f"{name!r} is not a Kubernetes worker ({n.role.value})", where=name,
                                fix="only worker nodes lend capacity to batch; batch-only nodes change pool with "
                                    "`enclave batch move`")
    return n


def _startd(world: World, name: str) -> StartdFacts:
    s = world.startd(name)
    if s is None:
        raise NotFound(f"no HTCondor startd named {name!r}", where=name,
                       fix="observe again: `enclave broker plan` lists the startds and their pools")
    return s


def _stale(what: str, where: str) -> Conflict:
    return Conflict(what, where=where, fix="observe again and decide from the fresh state")


# --- one rule per action kind ---------------------------------------------------------------------------


def _not_started(s: StartdFacts, name: str) -> None:
    if s.starting:
        raise _stale(f"startd {name!r} is still starting: no daemon reports yet to take the change", name)


def _relabel(a: Relabel, world: World) -> bool:
    s = _startd(world, a.startd)
    if s.pool == a.to_pool:
        return False
    if s.pool != a.from_pool:
        raise _stale(f"startd {a.startd!r} is labelled {s.pool!r}, not {a.from_pool!r}", a.startd)
    if s.draining:
        raise _stale(f"startd {a.startd!r} is draining out of batch: it takes no pool's jobs any more", a.startd)
    _not_started(s, a.startd)
    return True


def _drain_startd(a: DrainStartd, world: World) -> bool:
    s = _startd(world, a.startd)
    if s.draining:
        return False
    _not_started(s, a.startd)
    return True


def _deploy_pods(a: DeployPods, world: World) -> bool:
    n = _worker(world, a.node)
    if n.state != NodeState.READY:
        raise _stale(f"node {a.node} is {n.state.value}, not ready: HTCondor pods cannot start there", a.node)
    missing = False
    for pod in a.pods:
        s = world.startd(pod)
        if s is None:
            missing = True
        elif s.kind != StartdKind.POD or s.node != a.node or s.pool != a.pool or s.leaving:
            raise _stale(f"{pod!r} is already a startd ({s.kind.value} on {s.node}, pool {s.pool!r}"
                         f"{', being deleted' if s.leaving else ''})", pod)
    return missing


def _delete_pods(a: DeletePods, world: World) -> bool:
    present = False
    for pod in a.pods:
        s = world.startd(pod)
        if s is None or s.leaving:
            continue
        if s.kind != StartdKind.POD:
            raise InvalidTransition(f"startd {pod!r} is not an HTCondor worker pod ({s.kind.value})", where=pod,
                                    fix="ReturnNode gives back a BCS 5 node; batch-only nodes are not deleted")
        present = True
    return present


def _drain_node(a: DrainNode, world: World) -> bool:
    n = _worker(world, a.node)
    if n.state in (NodeState.DRAINING, NodeState.HTCONDOR):
        return False
    if n.state == NodeState.DOWN:
        raise _stale(f"node {a.node} is down; only a ready worker can be drained", a.node)
    return True


def _start_htcondor(a: StartHTCondor, world: World) -> bool:
    n = _worker(world, a.node)
    if n.returning:
        raise _stale(f"node {a.node} is on its way back to the commons; drain it again once it is ready", a.node)
    started = n.state == NodeState.HTCONDOR or n.htcondor_pool is not None
    if started and n.htcondor_pool not in (None, a.pool):
        raise _stale(f"HTCondor on {a.node} already serves pool {n.htcondor_pool!r}, not {a.pool!r}", a.node)
    if started:
        return False
    if n.state != NodeState.DRAINING:
        raise _stale(f"node {a.node} is {n.state.value}; drain it before starting HTCondor there", a.node)
    return True


def _return_node(a: ReturnNode, world: World) -> bool:
    n = _worker(world, a.node)
    return n.state in (NodeState.DRAINING, NodeState.HTCONDOR) and not n.returning


_RULES: dict[type[Action], Callable[[Any, World], bool]] = {
    Relabel: _relabel,
    DrainStartd: _drain_startd,
    DeployPods: _deploy_pods,
    DeletePods: _delete_pods,
    DrainNode: _drain_node,
    StartHTCondor: _start_htcondor,
    ReturnNode: _return_node,
}
