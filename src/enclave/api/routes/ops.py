"""Operations reports: the Kubernetes upgrade plan (more as the ops concept lands)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from enclave.api.auth import Principal, api_principal
from enclave.api.plain import plain
from enclave.api.service import Service, get_service
from enclave.ops.upgrade import components_from_spec, plan_upgrade
from enclave.ops.versions import Version

router = APIRouter(prefix="/ops", tags=["operations"])


@router.get("/upgrade-plan", summary="Kubernetes upgrade steps from the spec's version, one minor at a time")
def upgrade_plan(target: str | None = Query(None, max_length=32, description="e.g. 1.31 or 1.31.4"),
                 principal: Principal = Depends(api_principal),  # noqa: B008
                 service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    to = Version.parse(target, where="target") if target else None
    result: dict[str, Any] = plain(plan_upgrade(components_from_spec(service.spec), to))
    return result
