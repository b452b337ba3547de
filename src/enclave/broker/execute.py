"""Carrying actions out: role check, backend call and journal entry in one transaction.

For each action the executor opens one database transaction, checks that the acting account holds the
permission the BCS procedure needs (HTCondor admin relabels and starts HTCondor; Kubernetes service admin
manages pods and drains nodes), applies the action to the backend, and journals it with the before and
after state of what it touched. A refused action touches nothing; a backend failure rolls the journal back.

Idempotence and restarts: an action already in effect (the fresh observation projects to itself) is
skipped and not journaled again. The broker keeps no state of its own between cycles — every cycle starts
from ``backend.observe()`` — so a broker killed between two actions simply re-observes after a restart and
decides from what is really there; no node is left in two pools or in none, because every action moves a
whole startd or node from one well-defined state to the next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from enclave.broker.decide import BROKER_ACTOR, Plan, plan
from enclave.broker.effects import apply_one
from enclave.broker.model import (
    Action,
    Backend,
    DeletePods,
    DeployPods,
    DrainNode,
    DrainStartd,
    Observed,
    Relabel,
    ReturnNode,
    StartHTCondor,
)
from enclave.db import Database
from enclave.spec.models import EnclaveSpec


def permissions(action: Action) -> tuple[str, ...]:
    """Permissions (``enclave.access.permissions.Permission`` values) an action needs, per seed BCS 1–5."""
    from enclave.access.permissions import Permission as P

    match action:
        case Relabel() | DrainStartd() | StartHTCondor():
            return (P.BATCH_RELABEL.value,)  # HTCondor administrator: ClassAds, startd drain, condor services
        case DeployPods() | DeletePods() | DrainNode():
            return (P.BATCH_PODS.value,)  # Kubernetes service administrator: pods and node drains
        case ReturnNode():
            return (P.BATCH_RELABEL.value, P.BATCH_PODS.value)  # stop HTCondor, then uncordon
    return (P.BATCH_RELABEL.value, P.BATCH_PODS.value)


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
        "nodes": {n.name: {"state": n.state.value, "k8s_cores_requested": n.k8s_cores_requested}
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


class Executor:
    """Applies actions to a backend, each role-checked and journaled in one database transaction."""

    def __init__(self, backend: Backend, db: Database, clock: Callable[[], datetime] | None = None) -> None:
        self.backend = backend
        self.db = db
        self.clock = clock or (lambda: datetime.now(UTC))

    def apply(self, action: Action, observed: Observed | None = None) -> Outcome:
        from enclave.access.permissions import Permission, require
        from enclave.journal import record

        before_state = observed if observed is not None else self.backend.observe()
        expected = apply_one(before_state, action)  # also refuses an action impossible in this state
        if expected == before_state:
            return Outcome(action, applied=False)
        with self.db.session() as session:
            for p in permissions(action):
                require(session, action.actor, Permission(p))
            self.backend.apply(action)
            entry = record(session, actor=action.actor, action=f"broker.{action.kind}", target=target(action),
                           reason=action.reason, before=touched(before_state, action),
                           after={**touched(expected, action), "action": details(action)}, at=self.clock())
        return Outcome(action, applied=True, seq=entry.seq)

    def apply_all(self, actions: Iterable[Action]) -> list[Outcome]:
        """Apply in order, re-observing before each so that an action made moot by the last one is skipped."""
        return [self.apply(a) for a in actions]


@dataclass
class CycleReport:
    plan: Plan
    outcomes: list[Outcome] = field(default_factory=list)


def cycle(spec: EnclaveSpec, executor: Executor, actor: str = BROKER_ACTOR) -> CycleReport:
    """One observe → decide → act round."""
    observed = executor.backend.observe()
    decision = plan(spec, observed, actor)
    return CycleReport(decision, executor.apply_all(decision.actions))
