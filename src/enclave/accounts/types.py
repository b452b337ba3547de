"""The account concept's domain types: what other concepts and the front ends may import (the ORM tables in
``models`` stay behind the storage and service layers)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from enclave.domain.reach import ReachReport


class AccountKind(StrEnum):
    STAFF = "staff"
    """LSST development staff: development resources (lsst-dev) and the science platform (seed §4)."""
    SCIENCE = "science"
    """LSST science user: the science platform only."""


class AccountStatus(StrEnum):
    ACTIVE = "active"
    DEPARTED = "departed"
    """Staff who left (or an account replaced by a new one): no access at all; data kept."""
    EXPIRED = "expired"
    """Science allocation ended: read access to its own data only."""


class Person(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    email: str


class AccountView(BaseModel):
    """One account as the services return it: the journaled summary, the person, and what the account may do
    right now (roles and permissions are empty once it is no longer active)."""

    model_config = ConfigDict(frozen=True)

    username: str
    uid: int
    gid: int
    kind: AccountKind
    status: AccountStatus
    home: str
    workspace: str
    quota_gib: float
    allocation_id: str | None
    allocation_quota_gib: float | None
    allocation_expires: str | None
    namespaces: list[str]
    roles: list[str]
    permissions: list[str]
    person: Person
    other_accounts: list[str]
    note: str | None = None
    """Set when the request asked for a state that already held: what was found, nothing changed."""
    notice: str | None = None
    """Set when the change held but gives less than it usually does: a developer's membership of the notebook
    namespace while batch tokens are on binds view there, not edit (``access.render.cluster_role``); or, after
    onboard or demote, the account's home was not made (why, and the commands that make it)."""
    reach: ReachReport | None = None
    """After depart, expire or demote: what each running system (schedds, hub) did for the ended account."""


class TokenView(BaseModel):
    """A token as listed: never its secret."""

    model_config = ConfigDict(frozen=True)

    key: str
    scopes: list[str]
    issued_by: str
    on_behalf: bool = False
    """Issued by someone other than the holder (a sysadmin, for them), or with such a token: it is not the holder's
    own act, so it cannot satisfy a second approval."""
    delegated_by: str | None = None
    """Who issued it, or the first token of its chain, on the holder's behalf."""
    parent: str | None = None
    """The key of the token it was issued with: it expires no later and is revoked with it."""
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


class IssuedToken(BaseModel):
    model_config = ConfigDict(frozen=True)

    token: str = Field(description="The token itself: shown this once; only its hash is stored.")
    username: str
    scopes: list[str]
    expires_at: datetime


@dataclass(frozen=True)
class Caller:
    """Who presented a token, verified on this very request: the account's permissions narrowed to the
    token's scopes."""

    username: str
    scopes: frozenset[str]
    permissions: frozenset[str]
    delegated_by: str | None = None
    """Who issued the token, or the first token of its chain, when that was someone else (a token issued on the
    holder's behalf, or minted with one): such a token acts for the holder but is not the holder's own act, so it
    cannot satisfy a second approval."""
    key: str | None = None
    """The token's key (never its secret): the parent of any token issued with it."""
