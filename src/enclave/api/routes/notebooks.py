"""Notebook spawner options for the calling account (seed §5 AA1), and validation of a choice."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import Field

from enclave.access.permissions import Permission, require
from enclave.api.auth import Principal, api_principal
from enclave.api.routes.bodies import Body, Short
from enclave.api.service import Service, get_service
from enclave.notebooks import options as nb
from enclave.notebooks.repository import AccountSnapshot, snapshot

router = APIRouter(prefix="/notebooks", tags=["notebooks"])


class ChoiceBody(Body):
    image: Short | None = Field(default=None, max_length=300)
    size: Short | None = None
    cpu: float | None = Field(default=None, gt=0, le=1024)
    memory_mib: int | None = Field(default=None, gt=0, le=16 * 1024 * 1024)


def _caller(service: Service, principal: Principal) -> AccountSnapshot:
    # A detached snapshot: the image vetter reads approvals in its own transaction, after this one closed.
    with service.db.session() as session:
        return snapshot(require(session, principal.username, Permission.NOTEBOOKS_SPAWN))


@router.get("/options", summary="Images and sizes the calling account may pick")
def options(principal: Principal = Depends(api_principal),  # noqa: B008
            service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    principal.need_scope(Permission.NOTEBOOKS_SPAWN)
    account = _caller(service, principal)
    found = nb.options_for(service.spec, account, vetted=service.image_vetter())
    return {**asdict(found), "sizes": [{**asdict(s), "label": s.label} for s in found.sizes]}


@router.post("/validate", summary="Check a spawn choice as the hub's pre-spawn hook would; returns the pod sizing")
def validate(body: ChoiceBody, principal: Principal = Depends(api_principal),  # noqa: B008
             service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    principal.need_scope(Permission.NOTEBOOKS_SPAWN)
    account = _caller(service, principal)
    choice = nb.Choice(image=body.image, size=body.size, cpu=body.cpu, memory_mib=body.memory_mib)
    return asdict(nb.validate(service.spec, account, choice, vetted=service.image_vetter()))
