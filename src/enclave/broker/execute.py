"""What an action means for permission and the journal: the roles each BCS procedure needs, its target, and
the part of the state it touches. Pure; ``enclave.services.broker`` carries actions out with these.

"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from enclave.access.permissions import Permission as P
from enclave.domain.capacity import (
    Action,
    DeletePods,
    DeployPods,
    DrainNode,
    DrainStartd,
    Observed,
    Relabel,
    ReturnNode,
    StartHTCondor,
)

PERMISSIONS: dict[type[Action], tuple[P, ...]] = {
    # HTCondor administrator: ClassAds, startd drain, condor services
    Relabel: (P.BATCH_RELABEL,), DrainStartd: (P.BATCH_RELABEL,), StartHTCondor: (P.BATCH_RELABEL,),
    # Kubernetes service administrator: pods and node drains
    DeployPods: (P.BATCH_PODS,), DeletePods: (P.BATCH_PODS,), DrainNode: (P.BATCH_PODS,),
    ReturnNode: (P.BATCH_RELABEL, P.BATCH_PODS),  # stop HTCondor, then take the broker's taint off
}
"""The permissions each BCS procedure needs (seed §7.1 BCS 1–5 names who does each step)."""

KINDS: tuple[str, ...] = tuple(kind.__name__ for kind in PERMISSIONS)
"""Every action's ``kind``: the whole, bounded set of values a per-kind metric label takes."""


def permissions(action: Action) -> tuple[P, ...]:
    """The permissions ``action`` needs."""
    return PERMISSIONS[type(action)]


def target(action: Action) -> str:
    match action:
        case Relabel(startd=s) | DrainStartd(startd=s):
            return f"startd/{s}"
        case DeletePods(pods=pods):
            return "pods/" + ",".join(pods)
        case DeployPods(node=n) | DrainNode(node=n) | StartHTCondor(node=n) | ReturnNode(node=n):
            return f"node/{n}"
    return action.kind


def touched(o: Observed, action: Action) -> dict[str, Any]:
    """The part of the state an action changes, as plain data for the journal."""
    match action:
        case Relabel(startd=s) | DrainStartd(startd=s):
            names = {s}
            nodes: set[str] = set()
        case DeletePods(pods=pods):
            names, nodes = set(pods), set()
        case DeployPods(node=n) | DrainNode(node=n) | StartHTCondor(node=n) | ReturnNode(node=n):
            names, nodes = set(), {n}
        case _:
            names, nodes = set(), set()
    return {
        # drain_stuck too: a ReturnNode that wrote it and failed after has changed what the broker decides on
        # (review, stop 53: such a part-failure went unjournaled); None for never (-inf is no JSON).
        "nodes": {n.name: {"state": n.state.value, "k8s_cores_requested": n.k8s_cores_requested,
                           "drain_stuck": n.drain_stuck if math.isfinite(n.drain_stuck) else None}
                  for n in o.nodes if n.name in nodes},
        "startds": {s.name: {"pool": s.pool, "kind": s.kind.value, "cores": s.cores, "draining": s.draining}
                    for s in o.startds if s.name in names or s.node in nodes},
    }


def details(action: Action) -> dict[str, Any]:
    out = {k: v for k, v in vars(action).items() if k not in ("actor", "reason")}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


@dataclass
class Outcome:
    action: Action
    applied: bool
    """False when the action was already in effect (nothing done, nothing journaled)."""
    seq: int | None = None
    """Journal sequence number of the entry."""
    lost_core_s: float = 0.0
    """Running work the action was expected to evict, as its journal entry records it (``evicts``)."""
