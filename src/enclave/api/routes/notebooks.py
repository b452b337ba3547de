"""Notebook spawner options for the calling account (seed §5 AA1), and validation of a choice."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

from enclave.access.permissions import Permission
from enclave.api.deps import Caller, Notebooks
from enclave.api.routes.bodies import Body, Short
from enclave.notebooks import options as nb

router = APIRouter(prefix="/notebooks", tags=["notebooks"])


class ChoiceBody(Body):
    image: Short | None = Field(default=None, max_length=300)
    size: Short | None = None
    cpu: float | None = Field(default=None, gt=0, le=1024)
    memory_mib: int | None = Field(default=None, gt=0, le=16 * 1024 * 1024)


@router.get("/options", summary="Images and sizes the calling account may pick")
def options(caller: Caller, notebooks: Notebooks) -> nb.Options:
    caller.need_scope(Permission.NOTEBOOKS_SPAWN)
    return notebooks.options(caller.username)


@router.post("/validate", summary="Check a spawn choice as the hub's pre-spawn hook would; returns the pod sizing")
def validate(body: ChoiceBody, caller: Caller, notebooks: Notebooks) -> nb.Spawn:
    caller.need_scope(Permission.NOTEBOOKS_SPAWN)
    choice = nb.Choice(image=body.image, size=body.size, cpu=body.cpu, memory_mib=body.memory_mib)
    return notebooks.validate(caller.username, choice)
