"""Who may reach which data: an account reaches only its own home (and the workspace inside it).

Active accounts read and write; an expired science account keeps read access to its own data only
(seed §4); departed accounts reach nothing. A staff member turned science user gets a new account and
home, so nothing of the old home is reachable from the new account (seed §4).
"""

from __future__ import annotations

import posixpath

from sqlalchemy.orm import Session

from enclave.accounts.authorize import find_account
from enclave.accounts.models import Account
from enclave.accounts.types import AccountStatus
from enclave.errors import InputError, PermissionDenied, Problem


def normalise(path: str) -> str:
    if not path.startswith("/"):
        raise InputError([Problem("path", f"{path!r} is not absolute", "give a full path such as /jhome/USER")])
    if "\x00" in path:
        raise InputError([Problem("path", "contains a NUL byte")])
    return posixpath.normpath(path)


def _inside(path: str, root: str) -> bool:
    root = posixpath.normpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def can_read(account: Account, path: str) -> bool:
    if account.status not in (AccountStatus.ACTIVE, AccountStatus.EXPIRED):
        return False
    return _inside(normalise(path), account.home_path)


def can_write(account: Account, path: str) -> bool:
    return account.status == AccountStatus.ACTIVE and _inside(normalise(path), account.home_path)


def require_data(session: Session, username: str, path: str, *, write: bool = False) -> Account:
    """The account, if it may read (or write) ``path``; PermissionDenied otherwise."""
    account = find_account(session, username)
    allowed = can_write(account, path) if write else can_read(account, path)
    if not allowed:
        verb = "write" if write else "read"
        if account.status == AccountStatus.DEPARTED:
            why = "the account has departed and reaches no data"
        elif write and account.status == AccountStatus.EXPIRED:
            why = "its allocation expired: its own data is read-only"
        else:
            why = f"it reaches only its own home {account.home_path}"
        raise PermissionDenied(f"{username!r} may not {verb} {path}: {why}", where=path)
    return account
