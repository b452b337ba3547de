"""What the notebook and workspace code needs to know about an account, and what it may do.

The decision code here depends on a small Protocol rather than on the database model, so it stays
pure and testable; ``enclave.accounts.Account`` satisfies it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from enclave.clock import or_now
from enclave.errors import PermissionDenied


class AccountLike(Protocol):
    """What this package reads of an account (``enclave.services.notebooks.AccountSnapshot`` provides it)."""

    @property
    def username(self) -> str: ...
    @property
    def uid(self) -> int: ...
    @property
    def gid(self) -> int: ...
    @property
    def kind(self) -> object: ...
    @property
    def status(self) -> object: ...
    @property
    def home_path(self) -> str: ...
    @property
    def workspace_path(self) -> str: ...
    @property
    def quota_gib(self) -> float: ...
    @property
    def allocation_expires(self) -> datetime | None: ...
    @property
    def permissions(self) -> frozenset[str]: ...


NOTEBOOKS_SPAWN = "notebooks.spawn"
"""The permission (enclave.access.permissions.Permission.NOTEBOOKS_SPAWN) a notebook needs."""


class Access(StrEnum):
    """How much of the platform an account may use right now (seed §4)."""

    FULL = "full"
    """Active: notebooks, batch, workspace read-write."""
    DATA_ONLY = "data-only"
    """Allocation expired: 'still able to access their data, but lose access to other services' —
    the workspace is read-only and no notebook may be spawned."""
    NONE = "none"
    """Departed: 'lose all access'."""


def allocation_expiry(account: AccountLike) -> datetime | None:
    """The account's allocation end (naive times are UTC, as the database stores them)."""
    value = account.allocation_expires
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


def access_of(account: AccountLike, now: datetime | None = None) -> Access:
    status = str(account.status)
    if status == "departed":
        return Access.NONE
    if status == "expired":
        return Access.DATA_ONLY
    expiry = allocation_expiry(account)
    if expiry is not None and expiry <= or_now(now):
        # The status column may lag behind the clock (the sweep that marks expiry runs periodically);
        # the allocation end date is the truth.
        return Access.DATA_ONLY
    return Access.FULL


def require_notebook_access(account: AccountLike, now: datetime | None = None) -> None:
    """Refuse a notebook to an account that may not run one, saying why and what to do."""
    access = access_of(account, now)
    if access is Access.NONE:
        raise PermissionDenied(
            f"account '{account.username}' has departed and has no access to notebooks",
            where=f"account {account.username}",
            fix="a sysadmin must create a new account if the person returns (seed §4)",
        )
    if access is Access.DATA_ONLY:
        raise PermissionDenied(
            f"the allocation of account '{account.username}' has expired: its data stay readable over WebDAV, "
            "but notebooks are not available",
            where=f"account {account.username}",
            fix="ask for the allocation to be renewed (seed §4)",
        )
    # A role without notebooks.spawn (security staff only, say) gets no notebook.
    if NOTEBOOKS_SPAWN not in account.permissions:
        raise PermissionDenied(
            f"account '{account.username}' holds no role that may spawn notebooks ({NOTEBOOKS_SPAWN})",
            where=f"account {account.username}",
            fix="ask a sysadmin to grant the developer or science-user role",
        )
