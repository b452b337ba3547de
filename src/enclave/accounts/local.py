"""Local mode (docs/accounts.md, "Who is acting"): on the server host, the OS user who owns the database may act
without a token, but only as the accounts a sysadmin mapped it to. These rules decide the mapping and which account
a local command acts as; whether the OS user owns the database is decided by ``enclave.services.local``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from enclave.access.permissions import Permission
from enclave.accounts import storage
from enclave.accounts.authorize import find_account, require
from enclave.accounts.models import LocalIdentity
from enclave.accounts.types import AccountStatus
from enclave.clock import or_now
from enclave.errors import InputError, InvalidTransition, PermissionDenied, Problem
from enclave.journal import record

MAP_ACTION = "local.map"
UNMAP_ACTION = "local.unmap"
HOW_TO_MAP = ("a sysadmin maps it on the server host: `enclave local map {os_user} ACCOUNT --reason ...`; or act "
              "through the API with a token: `enclave login SERVER` and `--context NAME`")


def _os_user(os_user: str) -> str:
    if not os_user or len(os_user) > 64 or not os_user.isprintable() or os_user != os_user.strip():
        raise InputError([Problem("OS user", f"{os_user!r} is not an OS user name",
                                  "give the login name as `id -un` prints it")])
    return os_user


def mapped(session: Session, os_user: str) -> list[str]:
    """Usernames ``os_user`` is mapped to."""
    return [a.username for a in storage.local_accounts(session, os_user)]


def map_os_user(session: Session, actor: str, os_user: str, username: str, *, reason: str,
                now: datetime | None = None) -> bool:
    """Let ``os_user`` act as ``username`` in local mode (needs accounts.manage; journaled). False: it already
    could, nothing changed."""
    require(session, actor, Permission.ACCOUNTS_MANAGE)
    account = find_account(session, username)
    if account.status != AccountStatus.ACTIVE:
        raise InvalidTransition(f"account {username!r} is {account.status}; only an active account can be mapped",
                                where=f"account/{username}", fix="map an active account")
    if username in mapped(session, _os_user(os_user)):
        return False
    storage.add(session, LocalIdentity(os_user=os_user, account_id=account.id, mapped_by=actor,
                                       mapped_at=or_now(now)))
    record(session, actor=actor, action=MAP_ACTION, target=f"os-user/{os_user}", reason=reason,
           before=None, after={"os_user": os_user, "account": username}, at=now)
    return True


def unmap_os_user(session: Session, actor: str, os_user: str, username: str, *, reason: str) -> bool:
    """Withdraw a mapping (needs accounts.manage; journaled). False: there was none."""
    require(session, actor, Permission.ACCOUNTS_MANAGE)
    account = find_account(session, username)
    rows = [r for r in storage.local_identities(session, _os_user(os_user)) if r.account_id == account.id]
    if not rows:
        return False
    for row in rows:
        storage.delete(session, row)
    record(session, actor=actor, action=UNMAP_ACTION, target=f"os-user/{os_user}", reason=reason,
           before={"os_user": os_user, "account": username}, after=None)
    return True


def acting_account(session: Session, os_user: str, requested: str | None) -> str:
    """The account a local command acts as: ``requested`` if ``os_user`` is mapped to it, else the one account
    ``os_user`` is mapped to. Anything else is refused, naming how to map or how to use a context."""
    names = mapped(session, _os_user(os_user))
    if requested:
        if requested in names:
            return requested
        held = f"mapped to {', '.join(names)}" if names else "mapped to no account"
        raise PermissionDenied(f"OS user {os_user!r} may not act as {requested!r} in local mode ({held})",
                               where=f"--as {requested}", fix=HOW_TO_MAP.format(os_user=os_user))
    if len(names) == 1:
        return names[0]
    if not names:
        raise PermissionDenied(f"OS user {os_user!r} is mapped to no account, so it cannot act in local mode",
                               where="--as", fix=HOW_TO_MAP.format(os_user=os_user))
    raise InputError([Problem("--as", f"OS user {os_user!r} is mapped to {', '.join(names)}",
                              "name the account to act as with --as")])
