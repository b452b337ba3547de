"""Accounts, roles and lifecycle transitions (seed §4).

Every route is one call of ``enclave.services.accounts.AccountService`` — the same call the CLI makes — with the
caller as actor: the role check and the journal entry happen there, in one transaction. A token's scopes can only
narrow what its account may do.
"""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import Field

from enclave.access.permissions import Permission
from enclave.accounts.lifecycle import Allocation, roles_granted
from enclave.accounts.types import AccountKind, AccountStatus, AccountView
from enclave.api.deps import Accounts, Caller
from enclave.api.routes.bodies import AllocationBody, Body, Reason, Short, Username, Why
from enclave.domain.reach import ReachReport
from enclave.spec.models import MAX_GIB, Role

router = APIRouter(prefix="/accounts", tags=["accounts"])


def _allocation(body: AllocationBody | None) -> Allocation | None:
    if body is None:
        return None
    return Allocation(proposal_id=body.proposal_id, quota_gib=body.quota_gib, expires=body.expires)


class Onboard(Body):
    username: Username
    name: Short
    email: Short
    kind: AccountKind
    reason: Reason
    roles: list[Role] | None = Field(default=None, max_length=len(Role))
    allocation: AllocationBody | None = None
    namespaces: list[Short] = Field(default_factory=list, max_length=64)
    uid: int | None = Field(default=None, ge=0, le=2**31 - 1, description="A fixed uid (default: the next free).")


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
    quota_gib: float = Field(gt=0, le=MAX_GIB, allow_inf_nan=False)
    reason: Reason
    proposal_id: Short | None = None


class QuotaCorrection(Body):
    quota_gib: float = Field(gt=0, le=MAX_GIB, allow_inf_nan=False)
    reason: Reason


class RoleChange(Body):
    role: Role
    reason: Reason


class NamespaceChange(Body):
    namespace: Short
    reason: Reason


@router.get("", summary="Every account (needs accounts.manage)")
def list_all(caller: Caller, accounts: Accounts, status: AccountStatus | None = None,
             kind: AccountKind | None = None) -> list[AccountView]:
    caller.need_scope(Permission.ACCOUNTS_MANAGE)
    return accounts.list_accounts(caller.username, status=status, kind=kind)


@router.post("", status_code=201, summary="Onboard a staff member or a science user")
def onboard(body: Onboard, caller: Caller, accounts: Accounts) -> AccountView:
    caller.need_scope(Permission.ACCOUNTS_MANAGE)
    if roles_granted(body.kind, body.roles):  # roles beyond the kind's default are a grant
        caller.need_scope(Permission.ROLES_GRANT)
    return accounts.onboard(caller.username, body.username, name=body.name, email=str(body.email), kind=body.kind,
                            reason=body.reason, roles=body.roles, allocation=_allocation(body.allocation),
                            namespaces=body.namespaces, uid=body.uid)


@router.get("/{username}", summary="One account (your own, or any with accounts.manage or roles.grant)")
def show(username: Username, caller: Caller, accounts: Accounts) -> AccountView:
    if username != caller.username:
        caller.need_scope(Permission.ACCOUNTS_MANAGE, Permission.ROLES_GRANT)
    return accounts.show(caller.username, username)


@router.post("/{username}/depart", summary="Staff departs: every access revoked at once, data kept")
def depart(username: Username, body: Why, caller: Caller, accounts: Accounts) -> AccountView:
    caller.need_scope(Permission.ACCOUNTS_MANAGE)
    return accounts.depart(caller.username, username, reason=body.reason)


@router.post("/{username}/expire", summary="Science allocation expires: read access to own data only")
def expire(username: Username, body: Why, caller: Caller, accounts: Accounts) -> AccountView:
    caller.need_scope(Permission.ACCOUNTS_MANAGE)
    return accounts.expire(caller.username, username, reason=body.reason)


@router.post("/{username}/reach", summary="Carry a departure, demotion or expiry to the running systems again")
def reach(username: Username, body: Why, caller: Caller, accounts: Accounts) -> ReachReport:
    caller.need_scope(Permission.ACCOUNTS_MANAGE)
    return accounts.reach(caller.username, username, reason=body.reason)


@router.post("/{username}/renew", summary="An expired science account gets a new allocation")
def renew(username: Username, body: Renew, caller: Caller, accounts: Accounts) -> AccountView:
    caller.need_scope(Permission.ACCOUNTS_MANAGE)
    allocation = _allocation(body.allocation)
    assert allocation is not None
    return accounts.renew(caller.username, username, allocation, reason=body.reason)


@router.post("/{username}/promote", summary="Science user becomes staff: same account, data kept")
def promote(username: Username, body: Promote, caller: Caller, accounts: Accounts) -> AccountView:
    caller.need_scope(Permission.ACCOUNTS_MANAGE)
    if roles_granted(AccountKind.STAFF, body.roles):  # roles beyond a staff account's default are a grant
        caller.need_scope(Permission.ROLES_GRANT)
    return accounts.promote(caller.username, username, reason=body.reason, roles=body.roles)


@router.post("/{username}/demote", status_code=201,
             summary="Staff becomes a science user: a NEW account; the old one is deactivated")
def demote(username: Username, body: Demote, caller: Caller, accounts: Accounts) -> AccountView:
    caller.need_scope(Permission.ACCOUNTS_MANAGE)
    return accounts.demote(caller.username, username, new_username=body.new_username, reason=body.reason,
                           allocation=_allocation(body.allocation))


@router.post("/{username}/quota", summary="A larger allocation raises the storage quota")
def grow_quota(username: Username, body: Quota, caller: Caller, accounts: Accounts) -> AccountView:
    caller.need_scope(Permission.ACCOUNTS_MANAGE)
    return accounts.grow_quota(caller.username, username, body.quota_gib, reason=body.reason,
                               proposal_id=body.proposal_id)


@router.put("/{username}/quota", summary="Correct the storage quota to any valid size, lower included")
def correct_quota(username: Username, body: QuotaCorrection, caller: Caller, accounts: Accounts) -> AccountView:
    caller.need_scope(Permission.ACCOUNTS_MANAGE)
    return accounts.correct_quota(caller.username, username, body.quota_gib, reason=body.reason)


@router.post("/{username}/roles", summary="Grant an actor role to the account's person")
def grant_role(username: Username, body: RoleChange, caller: Caller, accounts: Accounts) -> AccountView:
    caller.need_scope(Permission.ROLES_GRANT)
    return accounts.grant_role(caller.username, username, body.role, reason=body.reason)


@router.delete("/{username}/roles/{role}", summary="Revoke an actor role")
def revoke_role(username: Username, role: Role, caller: Caller, accounts: Accounts,
                reason: Reason = Query(...)) -> AccountView:  # noqa: B008
    caller.need_scope(Permission.ROLES_GRANT)
    return accounts.revoke_role(caller.username, username, role, reason=reason)


@router.post("/{username}/namespaces", summary="Add the account to an application namespace (seed §11)")
def join_namespace(username: Username, body: NamespaceChange, caller: Caller, accounts: Accounts) -> AccountView:
    caller.need_scope(Permission.ACCOUNTS_MANAGE)
    return accounts.join_namespace(caller.username, username, body.namespace, reason=body.reason)


@router.delete("/{username}/namespaces/{namespace}", summary="Remove the account from a namespace")
def leave_namespace(username: Username, namespace: Short, caller: Caller, accounts: Accounts,
                    reason: Reason = Query(...)) -> AccountView:  # noqa: B008
    caller.need_scope(Permission.ACCOUNTS_MANAGE)
    return accounts.leave_namespace(caller.username, username, namespace, reason=reason)
