"""Every SQL statement about people, accounts, role grants, memberships and tokens.

The lifecycle rules (``lifecycle``), token rules (``tokens``) and authorization (``authorize``) decide; this
module only reads and writes rows, inside the caller's transaction (the service owns it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from enclave.access.render import Subject
from enclave.accounts.models import Account, LocalIdentity, Membership, Person, RoleGrant, Token
from enclave.accounts.types import AccountKind, AccountStatus
from enclave.spec.models import Role

CHUNK = 500
"""Rows per IN (…) list: SQLite limits the number of bound parameters of one statement."""


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(values), CHUNK):
        yield values[i:i + CHUNK]


def _with_person() -> Any:
    return selectinload(Account.person).selectinload(Person.roles)


# --- accounts -----------------------------------------------------------------------------------------------


def account_by_username(session: Session, username: str) -> Account | None:
    return session.execute(sa.select(Account).where(Account.username == username)
                           .options(_with_person())).scalar_one_or_none()


def account_by_id(session: Session, account_id: int) -> Account:
    return session.get_one(Account, account_id)


def list_accounts(session: Session, *, status: AccountStatus | None = None,
                  kind: AccountKind | None = None) -> list[Account]:
    stmt = sa.select(Account).options(_with_person(), selectinload(Account.namespaces)).order_by(Account.username)
    if status is not None:
        stmt = stmt.where(Account.status == status.value)
    if kind is not None:
        stmt = stmt.where(Account.kind == kind.value)
    return list(session.execute(stmt).scalars())


def count_accounts(session: Session, *, status: AccountStatus | None = None,
                   kind: AccountKind | None = None) -> int:
    """How many accounts (of ``status`` and ``kind``, when given): one COUNT, no rows loaded."""
    stmt = sa.select(sa.func.count()).select_from(Account)
    if status is not None:
        stmt = stmt.where(Account.status == status.value)
    if kind is not None:
        stmt = stmt.where(Account.kind == kind.value)
    return int(session.execute(stmt).scalar_one())


def username_taken(session: Session, username: str) -> bool:
    return session.execute(sa.select(Account.id).where(Account.username == username)).first() is not None


def uid_taken(session: Session, uid: int) -> bool:
    return session.execute(sa.select(Account.id).where(Account.uid == uid)).first() is not None


def highest_uid(session: Session) -> int | None:
    value = session.execute(sa.select(sa.func.max(Account.uid))).scalar()
    return int(value) if value is not None else None


def taken_usernames(session: Session, usernames: Sequence[str]) -> set[str]:
    taken: set[str] = set()
    for chunk in _chunks(usernames):
        taken |= set(session.execute(sa.select(Account.username).where(Account.username.in_(chunk))).scalars())
    return taken


def used_uids(session: Session, uids: Sequence[int]) -> set[int]:
    used: set[int] = set()
    for chunk in _chunks(uids):
        used |= set(session.execute(sa.select(Account.uid).where(Account.uid.in_(chunk))).scalars())
    return used


def active_sysadmin_ids(session: Session) -> set[int]:
    rows = session.execute(
        sa.select(Account.id).join(Person, Account.person_id == Person.id).join(RoleGrant)
        .where(Account.status == AccountStatus.ACTIVE.value, RoleGrant.role == Role.SYSADMIN.value))
    return {r[0] for r in rows}


def science_due(session: Session, when: datetime) -> list[str]:
    """Active science accounts whose allocation expiry is at or before ``when``, by username."""
    return list(session.execute(sa.select(Account.username).where(
        Account.status == AccountStatus.ACTIVE.value, Account.kind == AccountKind.SCIENCE.value,
        Account.allocation_expires.is_not(None), Account.allocation_expires <= when)
        .order_by(Account.username)).scalars())


def add(session: Session, row: Account | Person | Token | LocalIdentity) -> None:
    session.add(row)


# --- people -------------------------------------------------------------------------------------------------


def person_by_email(session: Session, email: str) -> Person | None:
    return session.execute(sa.select(Person).where(Person.email == email.lower())).scalar_one_or_none()


def people_by_email(session: Session, emails: Sequence[str]) -> dict[str, Person]:
    people: dict[str, Person] = {}
    for chunk in _chunks(emails):
        stmt = sa.select(Person).where(Person.email.in_(chunk)).options(selectinload(Person.accounts),
                                                                         selectinload(Person.roles))
        people.update({p.email: p for p in session.execute(stmt).scalars()})
    return people


# --- bulk onboarding: one INSERT per table, not one per object (a cohort of thousands) ----------------------


def insert_people(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert people; their ids by email."""
    if not rows:
        return {}
    inserted = session.execute(sa.insert(Person).returning(Person.id, Person.email, sort_by_parameter_order=True),
                               rows)
    return {email: pid for pid, email in inserted}


def insert_accounts(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    return list(session.execute(sa.insert(Account).returning(Account.id, sort_by_parameter_order=True),
                                rows).scalars())


def insert_grants_and_memberships(session: Session, grants: list[dict[str, Any]],
                                  members: list[dict[str, Any]]) -> None:
    if grants:
        session.execute(sa.insert(RoleGrant), grants)
    if members:
        session.execute(sa.insert(Membership), members)


def accounts_by_ids(session: Session, ids: Sequence[int]) -> list[Account]:
    """The accounts, fully loaded, in the order of ``ids``."""
    created: list[Account] = []
    for chunk in _chunks(ids):
        created += session.execute(
            sa.select(Account).where(Account.id.in_(chunk))
            .options(_with_person(), selectinload(Account.namespaces))
            .execution_options(populate_existing=True)).scalars()
    order = {account_id: i for i, account_id in enumerate(ids)}
    created.sort(key=lambda a: order[a.id])
    return created


# --- tokens -------------------------------------------------------------------------------------------------


def token_by_key(session: Session, key: str) -> Token | None:
    return session.execute(sa.select(Token).where(Token.key == key)).scalar_one_or_none()


def live_tokens(session: Session, account_id: int) -> list[Token]:
    return list(session.execute(sa.select(Token).where(Token.account_id == account_id,
                                                       Token.revoked_at.is_(None))).scalars())


def tokens_of(session: Session, account_id: int) -> list[Token]:
    return list(session.execute(sa.select(Token).where(Token.account_id == account_id)
                                .order_by(Token.id)).scalars())


def token_key(session: Session, token_id: int | None) -> str | None:
    """The key of the token with id ``token_id`` (None for None)."""
    if token_id is None:
        return None
    return session.execute(sa.select(Token.key).where(Token.id == token_id)).scalar_one_or_none()


def live_children(session: Session, parent_ids: list[int]) -> list[Token]:
    """Unrevoked tokens issued with any of ``parent_ids`` (one generation)."""
    if not parent_ids:
        return []
    return list(session.execute(sa.select(Token).where(Token.parent_id.in_(parent_ids), Token.revoked_at.is_(None))
                                .order_by(Token.id)).scalars())


# --- rendered access ----------------------------------------------------------------------------------------


def subjects(session: Session) -> list[Subject]:
    """One Subject per account for the access renderer, built with three flat queries (no per-account round
    trips)."""
    roles: dict[int, set[Role]] = {}
    for person_id, role in session.execute(sa.select(RoleGrant.person_id, RoleGrant.role)):
        roles.setdefault(person_id, set()).add(Role(role))
    members: dict[int, set[str]] = {}
    for account_id, namespace in session.execute(sa.select(Membership.account_id, Membership.namespace)):
        members.setdefault(account_id, set()).add(namespace)
    rows = session.execute(sa.select(Account.id, Account.person_id, Account.username, Account.kind,
                                     Account.status).order_by(Account.username))
    return [Subject(username=username, kind=kind, status=status,
                    roles=frozenset(roles.get(person_id, ())) if status == "active" else frozenset(),
                    namespaces=frozenset(members.get(account_id, ())))
            for account_id, person_id, username, kind, status in rows]



# --- local mode: OS users mapped to accounts ------------------------------------------------------------------


def local_accounts(session: Session, os_user: str) -> list[Account]:
    """The accounts ``os_user`` is mapped to, by username."""
    return list(session.execute(sa.select(Account).join(LocalIdentity, LocalIdentity.account_id == Account.id)
                                .where(LocalIdentity.os_user == os_user).order_by(Account.username)).scalars())


def any_local_identity(session: Session) -> bool:
    """Whether any OS user is mapped to any account (none: a database from before local mode)."""
    return session.execute(sa.select(LocalIdentity.id).limit(1)).first() is not None


def local_identities(session: Session, os_user: str) -> list[LocalIdentity]:
    return list(session.execute(sa.select(LocalIdentity).where(LocalIdentity.os_user == os_user)).scalars())


def delete(session: Session, row: LocalIdentity) -> None:
    session.delete(row)
