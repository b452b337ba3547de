"""Does an account hold a permission right now? The role table is ``enclave.access.permissions``; this
module applies it to accounts: only an active account acts with its person's roles."""

from __future__ import annotations

from sqlalchemy.orm import Session

from enclave.access.permissions import Permission, permissions_for, roles_granting
from enclave.access.render import Subject
from enclave.accounts import storage
from enclave.accounts.models import Account
from enclave.accounts.types import AccountStatus
from enclave.errors import NotFound, PermissionDenied
from enclave.spec.models import Role


def find_account(session: Session, username: str) -> Account:
    account = storage.account_by_username(session, username)
    if account is None:
        raise NotFound(f"no account named {username!r}", where="--as / username",
                       fix="check the spelling; `enclave accounts list` shows every account")
    return account


def account_roles(account: Account) -> frozenset[Role]:
    """The roles an account acts with: its person's roles while the account is active, none otherwise."""
    if account.status != AccountStatus.ACTIVE:
        return frozenset()
    return frozenset(Role(g.role) for g in account.person.roles)


def account_permissions(account: Account) -> frozenset[Permission]:
    return permissions_for(account_roles(account))


def permissions_of(session: Session, username: str) -> frozenset[Permission]:
    """Everything ``username`` may do right now (empty for departed or expired accounts)."""
    return account_permissions(find_account(session, username))


def require(session: Session, actor: str, permission: Permission) -> Account:
    """The acting account, if it is active and one of its roles grants ``permission``; else a clear refusal."""
    account = find_account(session, actor)
    needed = ", ".join(r.value for r in roles_granting(permission))
    if account.status != AccountStatus.ACTIVE:
        raise PermissionDenied(f"account {actor!r} is {account.status}, so it may not {permission.value}",
                               where=f"--as {actor}", fix="act as an active account")
    if permission not in account_permissions(account):
        held = ", ".join(sorted(r.value for r in account_roles(account))) or "no roles"
        raise PermissionDenied(f"{actor!r} ({held}) may not {permission.value}: that needs one of the roles "
                               f"{needed}", where=f"--as {actor}",
                               fix=f"act as someone holding {needed}, or ask a sysadmin to grant it")
    return account


def subject_of(account: Account) -> Subject:
    """The account as the access rules see it: kind, status, the roles it acts with, its namespaces."""
    return Subject(username=account.username, kind=account.kind, status=account.status, roles=account_roles(account),
                   namespaces=frozenset(m.namespace for m in account.namespaces))
