"""Tables of people, their accounts, role grants, namespace memberships and API tokens (ORM: only storage
modules and the lifecycle rules use them; other concepts use ``enclave.accounts.types``)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from enclave.accounts.types import AccountKind, AccountStatus
from enclave.db import Base, UTCDateTime


class Person(Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    accounts: Mapped[list[Account]] = relationship(back_populates="person", order_by="Account.id")
    roles: Mapped[list[RoleGrant]] = relationship(back_populates="person", order_by="RoleGrant.role",
                                                  cascade="all, delete-orphan")


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(sa.ForeignKey("people.id"), index=True)
    username: Mapped[str] = mapped_column(sa.String(32), unique=True)
    uid: Mapped[int] = mapped_column(sa.Integer, unique=True)
    gid: Mapped[int] = mapped_column(sa.Integer)
    kind: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    home_path: Mapped[str] = mapped_column(sa.String(255), unique=True)
    workspace_path: Mapped[str] = mapped_column(sa.String(255))
    quota_gib: Mapped[float] = mapped_column(sa.Float)
    allocation_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    allocation_quota_gib: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    allocation_expires: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    replaced_by: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id"), nullable=True)

    person: Mapped[Person] = relationship(back_populates="accounts")
    namespaces: Mapped[list[Membership]] = relationship(back_populates="account", order_by="Membership.namespace",
                                                        cascade="all, delete-orphan")

    @property
    def account_kind(self) -> AccountKind:
        return AccountKind(self.kind)

    @property
    def account_status(self) -> AccountStatus:
        return AccountStatus(self.status)

    @property
    def active(self) -> bool:
        return self.status == AccountStatus.ACTIVE

    def summary(self) -> dict[str, object]:
        """The journaled view of an account: what changed is visible in before/after."""
        return {
            "username": self.username, "uid": self.uid, "gid": self.gid, "kind": self.kind,
            "status": self.status, "home": self.home_path, "workspace": self.workspace_path,
            "quota_gib": self.quota_gib, "allocation_id": self.allocation_id,
            "allocation_quota_gib": self.allocation_quota_gib,
            "allocation_expires": self.allocation_expires.isoformat() if self.allocation_expires else None,
            "namespaces": [m.namespace for m in self.namespaces],
        }


class RoleGrant(Base):
    """A person holds an actor role (seed §2: one person may hold several)."""

    __tablename__ = "role_grants"
    __table_args__ = (sa.UniqueConstraint("person_id", "role", name="uq_role_grants_person_role"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(sa.ForeignKey("people.id"), index=True)
    role: Mapped[str] = mapped_column(sa.String(32))
    granted_by: Mapped[str] = mapped_column(sa.String(64))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())

    person: Mapped[Person] = relationship(back_populates="roles")


class Membership(Base):
    """An account belongs to an application namespace (seed §11): developers read its logs (AA2/AA3)."""

    __tablename__ = "namespace_members"
    __table_args__ = (sa.UniqueConstraint("account_id", "namespace", name="uq_namespace_members_account_ns"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"), index=True)
    namespace: Mapped[str] = mapped_column(sa.String(63))

    account: Mapped[Account] = relationship(back_populates="namespaces")


class Token(Base):
    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(sa.String(64))
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"), index=True)
    scopes: Mapped[str] = mapped_column(sa.Text)
    issued_by: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("tokens.id"), nullable=True, index=True)
    """The token the issuing request came with (None: issued without one, in local mode or by ``serve``)."""
    delegated_by: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    """Who issued this token, or the first token of its chain, on the holder's behalf (None: the holder's own)."""


class LocalIdentity(Base):
    """An OS user of the server host allowed to act, in local mode, as one account (docs/accounts.md)."""

    __tablename__ = "local_identities"
    __table_args__ = (sa.UniqueConstraint("os_user", "account_id", name="uq_local_identities_os_user_account"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    os_user: Mapped[str] = mapped_column(sa.String(64), index=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"), index=True)
    mapped_by: Mapped[str] = mapped_column(sa.String(64))
    mapped_at: Mapped[datetime] = mapped_column(UTCDateTime())

    account: Mapped[Account] = relationship()
