"""Typed dependencies of the routes: the caller, verified from its token on every request, and the services the
factory builds. A route names what it needs (``accounts: Accounts``) and FastAPI provides it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from enclave.api.auth import Principal, api_principal, page_principal
from enclave.api.runner import BrokerRunner
from enclave.api.service import Service, get_service
from enclave.errors import Conflict
from enclave.services.accounts import AccountService
from enclave.services.images import ImageService
from enclave.services.journal import JournalService
from enclave.services.logs import LogService
from enclave.services.notebooks import NotebookService
from enclave.services.ops import SecurityService, UpgradeService
from enclave.services.schedule import ScheduleService
from enclave.services.tokens import TokenService
from enclave.services.twin import TwinRunService

ServiceDep = Annotated[Service, Depends(get_service)]
Caller = Annotated[Principal, Depends(api_principal)]
PageCaller = Annotated[Principal, Depends(page_principal)]


def _runner(service: ServiceDep) -> BrokerRunner:
    if service.runner is None:
        raise Conflict("this service runs without a backend, so there is nothing to plan or act on",
                       where="enclave serve", fix="start the service with the twin (default) or --live")
    return service.runner


Runner = Annotated[BrokerRunner, Depends(_runner)]


def _accounts(service: ServiceDep) -> AccountService:
    return service.factory.accounts


Accounts = Annotated[AccountService, Depends(_accounts)]

def _tokens(service: ServiceDep) -> TokenService:
    return service.factory.tokens


Tokens = Annotated[TokenService, Depends(_tokens)]

def _journal(service: ServiceDep) -> JournalService:
    return service.factory.journal


Journal = Annotated[JournalService, Depends(_journal)]

def _images(service: ServiceDep) -> ImageService:
    return service.factory.images


Images = Annotated[ImageService, Depends(_images)]

def _schedules(service: ServiceDep) -> ScheduleService:
    return service.factory.schedules


Schedules = Annotated[ScheduleService, Depends(_schedules)]

def _notebooks(service: ServiceDep) -> NotebookService:
    return service.factory.notebooks


Notebooks = Annotated[NotebookService, Depends(_notebooks)]

def _security(service: ServiceDep) -> SecurityService:
    return service.factory.security


Security = Annotated[SecurityService, Depends(_security)]

def _upgrades(service: ServiceDep) -> UpgradeService:
    return service.factory.upgrades


Upgrades = Annotated[UpgradeService, Depends(_upgrades)]

def _twin_runs(service: ServiceDep) -> TwinRunService:
    return service.factory.twin_runs


TwinRuns = Annotated[TwinRunService, Depends(_twin_runs)]


def _logs(service: ServiceDep) -> LogService:
    return service.factory.logs


Logs = Annotated[LogService, Depends(_logs)]
