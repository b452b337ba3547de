"""Health, identity, service status, spec summary and the history behind the dashboard charts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from enclave.api.deps import Accounts, Caller, ServiceDep
from enclave.api.runner import BrokerStatus
from enclave.api.snapshot import iso
from enclave.services.database import unready

router = APIRouter(tags=["system"])


class Status(BaseModel):
    broker: BrokerStatus | None
    """None when the service runs without a backend (`enclave serve --no-broker`)."""
    snapshot: dict[str, Any] | None
    """The latest observation summarised: pools, node states, prompt latency (None before the first)."""


class Identity(BaseModel):
    username: str
    roles: list[str]
    permissions: list[str]


@router.get("/health", summary="Liveness: no authentication")
def health() -> dict[str, str]:
    """The liveness probe's: answered by the process alone, never by the database or any outside system, so a
    restart is asked for only when this process itself is stuck (kubernetes.io, "Configure Liveness, Readiness
    and Startup Probes", "Define a liveness HTTP request"; a liveness check that follows a shared dependency
    restarts every replica when that dependency fails, which a restart does not fix)."""
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: no authentication; 503 while the database does not answer",
            responses={503: {"description": "Not ready: the body says why"}})
def ready(service: ServiceDep) -> JSONResponse:
    """The readiness probe's: 200 while this replica can serve requests, 503 with the reason while its database
    does not answer a trivial query (``enclave.services.database.unready``)."""
    why = unready(service.factory.db)
    if why is None:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "unready", "reason": why}, status_code=503)


@router.get("/whoami", summary="The calling account, its roles, and the permissions this token may use")
def whoami(caller: Caller, accounts: Accounts) -> Identity:
    """The permissions are the account's narrowed to the token's scopes (``Principal.permissions``), what a request
    with this token may do; the account's own would claim what its scopes forbid (review, stop 48)."""
    roles, _ = accounts.whoami(caller.username)
    return Identity(username=caller.username, roles=roles, permissions=sorted(p.value for p in caller.permissions))


@router.get("/status", summary="Broker loop and backend: cycles, actions, clock, latest snapshot")
def status(caller: Caller, service: ServiceDep) -> Status:
    snap = service.history.latest()
    return Status(broker=service.runner.status() if service.runner else None,
                  snapshot=snap.to_json(with_nodes=False) if snap else None)


@router.get("/history", summary="Capacity, queue depth and prompt latency per pool over time")
def history(caller: Caller, service: ServiceDep) -> dict[str, Any]:
    series = service.history.series()
    series.pop("prompt_latencies")  # per-visit detail the charts fold into per-night percentiles
    return {**series, "t": [iso(t) for t in series["t"]],
            "prompt_p95": [None if v is None else round(v, 1) for v in series["prompt_p95"]]}
