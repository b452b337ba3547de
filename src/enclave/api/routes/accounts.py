"""Accounts, roles and lifecycle transitions (seed §4).

Every write calls the same ``enclave.accounts.service`` function as the CLI, with the caller as actor: the
role check and the journal entry happen there, in the request's single transaction.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field
from sqlalchemy.orm import Session

from enclave.access.permissions import Permission, account_roles, require
from enclave.accounts import service as accounts
from enclave.accounts.models import Account, AccountKind, AccountStatus
from enclave.api.auth import Principal, api_principal
from enclave.api.routes.bodies import AllocationBody, Body, Reason, Short, Username, Why
from enclave.api.service import Service, get_service
from enclave.spec.models import Role

router = APIRouter(prefix="/accounts", tags=["accounts"])


def view(account: Account) -> dict[str, Any]:
    return {**account.summary(), "roles": sorted(r.value for r in account_roles(account)),
            "person": {"name": account.person.name, "email": account.person.email}}


def _allocation(body: AllocationBody | None) -> accounts.Allocation | None:
    if body is None:
        return None
    return accounts.Allocation(proposal_id=body.proposal_id, quota_gib=body.quota_gib, expires=body.expires)


def _read_other(session: Session, principal: Principal, username: str) -> None:
    # Reading your own account needs nothing; reading someone else's is an account manager's business.
    if username != principal.username:
        principal.need_scope(Permission.ACCOUNTS_MANAGE)
        require(session, principal.username, Permission.ACCOUNTS_MANAGE)


class Onboard(Body):
    username: Username
    name: Short
    email: Short
    kind: AccountKind
    reason: Reason
    roles: list[Role] | None = Field(default=None, max_length=len(Role))
    allocation: AllocationBody | None = None
    namespaces: list[Short] = Field(default_factory=list, max_length=64)


class Demote(Body):
    new_username: Username
    reason: Reason
    allocation: AllocationBody | None = None


class Renew(Body):
    allocation: AllocationBody
    reason: Reason


class Promote(Body):
    reason: Reason
    roles: list[Role] | None = Field(default=None, max_length=len(Role))


class Quota(Body):
    quota_gib: float = Field(gt=0, le=1e9)
    reason: Reason
    proposal_id: Short | None = None


class RoleChange(Body):
    role: Role
    reason: Reason


class NamespaceChange(Body):
    namespace: Short
    reason: Reason


@router.get("", summary="Every account (needs accounts.manage)")
def list_all(status: AccountStatus | None = None, kind: AccountKind | None = None,
             principal: Principal = Depends(api_principal),  # noqa: B008
             service: Service = Depends(get_service)) -> list[dict[str, Any]]:  # noqa: B008
    principal.need_scope(Permission.ACCOUNTS_MANAGE)
    with service.db.session() as session:
        require(session, principal.username, Permission.ACCOUNTS_MANAGE)
        return [view(a) for a in accounts.list_accounts(session, status=status, kind=kind)]


@router.post("", status_code=201, summary="Onboard a staff member or a science user")
def onboard(body: Onboard, principal: Principal = Depends(api_principal),  # noqa: B008
            service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    principal.need_scope(Permission.ACCOUNTS_MANAGE)
    with service.db.session() as session:
        account = accounts.onboard(session, principal.username, service.spec, body.username, name=body.name,
                                   email=str(body.email), kind=body.kind, reason=body.reason, roles=body.roles,
                                   allocation=_allocation(body.allocation), namespaces=body.namespaces)
        return view(account)


@router.get("/{username}", summary="One account (your own, or any with accounts.manage)")
def show(username: Username, principal: Principal = Depends(api_principal),  # noqa: B008
         service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    with service.db.session() as session:
        _read_other(session, principal, username)
        return view(accounts.get(session, username))


def _write(permission: Permission, principal: Principal, service: Service, change: Any) -> dict[str, Any]:
    principal.need_scope(permission)
    with service.db.session() as session:
        return view(change(session))


@router.post("/{username}/depart", summary="Staff departs: every access revoked at once, data kept")
def depart(username: Username, body: Why, principal: Principal = Depends(api_principal),  # noqa: B008
           service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    return _write(Permission.ACCOUNTS_MANAGE, principal, service,
                  lambda s: accounts.depart(s, principal.username, username, reason=body.reason))


@router.post("/{username}/expire", summary="Science allocation expires: read access to own data only")
def expire(username: Username, body: Why, principal: Principal = Depends(api_principal),  # noqa: B008
           service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    return _write(Permission.ACCOUNTS_MANAGE, principal, service,
                  lambda s: accounts.expire(s, principal.username, username, reason=body.reason))


@router.post("/{username}/renew", summary="An expired science account gets a new allocation")
def renew(username: Username, body: Renew, principal: Principal = Depends(api_principal),  # noqa: B008
          service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    allocation = _allocation(body.allocation)
    assert allocation is not None
    return _write(Permission.ACCOUNTS_MANAGE, principal, service,
                  lambda s: accounts.renew(s, principal.username, username, allocation, reason=body.reason,
                                           spec=service.spec))


@router.post("/{username}/promote", summary="Science user becomes staff: same account, data kept")
def promote(username: Username, body: Promote, principal: Principal = Depends(api_principal),  # noqa: B008
            service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    return _write(Permission.ACCOUNTS_MANAGE, principal, service,
                  lambda s: accounts.promote(s, principal.username, username, reason=body.reason, roles=body.roles))


@router.post("/{username}/demote", status_code=201,
             summary="Staff becomes a science user: a NEW account; the old one is deactivated")
def demote(username: Username, body: Demote, principal: Principal = Depends(api_principal),  # noqa: B008
           service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    return _write(Permission.ACCOUNTS_MANAGE, principal, service,
                  lambda s: accounts.demote(s, principal.username, service.spec, username,
                                            new_username=body.new_username, reason=body.reason,
                                            allocation=_allocation(body.allocation)))


@router.post("/{username}/quota", summary="A larger allocation raises the storage quota")
def grow_quota(username: Username, body: Quota, principal: Principal = Depends(api_principal),  # noqa: B008
               service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    return _write(Permission.ACCOUNTS_MANAGE, principal, service,
                  lambda s: accounts.grow_quota(s, principal.username, username, body.quota_gib, reason=body.reason,
                                                proposal_id=body.proposal_id))


@router.post("/{username}/roles", summary="Grant an actor role to the account's person")
def grant_role(username: Username, body: RoleChange, principal: Principal = Depends(api_principal),  # noqa: B008
               service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    return _write(Permission.ROLES_GRANT, principal, service,
                  lambda s: accounts.grant_role(s, principal.username, username, body.role, reason=body.reason))


@router.delete("/{username}/roles/{role}", summary="Revoke an actor role")
def revoke_role(username: Username, role: Role, reason: Reason = Query(...),  # noqa: B008
                principal: Principal = Depends(api_principal),  # noqa: B008
                service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    return _write(Permission.ROLES_GRANT, principal, service,
                  lambda s: accounts.revoke_role(s, principal.username, username, role, reason=reason))


@router.post("/{username}/namespaces", summary="Add the account to an application namespace (seed §11)")
def join_namespace(username: Username, body: NamespaceChange,
                   principal: Principal = Depends(api_principal),  # noqa: B008
                   service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    return _write(Permission.ACCOUNTS_MANAGE, principal, service,
                  lambda s: accounts.join_namespace(s, principal.username, service.spec, username, body.namespace,
                                                    reason=body.reason))


@router.delete("/{username}/namespaces/{namespace}", summary="Remove the account from a namespace")
def leave_namespace(username: Username, namespace: Short, reason: Reason = Query(...),  # noqa: B008
                    principal: Principal = Depends(api_principal),  # noqa: B008
                    service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    return _write(Permission.ACCOUNTS_MANAGE, principal, service,
                  lambda s: accounts.leave_namespace(s, principal.username, username, namespace, reason=reason))
