"""The capacity broker: its plan for now, the actions it applied, and the manual BCS procedures.

A manual procedure is the same ``Action`` the broker would emit, with the caller as actor. It runs between
two broker cycles, is role-checked (HTCondor admin relabels; Kubernetes service admin manages pods and
drains) and journaled in the transaction that applies it, as ``enclave batch move`` etc. do from the CLI.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from enclave.api.auth import Principal, api_principal
from enclave.api.plain import plain
from enclave.api.routes.bodies import Body, Reason, Short
from enclave.api.runner import BrokerRunner
from enclave.api.service import Service, get_service
from enclave.broker import decide as broker
from enclave.broker.execute import Outcome
from enclave.broker.model import (
    Action,
    DeletePods,
    DeployPods,
    DrainNode,
    DrainStartd,
    Relabel,
    ReturnNode,
    StartHTCondor,
)
from enclave.broker.naming import pod_names
from enclave.errors import Conflict, NotFound

router = APIRouter(prefix="/broker", tags=["broker"])

PodName = Annotated[str, Field(min_length=1, max_length=253)]


class RelabelBody(Body):
    """BCS 1/2: change which pool a startd serves (its ClassAd)."""

    kind: Literal["relabel"]
    startd: Short
    to_pool: Short
    reason: Reason


class DeployPodsBody(Body):
    """BCS 4: run HTCondor worker pods on a Kubernetes node, labelled for a pool."""

    kind: Literal["deploy-pods"]
    node: Short
    pool: Short
    count: int = Field(default=1, ge=1, le=256)
    cores_per_pod: int = Field(ge=1, le=1024)
    memory_mib_per_pod: int = Field(ge=256, le=16 * 1024 * 1024)
    reason: Reason


class DeletePodsBody(Body):
    """BCS 3: delete HTCondor worker pods."""

    kind: Literal["delete-pods"]
    pods: list[PodName] = Field(min_length=1, max_length=256)
    reason: Reason


class DrainNodeBody(Body):
    """BCS 5 step 1: cordon a Kubernetes node and evict its pods."""

    kind: Literal["drain-node"]
    node: Short
    reason: Reason


class StartHTCondorBody(Body):
    """BCS 5 steps 2–3: start HTCondor on a drained node, labelled for a pool."""

    kind: Literal["start-htcondor"]
    node: Short
    pool: Short
    reason: Reason


class ReturnNodeBody(Body):
    """Reverse of BCS 5: stop HTCondor on the node and give it back to Kubernetes."""

    kind: Literal["return-node"]
    node: Short
    reason: Reason


class DrainStartdBody(Body):
    """Stop new matches on a startd (drain), optionally evicting after a grace period (vacate)."""

    kind: Literal["drain-startd"]
    startd: Short
    vacate_after_seconds: float | None = Field(default=None, ge=0, le=7 * 86400)
    reason: Reason


Procedure = Annotated[RelabelBody | DeployPodsBody | DeletePodsBody | DrainNodeBody | StartHTCondorBody
                      | ReturnNodeBody | DrainStartdBody, Field(discriminator="kind")]


def _runner(service: Service) -> BrokerRunner:
    if service.runner is None:
        raise Conflict("this service runs without a backend, so there is nothing to plan or act on",
                       where="enclave serve", fix="start the service with the twin (default) or --live")
    return service.runner


def to_action(body: Procedure, actor: str, runner: BrokerRunner) -> Action:
    """Build the domain action. Relabel needs the startd's current pool, read from a fresh observation."""
    if isinstance(body, RelabelBody):
        observed = runner.observe()
        current = next((s for s in observed.startds if s.name == body.startd), None)
        if current is None:
            raise NotFound(f"no startd named {body.startd!r}", where="startd",
                           fix="GET /api/v1/nodes lists the startds each node runs")
        return Relabel(actor=actor, reason=body.reason, startd=body.startd, from_pool=current.pool,
                       to_pool=body.to_pool)
    if isinstance(body, DeployPodsBody):
        observed = runner.observe()
        names = pod_names(body.node, body.count, {s.name for s in observed.startds})
        return DeployPods(actor=actor, reason=body.reason, node=body.node, pool=body.pool, pods=names,
                          cores_per_pod=body.cores_per_pod, memory_mib_per_pod=body.memory_mib_per_pod)
    if isinstance(body, DeletePodsBody):
        return DeletePods(actor=actor, reason=body.reason, pods=tuple(body.pods))
    if isinstance(body, DrainNodeBody):
        return DrainNode(actor=actor, reason=body.reason, node=body.node)
    if isinstance(body, StartHTCondorBody):
        return StartHTCondor(actor=actor, reason=body.reason, node=body.node, pool=body.pool)
    if isinstance(body, ReturnNodeBody):
        return ReturnNode(actor=actor, reason=body.reason, node=body.node)
    return DrainStartd(actor=actor, reason=body.reason, startd=body.startd,
                       vacate_after_seconds=body.vacate_after_seconds)


@router.get("/status", summary="The broker loop: backend, cycles, actions applied, last error")
def status(principal: Principal = Depends(api_principal),  # noqa: B008
           service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    return _runner(service).status()


@router.get("/plan", summary="What the broker would do now, and why (pure decide() on a fresh observation)")
def plan(principal: Principal = Depends(api_principal),  # noqa: B008
         service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    runner = _runner(service)
    observed = runner.exclusive(runner.observe)
    result: dict[str, Any] = plain(broker.plan(service.spec, observed))
    result["observed_at"] = observed.now
    return result


@router.get("/actions", summary="Actions applied recently, newest first (broker and manual)")
def actions(limit: int = Query(50, ge=1, le=200), principal: Principal = Depends(api_principal),  # noqa: B008
            service: Service = Depends(get_service)) -> list[dict[str, Any]]:  # noqa: B008
    recent: list[dict[str, Any]] = plain(list(_runner(service).recent)[:limit])
    return recent


@router.post("/actions", status_code=201, summary="Run one BCS procedure by hand (role-checked, journaled)")
def act(body: Procedure, principal: Principal = Depends(api_principal),  # noqa: B008
        service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    runner = _runner(service)

    def run() -> Outcome:
        action = to_action(body, principal.username, runner)
        for permission in runner.permissions_for(action):
            principal.need_scope(permission)
        return runner.apply_manual(action)

    outcome = runner.exclusive(run)
    return {"action": plain(outcome.action), "applied": outcome.applied, "journal_seq": outcome.seq,
            "note": None if outcome.applied else "already in effect: nothing done, nothing journaled"}
