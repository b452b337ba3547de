"""The capacity broker: its plan for now, the actions it applied, and the manual BCS procedures.

A manual procedure is one call of ``enclave.services.broker.BrokerService`` — the call ``enclave batch move``
etc. make — with the caller as actor. It runs between two broker cycles, is role-checked (HTCondor admin
relabels; Kubernetes service admin manages pods and drains) and journaled in the transaction that applies it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from enclave.access.permissions import Permission
from enclave.api.deps import Caller, Runner, Schedules
from enclave.api.plain import plain
from enclave.api.routes.bodies import Body, Reason, Short
from enclave.api.runner import BrokerStatus
from enclave.broker.decide import PoolState
from enclave.broker.execute import PERMISSIONS, Outcome
from enclave.domain.capacity import (
    Action,
    DeletePods,
    DeployPods,
    DrainNode,
    DrainStartd,
    Relabel,
    ReturnNode,
    StartHTCondor,
)
from enclave.domain.schedule import ObservingSchedule
from enclave.services.broker import BrokerService, DrainOverrides
from enclave.services.schedule import ScheduleView

router = APIRouter(prefix="/broker", tags=["broker"])

PodName = Annotated[str, Field(min_length=1, max_length=253)]


class RelabelBody(Body):
    """BCS 1/2: change which pool a startd serves (its ClassAd)."""

    action: ClassVar[type[Action]] = Relabel

    kind: Literal["relabel"]
    startd: Short
    to_pool: Short
    reason: Reason


class DeployPodsBody(Body):
    """BCS 4: run HTCondor worker pods on a Kubernetes node, labelled for a pool."""

    action: ClassVar[type[Action]] = DeployPods

    kind: Literal["deploy-pods"]
    node: Short
    pool: Short
    count: int = Field(default=1, ge=1, le=256)
    cores_per_pod: int | None = Field(default=None, ge=1, le=1024, description="Default: the spec's broker.pod_cores.")
    memory_mib_per_pod: int | None = Field(default=None, ge=256, le=16 * 1024 * 1024,
                                           description="Default: the spec's broker.pod_memory_mib.")
    reason: Reason


class DeletePodsBody(Body):
    """BCS 3: delete HTCondor worker pods."""

    action: ClassVar[type[Action]] = DeletePods

    kind: Literal["delete-pods"]
    pods: list[PodName] = Field(min_length=1, max_length=256)
    reason: Reason


class DrainNodeBody(Body):
    """BCS 5 step 1: taint a Kubernetes node against new pods and evict its pods."""

    action: ClassVar[type[Action]] = DrainNode

    kind: Literal["drain-node"]
    node: Short
    reason: Reason
    # kubectl drain's flags (enclave.services.broker.DrainOverrides); None: the spec's cluster.drain.
    force: bool | None = None
    ignore_daemonsets: bool | None = None
    delete_emptydir_data: bool | None = None
    grace_period_seconds: int | None = Field(default=None, ge=0, le=86400)
    timeout_seconds: float | None = Field(default=None, gt=0, le=600, allow_inf_nan=False)
    """Wait for the evictions within the request: more than 0 and at most 10 minutes (a request does not wait
    without limit, as kubectl's --timeout 0s would)."""

    def flags(self) -> DrainOverrides:
        return DrainOverrides(force=self.force, ignore_daemonsets=self.ignore_daemonsets,
                              delete_emptydir_data=self.delete_emptydir_data,
                              grace_period_seconds=self.grace_period_seconds)


class StartHTCondorBody(Body):
    """BCS 5 steps 2–3: start HTCondor on a drained node, labelled for a pool."""

    action: ClassVar[type[Action]] = StartHTCondor

    kind: Literal["start-htcondor"]
    node: Short
    pool: Short
    reason: Reason


class ReturnNodeBody(Body):
    """Reverse of BCS 5: stop HTCondor on the node and give it back to Kubernetes."""

    action: ClassVar[type[Action]] = ReturnNode

    kind: Literal["return-node"]
    node: Short
    reason: Reason


class DrainStartdBody(Body):
    """Stop new matches on a startd (drain), optionally evicting after a grace period (vacate)."""

    action: ClassVar[type[Action]] = DrainStartd

    kind: Literal["drain-startd"]
    startd: Short
    vacate_after_seconds: float | None = Field(default=None, ge=0, le=7 * 86400)
    reason: Reason


Procedure = Annotated[RelabelBody | DeployPodsBody | DeletePodsBody | DrainNodeBody | StartHTCondorBody
                      | ReturnNodeBody | DrainStartdBody, Field(discriminator="kind")]


def procedure(body: Procedure, actor: str) -> Callable[[BrokerService], Outcome]:
    """The one service call a procedure body stands for."""
    match body:
        case RelabelBody():
            return lambda b: b.move(actor, body.startd, body.to_pool, reason=body.reason)
        case DeployPodsBody():
            return lambda b: b.add_pods(actor, body.node, body.pool, reason=body.reason, count=body.count,
                                        cores=body.cores_per_pod, memory_mib=body.memory_mib_per_pod)
        case DeletePodsBody():
            return lambda b: b.delete_pods(actor, body.pods, reason=body.reason)
        case DrainNodeBody():  # its timeout is waited out of the lock (``act``)
            return lambda b: b.drain_node(actor, body.node, reason=body.reason, flags=body.flags())
        case StartHTCondorBody():
            return lambda b: b.start_htcondor(actor, body.node, body.pool, reason=body.reason)
        case ReturnNodeBody():
            return lambda b: b.return_node(actor, body.node, reason=body.reason)
    return lambda b: b.drain_startd(actor, body.startd, reason=body.reason, vacate_after=body.vacate_after_seconds)


class NightView(BaseModel):
    start: datetime
    end: datetime


class AppliedView(BaseModel):
    at: datetime
    """Backend clock when it was applied (ISO 8601 UTC; simulated in the twin)."""
    kind: str
    target: str
    actor: str
    reason: str
    journal_seq: int | None


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(round(seconds), UTC)


class PlanView(BaseModel):
    observed_at: datetime
    """Backend clock of the observation the plan was made on (ISO 8601 UTC)."""
    actions: list[dict[str, Any]]
    """Each action with its ``kind`` and fields, in the order the broker would apply them."""
    pools: dict[str, PoolState]
    night: NightView | None
    standalone_cores: int
    capped: bool
    notes: list[str]


class ActionDone(BaseModel):
    action: dict[str, Any]
    applied: bool
    journal_seq: int | None
    note: str | None


@router.get("/status", summary="The broker loop: backend, cycles, actions applied, last error")
def status(caller: Caller, runner: Runner) -> BrokerStatus:
    return runner.status()


@router.get("/plan", summary="What the broker would do now, and why (pure decide() on a fresh observation)")
def plan(caller: Caller, runner: Runner) -> PlanView:
    decided, observed = runner.broker.plan()
    night = NightView(start=_utc(decided.night.start), end=_utc(decided.night.end)) if decided.night else None
    return PlanView(observed_at=_utc(observed.now), actions=plain(decided.actions), pools=decided.pools, night=night,
                    standalone_cores=decided.standalone_cores, capped=decided.capped, notes=decided.notes)


@router.get("/actions", summary="Actions applied recently, newest first (broker and manual)")
def actions(caller: Caller, runner: Runner, limit: int = Query(50, ge=1, le=200)) -> list[AppliedView]:
    return [AppliedView(at=_utc(a.at), kind=a.kind, target=a.target, actor=a.actor, reason=a.reason,
                        journal_seq=a.journal_seq) for a in list(runner.recent)[:limit]]


@router.post("/actions", status_code=201, summary="Run one BCS procedure by hand (role-checked, journaled)")
def act(body: Procedure, caller: Caller, runner: Runner) -> ActionDone:
    for permission in PERMISSIONS[body.action]:
        caller.need_scope(permission)
    outcome = runner.manual(procedure(body, caller.username))
    if isinstance(body, DrainNodeBody) and body.timeout_seconds is not None:
        # Outside the procedure's lock: the broker's cycles (and a twin's clock) go on while the drain finishes.
        runner.broker.wait_drained(body.node, body.timeout_seconds, outcome)
    return ActionDone(action=plain(outcome.action), applied=outcome.applied, journal_seq=outcome.seq,
                      note=None if outcome.applied else "already in effect: nothing done, nothing journaled")


class ScheduleBody(Body):
    """An observing schedule (``enclave.domain.schedule``: next_visit's fields per visit) and why it is pushed."""

    schedule: ObservingSchedule
    reason: Reason


@router.get("/schedule", summary="The observing schedule in force (null when none was pushed: twilight decides)")
def show_schedule(caller: Caller, schedules: Schedules) -> ScheduleView | None:
    caller.need_scope(Permission.JOURNAL_READ)
    return schedules.show(caller.username)


@router.post("/schedule", status_code=201, summary="Push the observing schedule the broker pre-warms for "
             "(HTCondor administrators; journaled)")
def push_schedule(body: ScheduleBody, caller: Caller, schedules: Schedules) -> ScheduleView:
    caller.need_scope(Permission.BATCH_RELABEL)
    return schedules.push(caller.username, body.schedule, reason=body.reason)
