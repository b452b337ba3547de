"""Health, identity, service status, spec summary and the history behind the dashboard charts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from enclave.api.auth import Principal, api_principal
from enclave.api.service import Service, get_service

router = APIRouter(tags=["system"])


@router.get("/health", summary="Liveness: no authentication")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/whoami", summary="The calling account, its roles and permissions")
def whoami(principal: Principal = Depends(api_principal),  # noqa: B008
           service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    from enclave.api.views import roles_and_permissions

    with service.db.session() as session:
        roles, permissions = roles_and_permissions(session, principal.username)
    return {"username": principal.username, "roles": roles, "permissions": permissions}


@router.get("/status", summary="Broker loop and backend: cycles, actions, clock, latest snapshot")
def status(principal: Principal = Depends(api_principal),  # noqa: B008
           service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    snap = service.history.latest()
    return {
        "broker": service.runner.status() if service.runner else None,
        "snapshot": snap.to_json(with_nodes=False) if snap else None,
    }


@router.get("/history", summary="Capacity, queue depth and prompt latency per pool over time")
def history(principal: Principal = Depends(api_principal),  # noqa: B008
            service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    return service.history.series()
