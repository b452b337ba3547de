"""Account lifecycle rules (seed §4). Each function is one change: role-checked, then journaled in the
caller's transaction, so the change and its journal entry commit together or not at all.

Every check runs before anything is modified, so a refused call changes nothing even if the caller
commits the session afterwards.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from enclave.access.permissions import STAFF_ROLES, Permission
from enclave.access.render import app_namespaces
from enclave.accounts import storage, tokens
from enclave.accounts.authorize import find_account, require
from enclave.accounts.models import Account, Membership, Person, RoleGrant
from enclave.accounts.types import AccountKind, AccountStatus
from enclave.clock import or_now
from enclave.errors import Conflict, InputError, InvalidTransition, NotFound, PermissionDenied, Problem
from enclave.journal import Change, record, record_many
from enclave.journal import lock as journal_lock
from enclave.spec.models import MAX_GIB, EnclaveSpec, Role

UID_BASE = 10_000
"""First uid handed out; each account's primary group is its own (gid = uid), so no group bit ever
exposes one account's files to another — the property a staff → science move relies on."""
UID_MIN, UID_MAX = 1000, 2**31 - 2
"""The uids (and gids) the rules accept: a given one must lie in this range, and the next one handed out is never
past UID_MAX (2147483646; the uid columns are signed 32-bit integers): past it, onboarding says so (a Conflict
naming the fix) instead of storing a uid the rules refuse, or failing in the database."""

# Whole strings (``fullmatch``): with ``match``, "$" also matched before a final newline, and "zed\n" was stored,
# out of reach by its visible name and never reusable (review, stop 48).
USERNAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
BOOTSTRAP_ACTOR = "bootstrap"


def _max_length(attribute: Any) -> int:
    """The length of the string column behind a model attribute: the one copy of each limit is the model's."""
    kind = attribute.expression.type
    assert isinstance(kind, sa.String) and kind.length is not None, attribute
    return int(kind.length)


NAME_MAX = _max_length(Person.name)
EMAIL_MAX = _max_length(Person.email)
PROPOSAL_MAX = _max_length(Account.allocation_id)


def _too_long(label: str, value: str, limit: int, fix: str, *, what: str = "") -> list[Problem]:
    """A value longer than its column: PostgreSQL refused it with a raw DataError, SQLite stored it whole."""
    if len(value) > limit:
        return [Problem(label, f"{what + ' ' if what else ''}is {len(value)} characters long; at most {limit} fit",
                        fix)]
    return []


P = ParamSpec("P")
R = TypeVar("R")


def _exclusive(session: Session) -> None:
    """Take the journal's head lock before reading what a rule checks (the account's state, one active account per
    person, the last sysadmin, the quota): on PostgreSQL (READ COMMITTED) two transitions could otherwise both pass
    the check and both commit, e.g. a renewed science account and a new staff account of the same person, the
    science one then acting with the person's staff roles (review, stop 48), or a role granted to a staff account
    a concurrent demote had just ended. SQLite's BEGIN IMMEDIATE serializes them already."""
    journal_lock(session)


def serialized(rule: Callable[Concatenate[Session, P], R]) -> Callable[Concatenate[Session, P], R]:
    """A transition that takes the journal's head lock (``_exclusive``) before anything else — before the actor's
    permission and every check it reads — so its checks see every transition committed before it and none can
    commit between its checks and its writes. Every transition of this module is one."""

    @functools.wraps(rule)
    def locked(session: Session, /, *args: P.args, **kwargs: P.kwargs) -> R:
        _exclusive(session)
        return rule(session, *args, **kwargs)

    return locked


def quota_problems(quota_gib: float, where: str) -> list[Problem]:
    """A storage quota is a finite, positive number of GiB no larger than the spec's largest quantity
    (spec.models.MAX_GIB, about a petabyte): an infinite or absurd quota could never be lowered again by
    grow-quota and broke WebDAV's accounting."""
    if not math.isfinite(quota_gib) or not 0 < quota_gib <= MAX_GIB:
        return [Problem(where, f"{quota_gib:g} GiB is not a quota", f"give a number of GiB in (0, {MAX_GIB}]")]
    return []


@dataclass(frozen=True)
class Allocation:
    """A science allocation (an approved proposal): larger allocations raise the storage quota (§6.2)."""

    proposal_id: str
    quota_gib: float | None = None
    expires: datetime | None = None

    def problems(self, now: datetime) -> list[Problem]:
        out = []
        if not self.proposal_id.strip():
            out.append(Problem("allocation", "proposal id is empty", "give the proposal id, e.g. --proposal P-123"))
        out += _too_long("allocation", self.proposal_id, PROPOSAL_MAX, "give the proposal id as it was approved",
                         what="proposal id")
        if self.quota_gib is not None:
            out += quota_problems(self.quota_gib, "allocation quota")
        if self.expires is not None:
            if self.expires.tzinfo is None:
                out.append(Problem("allocation expiry", "has no time zone", "give a UTC date, e.g. 2027-01-31"))
            elif self.expires <= now:
                out.append(Problem("allocation expiry", f"{self.expires.date()} is not in the future",
                                   "give an expiry date after today"))
        return out


def _reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise InputError([Problem("reason", "is empty", "every change is documented (seed §8): pass --reason")])
    return reason.strip()


def _target(username: str) -> str:
    return f"account/{username}"


def _state(account: Account) -> dict[str, object]:
    state = account.summary()
    state["roles"] = sorted(g.role for g in account.person.roles) if account.active else []
    return state


def get(session: Session, username: str) -> Account:
    """The account named ``username`` (NotFound otherwise). Reading needs no role."""
    return find_account(session, username)


def visible(session: Session, actor: str, username: str) -> Account:
    """``username``'s account if ``actor`` may see it: their own (while active or expired), or anyone's
    with accounts.manage or roles.grant."""
    if actor == username:
        account = find_account(session, actor)
        if account.status == AccountStatus.DEPARTED:
            raise PermissionDenied(f"account {actor!r} has departed", where=f"--as {actor}")
        return account
    try:
        require(session, actor, Permission.ACCOUNTS_MANAGE)
    except PermissionDenied:
        require(session, actor, Permission.ROLES_GRANT)
    return find_account(session, username)


def list_accounts(session: Session, *, status: AccountStatus | None = None,
                  kind: AccountKind | None = None) -> list[Account]:
    return storage.list_accounts(session, status=status, kind=kind)


def active_account(person: Person) -> Account | None:
    return next((a for a in person.accounts if a.status == AccountStatus.ACTIVE), None)


def _one_active_per_person(account: Account, doing: str) -> None:
    """Refuse a transition that would leave ``account``'s person with a second active account.

    Roles belong to the person (seed §2), so a second active account would act with every role the person
    holds — a renewed science account with the staff roles of its twin — and a two-person rule that compared
    usernames could be met by one person alone. Run before anything is modified."""
    other = next((a for a in account.person.accounts
                  if a.id != account.id and a.status == AccountStatus.ACTIVE), None)
    if other is not None:
        raise Conflict(f"{account.person.email} already has the active account {other.username!r}; {doing} "
                       f"{account.username!r} would give one person two active accounts",
                       where=_target(account.username),
                       fix=f"work on {other.username!r} instead, or end it first (depart or expire)")


def _username_form(username: str) -> list[Problem]:
    if USERNAME.fullmatch(username):
        return []
    return [Problem("username", f"{username!r} is not a valid username",
                    "use 1–32 lower-case letters, digits, '-' or '_', starting with a letter")]


def _check_username(session: Session, username: str) -> list[Problem]:
    if problems := _username_form(username):
        return problems
    if storage.username_taken(session, username):
        return [Problem("username", f"{username!r} is taken (usernames are never reused)",
                        "choose another username")]
    return []


def _check_roles(kind: AccountKind, roles: Iterable[Role]) -> list[Problem]:
    staff_only = sorted(r.value for r in roles if r in STAFF_ROLES)
    if kind == AccountKind.SCIENCE and staff_only:
        return [Problem("roles", f"{', '.join(staff_only)} may be held by staff only (seed §2)",
                        "promote the account to staff first")]
    return []


def _uids_exhausted(after: int) -> Conflict:
    return Conflict(f"no uid is left after {after}: uids handed out never exceed {UID_MAX}", where="uid",
                    fix=f"give a free uid in {UID_MIN} … {UID_MAX} explicitly (--uid)")


def _next_uid(session: Session) -> int:
    """The next uid to hand out: one past the highest in use, from UID_BASE. It takes no lock of its own: every
    transition that calls it (onboard, onboard_many, bootstrap, demote) is ``@serialized``, so the caller already
    holds the journal's head lock in this transaction (SQLite: BEGIN IMMEDIATE) and no concurrent transaction can
    hand out the same uid between this read and the caller's commit."""
    highest = storage.highest_uid(session)
    uid = max(UID_BASE, (highest or 0) + 1)
    if uid > UID_MAX:
        raise _uids_exhausted(uid - 1)
    return uid


def _home(spec: EnclaveSpec, username: str) -> tuple[str, str]:
    home = f"{spec.storage.home_root.rstrip('/')}/{username}"
    return home, f"{home}/{spec.storage.workspace_subdir.strip('/')}"


def _quota(spec: EnclaveSpec, allocation: Allocation | None) -> float:
    base = spec.storage.home_quota_gib
    return max(base, allocation.quota_gib) if allocation and allocation.quota_gib else base


def _check_namespaces(spec: EnclaveSpec, namespaces: Iterable[str]) -> list[Problem]:
    known = set(app_namespaces(spec))
    bad = sorted(set(namespaces) - known)
    if bad:
        return [Problem("namespace", f"{', '.join(bad)} is not an application namespace of the spec",
                        f"use one of {', '.join(sorted(known))}")]
    return []


def _grant(person: Person, roles: Iterable[Role], by: str, when: datetime) -> list[str]:
    held = {g.role for g in person.roles}
    added = []
    for role in sorted(set(roles)):
        if role.value not in held:
            person.roles.append(RoleGrant(role=role.value, granted_by=by, granted_at=when))
            added.append(role.value)
    return added


def _create(session: Session, spec: EnclaveSpec, person: Person, *, username: str, kind: AccountKind,
            allocation: Allocation | None, uid: int, gid: int | None, when: datetime) -> Account:
    home, workspace = _home(spec, username)
    account = Account(
        person=person, username=username, uid=uid, gid=gid if gid is not None else uid, kind=kind.value,
        status=AccountStatus.ACTIVE.value, home_path=home, workspace_path=workspace,
        quota_gib=_quota(spec, allocation), allocation_id=allocation.proposal_id if allocation else None,
        allocation_quota_gib=allocation.quota_gib if allocation else None,
        allocation_expires=allocation.expires if allocation else None, created_at=when,
    )
    storage.add(session, account)
    return account


UNCHANGED = "enclave.unchanged"
"""Where a transition asked for a state that already holds leaves its message, in the session's info."""


def unchanged(session: Session, account: Account, message: str) -> Account:
    """Asking for a state that already holds is a no-op: nothing written, nothing journaled, and a message that
    says so (never an error to retry)."""
    session.info[UNCHANGED] = f"{message}: nothing to change"
    return account


def _default_roles(kind: AccountKind) -> list[Role]:
    return [Role.DEVELOPER] if kind == AccountKind.STAFF else [Role.SCIENCE_USER]


def roles_granted(kind: AccountKind, roles: Iterable[Role] | None) -> list[Role]:
    """The roles of ``roles`` an account of ``kind`` does not get by default. Giving them at onboard or promote is
    a grant like ``grant_role``'s: it needs roles.grant — the permission, and over the API the token's scope — and
    is journaled as ``roles.grant`` (docs/api.md, "No scope escalation"; audit of identity and trust, finding 3:
    an accounts.manage token made an account sysadmin through ``POST /accounts/{u}/promote``)."""
    return sorted(set(map(Role, roles or ())) - set(_default_roles(kind)))


def _require_grant(session: Session, actor: str, kind: AccountKind, roles: Iterable[Role] | None) -> None:
    if roles_granted(kind, roles):
        require(session, actor, Permission.ROLES_GRANT)


def _grant_entries(actor: str, account: Account, roles: Iterable[Role] | None, why: str,
                   when: datetime | None) -> list[Change]:
    """The ``roles.grant`` entry for the roles beyond the default an onboard or promote gave (none: no entry)."""
    granted = {r.value for r in roles_granted(account.account_kind, roles)}
    if not granted:
        return []
    held = sorted(g.role for g in account.person.roles)
    return [Change(actor, "roles.grant", _target(account.username), why,
                   {"roles": [r for r in held if r not in granted]}, {"roles": held}, when)]


@serialized
def onboard(session: Session, actor: str, spec: EnclaveSpec, username: str, *, name: str, email: str,
            kind: AccountKind, reason: str, roles: Iterable[Role] | None = None,
            allocation: Allocation | None = None, namespaces: Iterable[str] = (), uid: int | None = None,
            gid: int | None = None, now: datetime | None = None) -> Account:
    """Add a staff member (development resources + platform) or a science user (platform only)."""
    why = _reason(reason)
    require(session, actor, Permission.ACCOUNTS_MANAGE)
    _require_grant(session, actor, AccountKind(kind), roles)
    account = _onboard(session, actor, spec, username, name=name, email=email, kind=kind, reason=why,
                       roles=roles, allocation=allocation, namespaces=namespaces, uid=uid, gid=gid, now=now,
                       action="accounts.onboard")
    record_many(session, _grant_entries(actor, account, roles, why, now))
    return account


@dataclass(frozen=True)
class NewAccount:
    """One account to onboard (see ``onboard_many``)."""

    username: str
    name: str
    email: str
    kind: AccountKind
    roles: tuple[Role, ...] | None = None
    allocation: Allocation | None = None
    namespaces: tuple[str, ...] = ()
    uid: int | None = None
    gid: int | None = None


def _static_problems(spec: EnclaveSpec, new: NewAccount, when: datetime) -> list[Problem]:
    """Everything about a new account that can be checked without the database."""
    problems = _username_form(new.username)
    if not new.name.strip():
        problems.append(Problem("name", "is empty", "give the person's full name (--name)"))
    problems += _too_long("name", new.name.strip(), NAME_MAX, "shorten the name (--name)")
    if not EMAIL.fullmatch(new.email):
        problems.append(Problem("email", f"{new.email!r} is not an email address", "give --email user@example.org"))
    problems += _too_long("email", new.email.lower(), EMAIL_MAX, "give a shorter email address (--email)")
    kind = AccountKind(new.kind)
    problems += _check_roles(kind, _roles(new))
    problems += _check_namespaces(spec, new.namespaces)
    if new.namespaces and kind == AccountKind.SCIENCE:
        problems.append(Problem("namespace", "science users reach the platform through JupyterLab, not through "
                                "namespaces (seed §4)", "drop --namespace, or onboard a staff account"))
    if new.allocation is not None:
        problems += new.allocation.problems(when)
    if kind == AccountKind.STAFF and new.allocation is not None:
        problems.append(Problem("allocation", "staff accounts carry no science allocation",
                                "drop the allocation, or onboard a science account"))
    for label, value in (("uid", new.uid), ("gid", new.gid)):
        if value is not None and not UID_MIN <= value <= UID_MAX:
            problems.append(Problem(label, f"{value} is out of range", f"use {UID_MIN} … {UID_MAX} or leave it out"))
    return problems


def _roles(new: NewAccount) -> list[Role]:
    return list(new.roles) if new.roles is not None else _default_roles(AccountKind(new.kind))


def _build(session: Session, spec: EnclaveSpec, person: Person, new: NewAccount, uid: int, actor: str,
           when: datetime) -> Account:
    # No autoflush while the graph is half built: reading person.roles must not flush a pending account.
    with session.no_autoflush:
        account = _create(session, spec, person, username=new.username, kind=AccountKind(new.kind),
                          allocation=new.allocation, uid=uid, gid=new.gid, when=when)
        # Assigning the collection (even empty) marks it loaded, so journaling it later needs no query.
        account.namespaces = [Membership(namespace=ns) for ns in dict.fromkeys(new.namespaces)]
        _grant(person, _roles(new), actor, when)
    return account


def _onboard(session: Session, actor: str, spec: EnclaveSpec, username: str, *, name: str, email: str,
             kind: AccountKind, reason: str, roles: Iterable[Role] | None, allocation: Allocation | None,
             namespaces: Iterable[str], uid: int | None, gid: int | None, now: datetime | None,
             action: str) -> Account:
    when = or_now(now)
    new = NewAccount(username=username, name=name, email=email, kind=AccountKind(kind),
                     roles=tuple(roles) if roles is not None else None, allocation=allocation,
                     namespaces=tuple(dict.fromkeys(namespaces)), uid=uid, gid=gid)
    problems = _static_problems(spec, new, when)
    if not any(p.where == "username" for p in problems):
        problems[:0] = _check_username(session, username)
    if uid is not None and storage.uid_taken(session, uid):
        problems.append(Problem("uid", f"{uid} is already in use", "leave --uid out to get the next free uid"))
    if problems:
        raise InputError(problems)
    uid = uid if uid is not None else _next_uid(session)  # before anything is added: the range may be exhausted
    person = storage.person_by_email(session, email)
    if person is None:
        person = Person(name=name.strip(), email=email.lower(), created_at=when)
        storage.add(session, person)
    else:
        current = active_account(person)
        if current is not None:
            raise Conflict(f"{email} already has the active account {current.username!r}", where="email",
                           fix="use promote/demote to change an account's kind, or depart it first")
    account = _build(session, spec, person, new, uid, actor, when)
    session.flush()
    record(session, actor=actor, action=action, target=_target(username), reason=reason, before=None,
           after=_state(account) | {"person": {"name": person.name, "email": person.email}}, at=when)
    return account


@serialized
def onboard_many(session: Session, actor: str, spec: EnclaveSpec, accounts: Sequence[NewAccount], *,
                 reason: str, now: datetime | None = None) -> list[Account]:
    """Onboard a cohort in one transaction: all of them or, if any row is wrong, none (every problem of
    every row is reported at once). Each account gets its own journal entry, as with ``onboard``."""
    why = _reason(reason)
    require(session, actor, Permission.ACCOUNTS_MANAGE)
    for new in accounts:
        _require_grant(session, actor, AccountKind(new.kind), new.roles)
    when = or_now(now)
    problems = _cohort_problems(spec, accounts, when)
    people = storage.people_by_email(session, list(dict.fromkeys(n.email.lower() for n in accounts)))
    problems += _cohort_clashes(session, accounts, people)
    if problems:
        raise InputError([p for _, p in sorted(problems, key=lambda item: item[0])])
    created = _insert_cohort(session, spec, accounts, people, actor, when)
    changes = []
    for new, account in zip(accounts, created, strict=True):
        changes.append(Change(actor, "accounts.onboard", _target(account.username), why, None,
                              _state(account) | {"person": {"name": account.person.name,
                                                            "email": account.person.email}}, when))
        changes += _grant_entries(actor, account, new.roles, why, when)
    record_many(session, changes)
    return created


RowProblem = tuple[int, Problem]


def _row_problems(i: int, new: NewAccount, found: list[Problem]) -> list[RowProblem]:
    return [(i, Problem(f"row {i + 1} ({new.username}) {p.where}", p.what, p.fix)) for p in found]


def _cohort_problems(spec: EnclaveSpec, accounts: Sequence[NewAccount], when: datetime) -> list[RowProblem]:
    """What is wrong with each row on its own, and rows that repeat another's username, email or uid."""
    problems: list[RowProblem] = []
    first: dict[tuple[str, object], int] = {}
    for i, new in enumerate(accounts):
        problems += _row_problems(i, new, _static_problems(spec, new, when))
        keys: list[tuple[str, object]] = [("username", new.username), ("email", new.email.lower())]
        keys += [("uid", new.uid)] if new.uid is not None else []
        for label, key in keys:
            if (label, key) in first:
                fix = "give each account its own" if label == "uid" else "list each person once"
                problems += _row_problems(i, new, [Problem(label, f"repeats row {first[label, key] + 1}", fix)])
            first.setdefault((label, key), i)
    return problems


def _cohort_clashes(session: Session, accounts: Sequence[NewAccount],
                    people: dict[str, Person]) -> list[RowProblem]:
    """Rows that clash with what the database holds: a taken username or uid, a person already active."""
    taken = storage.taken_usernames(session, list(dict.fromkeys(n.username for n in accounts)))
    used = storage.used_uids(session, sorted({n.uid for n in accounts if n.uid is not None}))
    problems: list[RowProblem] = []
    for i, new in enumerate(accounts):
        found = []
        if new.username in taken:
            found.append(Problem("username", f"{new.username!r} is taken (usernames are never reused)",
                                 "choose another username"))
        if new.uid is not None and new.uid in used:
            found.append(Problem("uid", f"{new.uid} is already in use", "leave the uid out"))
        person = people.get(new.email.lower())
        current = active_account(person) if person else None
        if current is not None:
            found.append(Problem("email", f"{new.email} already has the active account {current.username!r}",
                                 "use promote/demote, or depart it first"))
        problems += _row_problems(i, new, found)
    return problems


def _insert_cohort(session: Session, spec: EnclaveSpec, accounts: Sequence[NewAccount], people: dict[str, Person],
                   actor: str, when: datetime) -> list[Account]:
    """Bulk INSERTs, one statement per table: a cohort of thousands would otherwise spend most of its time
    in the ORM's per-object unit of work."""
    uids = _assign_uids(session, accounts, {n.uid for n in accounts if n.uid is not None})
    new_people = [{"name": n.name.strip(), "email": n.email.lower(), "created_at": when}
                  for n in {n.email.lower(): n for n in accounts if n.email.lower() not in people}.values()]
    person_ids = {p.email: p.id for p in people.values()} | storage.insert_people(session, new_people)
    account_ids = storage.insert_accounts(session, [_account_row(spec, new, uid, person_ids[new.email.lower()], when)
                                                    for new, uid in zip(accounts, uids, strict=True)])
    held = {(p.id, g.role) for p in people.values() for g in p.roles}
    grants, members = [], []
    for new, account_id in zip(accounts, account_ids, strict=True):
        pid = person_ids[new.email.lower()]
        for role in sorted(set(_roles(new))):
            if (pid, role.value) not in held:
                held.add((pid, role.value))
                grants.append({"person_id": pid, "role": role.value, "granted_by": actor, "granted_at": when})
        members += [{"account_id": account_id, "namespace": ns} for ns in dict.fromkeys(new.namespaces)]
    storage.insert_grants_and_memberships(session, grants, members)
    return storage.accounts_by_ids(session, account_ids)


def _account_row(spec: EnclaveSpec, new: NewAccount, uid: int, person_id: int, when: datetime) -> dict[str, object]:
    home, workspace = _home(spec, new.username)
    alloc = new.allocation
    return {"person_id": person_id, "username": new.username, "uid": uid,
            "gid": new.gid if new.gid is not None else uid, "kind": AccountKind(new.kind).value,
            "status": AccountStatus.ACTIVE.value, "home_path": home, "workspace_path": workspace,
            "quota_gib": _quota(spec, alloc), "allocation_id": alloc.proposal_id if alloc else None,
            "allocation_quota_gib": alloc.quota_gib if alloc else None,
            "allocation_expires": alloc.expires if alloc else None, "created_at": when}


def _assign_uids(session: Session, accounts: Sequence[NewAccount], explicit: set[int]) -> list[int]:
    """Each row's uid: its own, or the next free one after the highest in use, skipping explicit ones."""
    next_uid = _next_uid(session)
    out = []
    for new in accounts:
        uid = new.uid
        if uid is None:
            while next_uid in explicit:
                next_uid += 1
            if next_uid > UID_MAX:
                raise _uids_exhausted(next_uid - 1)
            uid, next_uid = next_uid, next_uid + 1
        out.append(uid)
    return out


@serialized
def bootstrap(session: Session, spec: EnclaveSpec, username: str, *, name: str, email: str,
              now: datetime | None = None) -> Account:
    """Create the first sysadmin (staff, roles sysadmin + developer) — only while no account exists."""
    existing = storage.count_accounts(session)
    if existing:
        raise Conflict(f"enclave already has {existing} account(s); bootstrap creates only the first one",
                       where="accounts bootstrap", fix="ask an existing sysadmin to onboard you")
    return _onboard(session, BOOTSTRAP_ACTOR, spec, username, name=name, email=email, kind=AccountKind.STAFF,
                    reason="first sysadmin of a new enclave", roles=[Role.SYSADMIN, Role.DEVELOPER],
                    allocation=None, namespaces=(), uid=None, gid=None, now=now, action="accounts.bootstrap")


def _active_sysadmins(session: Session) -> set[int]:
    return storage.active_sysadmin_ids(session)


def _guard_last_sysadmin(session: Session, account: Account, what: str) -> None:
    admins = _active_sysadmins(session)
    if admins == {account.id}:
        raise InvalidTransition(f"{account.username!r} is the last active sysadmin; {what} would leave nobody "
                                "able to manage accounts", where=_target(account.username),
                                fix="grant sysadmin to another active staff account first")


def _load(session: Session, username: str) -> Account:
    return find_account(session, username)


def _end_access(session: Session, account: Account, when: datetime) -> None:
    """Revoke roles, namespace memberships and tokens — every access at once."""
    account.person.roles.clear()
    account.namespaces.clear()
    tokens.revoke_all(session, account, now=when)


@serialized
def depart(session: Session, actor: str, username: str, *, reason: str, now: datetime | None = None) -> Account:
    """Staff leaves the project: every access is revoked at once; the data stays where it is."""
    why = _reason(reason)
    require(session, actor, Permission.ACCOUNTS_MANAGE)
    account = _load(session, username)
    if account.status != AccountStatus.ACTIVE:
        raise InvalidTransition(f"{username!r} is already {account.status}; only an active account can depart",
                                where=_target(username))
    if account.kind != AccountKind.STAFF:
        raise InvalidTransition(f"{username!r} is a science account; science access ends when its allocation "
                                "expires", where=_target(username), fix=f"use `enclave accounts expire {username}`")
    _guard_last_sysadmin(session, account, "departing")
    when = or_now(now)
    before = _state(account)
    _end_access(session, account, when)
    account.status, account.ended_at = AccountStatus.DEPARTED.value, when
    session.flush()
    record(session, actor=actor, action="accounts.depart", target=_target(username), reason=why, before=before,
           after=_state(account), at=when)
    return account


@serialized
def expire(session: Session, actor: str, username: str, *, reason: str, now: datetime | None = None) -> Account:
    """A science allocation ends: read access to its own data stays; every other service goes."""
    why = _reason(reason)
    require(session, actor, Permission.ACCOUNTS_MANAGE)
    account = _load(session, username)
    if account.kind != AccountKind.SCIENCE:
        raise InvalidTransition(f"{username!r} is a staff account; staff accounts have no allocation to expire",
                                where=_target(username), fix=f"use `enclave accounts depart {username}`")
    if account.status != AccountStatus.ACTIVE:
        raise InvalidTransition(f"{username!r} is already {account.status}; only an active account can expire",
                                where=_target(username))
    when = or_now(now)
    before = _state(account)
    account.person.roles.clear()
    account.namespaces.clear()
    account.status, account.ended_at = AccountStatus.EXPIRED.value, when
    session.flush()
    record(session, actor=actor, action="accounts.expire", target=_target(username), reason=why, before=before,
           after=_state(account), at=when)
    return account


EXPIRY_REASON = "allocation expiry date passed"


@serialized
def expire_due(session: Session, actor: str, *, now: datetime | None = None) -> list[Account]:
    """Expire every active science account whose allocation expiry has passed."""
    require(session, actor, Permission.ACCOUNTS_MANAGE)
    when = or_now(now)
    return [expire(session, actor, name, reason=EXPIRY_REASON, now=when)
            for name in storage.science_due(session, when)]


@serialized
def renew(session: Session, actor: str, username: str, allocation: Allocation, *, reason: str,
          spec: EnclaveSpec, now: datetime | None = None) -> Account:
    """An expired science account gets a new allocation and its platform access back."""
    why = _reason(reason)
    require(session, actor, Permission.ACCOUNTS_MANAGE)
    account = _load(session, username)
    when = or_now(now)
    if account.status != AccountStatus.EXPIRED:
        raise InvalidTransition(f"{username!r} is {account.status}; only an expired science account is renewed",
                                where=_target(username),
                                fix="use grow-quota to enlarge an active allocation" if account.active else "")
    if allocation is None:
        raise InvalidTransition(f"{username!r} cannot be reactivated without a new allocation",
                                where=_target(username), fix="pass --proposal and --expires of the new allocation")
    problems = allocation.problems(when)
    if allocation.expires is None:
        problems.append(Problem("allocation expiry", "a renewal needs an expiry date", "pass --expires"))
    if problems:
        raise InputError(problems)
    _one_active_per_person(account, "renewing")
    before = _state(account)
    account.status, account.ended_at = AccountStatus.ACTIVE.value, None
    account.allocation_id, account.allocation_quota_gib = allocation.proposal_id, allocation.quota_gib
    account.allocation_expires = allocation.expires
    # The quota never shrinks below what the data already occupies: keep the larger of old and new.
    account.quota_gib = max(account.quota_gib, _quota(spec, allocation))
    _grant(account.person, [Role.SCIENCE_USER], actor, when)
    session.flush()
    record(session, actor=actor, action="accounts.renew", target=_target(username), reason=why, before=before,
           after=_state(account), at=when)
    return account


@serialized
def promote(session: Session, actor: str, username: str, *, reason: str, roles: Iterable[Role] | None = None,
            now: datetime | None = None) -> Account:
    """A science user becomes staff: the same account, its data kept, staff access added."""
    why = _reason(reason)
    require(session, actor, Permission.ACCOUNTS_MANAGE)
    _require_grant(session, actor, AccountKind.STAFF, roles)
    account = _load(session, username)
    if account.status == AccountStatus.DEPARTED:
        raise InvalidTransition(f"{username!r} has departed and cannot be promoted", where=_target(username),
                                fix="onboard a new staff account")
    if account.kind != AccountKind.SCIENCE:
        return unchanged(session, account, f"{username} is already a staff account")
    _one_active_per_person(account, "promoting")
    when = or_now(now)
    before = _state(account)
    account.kind = AccountKind.STAFF.value
    account.status, account.ended_at = AccountStatus.ACTIVE.value, None
    # Staff carry no allocation; the quota it bought stays, since the data stays.
    account.allocation_id = account.allocation_quota_gib = None
    account.allocation_expires = None
    wanted = {Role(r).value for r in (roles if roles is not None else [Role.DEVELOPER])}
    # Keep a grant the person already holds instead of deleting and re-inserting it: the unit of work
    # inserts before it deletes, so re-granting a held role broke the (person, role) unique key and the
    # promote failed as a "concurrent change" on every retry.
    for grant in [g for g in account.person.roles if g.role not in wanted]:
        account.person.roles.remove(grant)
    _grant(account.person, [Role(r) for r in wanted], actor, when)
    session.flush()
    record_many(session, [Change(actor, "accounts.promote", _target(username), why, before, _state(account), when),
                          *_grant_entries(actor, account, roles, why, when)])
    return account


@serialized
def demote(session: Session, actor: str, spec: EnclaveSpec, username: str, *, new_username: str, reason: str,
           allocation: Allocation | None = None, now: datetime | None = None) -> Account:
    """Staff becomes a science user: a NEW account (username, uid, home); the old one is deactivated.

    The new account shares nothing with the old one — not its uid, group or home — so none of the data
    the person had as staff is reachable from the new account (seed §4).
    """
    why = _reason(reason)
    require(session, actor, Permission.ACCOUNTS_MANAGE)
    old = _load(session, username)
    if old.kind != AccountKind.STAFF or old.status != AccountStatus.ACTIVE:
        raise InvalidTransition(f"{username!r} is a {old.status} {old.kind} account; only an active staff "
                                "account can become a science user", where=_target(username))
    when = or_now(now)
    problems = _check_username(session, new_username)
    if allocation is not None:
        problems += allocation.problems(when)
    if problems:
        raise InputError(problems)
    _one_active_per_person(old, "demoting")
    _guard_last_sysadmin(session, old, "demoting")
    uid = _next_uid(session)  # before anything is modified: the uid range may be exhausted
    before = _state(old)
    _end_access(session, old, when)
    old.status, old.ended_at = AccountStatus.DEPARTED.value, when
    new = _create(session, spec, old.person, username=new_username, kind=AccountKind.SCIENCE,
                  allocation=allocation, uid=uid, gid=None, when=when)
    session.flush()
    old.replaced_by = new.id
    _grant(old.person, [Role.SCIENCE_USER], actor, when)
    session.flush()
    record(session, actor=actor, action="accounts.demote", target=_target(username), reason=why, before=before,
           after=_state(old) | {"replaced_by": new_username}, at=when)
    record(session, actor=actor, action="accounts.onboard", target=_target(new_username),
           reason=f"replaces staff account {username}: {why}", before=None, after=_state(new), at=when)
    return new


@serialized
def grow_quota(session: Session, actor: str, username: str, quota_gib: float, *, reason: str,
               proposal_id: str | None = None, now: datetime | None = None) -> Account:
    """A larger allocation raises the storage quota (seed §6.2). Quotas only grow: data may already fill them."""
    why = _reason(reason)
    require(session, actor, Permission.ACCOUNTS_MANAGE)
    account = _load(session, username)
    if account.status != AccountStatus.ACTIVE:
        raise InvalidTransition(f"{username!r} is {account.status}; only an active account's quota grows",
                                where=_target(username))
    problems = quota_problems(quota_gib, "quota")
    if proposal_id:
        problems += _too_long("proposal", proposal_id, PROPOSAL_MAX, "give the proposal id as it was approved",
                              what="proposal id")
    if problems:
        raise InputError(problems)
    if not quota_gib > account.quota_gib:
        raise InvalidTransition(f"{quota_gib:g} GiB is not larger than the current quota {account.quota_gib:g} GiB",
                                where="quota", fix="quotas only grow; give a larger size")
    before = _state(account)
    account.quota_gib = float(quota_gib)
    if account.kind == AccountKind.SCIENCE:
        account.allocation_quota_gib = float(quota_gib)
        if proposal_id:
            account.allocation_id = proposal_id
    session.flush()
    record(session, actor=actor, action="accounts.grow-quota", target=_target(username), reason=why, before=before,
           after=_state(account), at=or_now(now))
    return account


@serialized
def correct_quota(session: Session, actor: str, username: str, quota_gib: float, *, reason: str,
                  now: datetime | None = None) -> Account:
    """An administrator sets a quota to any valid value, lower included — to undo a mistaken grow-quota. The
    reason is journaled with the before and after; whether the data already fills the lower quota is for the
    administrator to check (`du -s` of the home), since uploads beyond it are then refused, never deleted."""
    why = _reason(reason)
    require(session, actor, Permission.ACCOUNTS_MANAGE)
    account = _load(session, username)
    problems = quota_problems(quota_gib, "quota")
    if problems:
        raise InputError(problems)
    if quota_gib == account.quota_gib:
        raise InvalidTransition(f"the quota of {username!r} is already {quota_gib:g} GiB; nothing to change",
                                where="quota", fix="give a different size")
    before = _state(account)
    account.quota_gib = float(quota_gib)
    if account.kind == AccountKind.SCIENCE and account.allocation_id is not None:
        account.allocation_quota_gib = float(quota_gib)
    session.flush()
    record(session, actor=actor, action="accounts.correct-quota", target=_target(username), reason=why,
           before=before, after=_state(account), at=or_now(now))
    return account


@serialized
def grant_role(session: Session, actor: str, username: str, role: Role, *, reason: str,
               now: datetime | None = None) -> Account:
    why = _reason(reason)
    require(session, actor, Permission.ROLES_GRANT)
    account = _load(session, username)
    role = Role(role)
    if account.status != AccountStatus.ACTIVE:
        raise InvalidTransition(f"{username!r} is {account.status}; roles go to active accounts only",
                                where=_target(username))
    problems = _check_roles(AccountKind(account.kind), [role])
    if problems:
        raise InputError(problems)
    if role.value in {g.role for g in account.person.roles}:
        return unchanged(session, account, f"{username} already holds {role.value}")
    when = or_now(now)
    before = _state(account)
    _grant(account.person, [role], actor, when)
    session.flush()
    record(session, actor=actor, action="roles.grant", target=_target(username), reason=why, before=before,
           after=_state(account), at=when)
    return account


@serialized
def revoke_role(session: Session, actor: str, username: str, role: Role, *, reason: str,
                now: datetime | None = None) -> Account:
    why = _reason(reason)
    require(session, actor, Permission.ROLES_GRANT)
    account = _load(session, username)
    role = Role(role)
    grant = next((g for g in account.person.roles if g.role == role.value), None)
    if grant is None or account.status != AccountStatus.ACTIVE:
        return unchanged(session, account, f"{username} does not hold {role.value}")
    if role == Role.SYSADMIN:
        _guard_last_sysadmin(session, account, "revoking sysadmin")
    before = _state(account)
    account.person.roles.remove(grant)
    session.flush()
    record(session, actor=actor, action="roles.revoke", target=_target(username), reason=why, before=before,
           after=_state(account), at=or_now(now))
    return account


@serialized
def join_namespace(session: Session, actor: str, spec: EnclaveSpec, username: str, namespace: str, *,
                   reason: str, now: datetime | None = None) -> Account:
    """Add a staff account to an application namespace. The membership is kept as asked in every namespace; what
    it renders to is ``access.render.cluster_role``'s to decide — view, not edit, for a developer in the notebook
    namespace while batch tokens are on, edit again once they are off — and ``AccountService.join_namespace``
    tells the caller (why accepting, not refusing: there)."""
    why = _reason(reason)
    require(session, actor, Permission.ACCOUNTS_MANAGE)
    account = _load(session, username)
    problems = _check_namespaces(spec, [namespace])
    if problems:
        raise InputError(problems)
    if account.status != AccountStatus.ACTIVE:
        raise InvalidTransition(f"{username!r} is {account.status}; only active accounts join namespaces",
                                where=_target(username))
    if account.kind != AccountKind.STAFF:
        raise InvalidTransition(f"{username!r} is a science account; namespaces are for staff (seed §4)",
                                where=_target(username), fix="promote the account to staff first")
    if namespace in {m.namespace for m in account.namespaces}:
        raise Conflict(f"{username!r} already belongs to {namespace}", where=_target(username))
    before = _state(account)
    account.namespaces.append(Membership(namespace=namespace))
    session.flush()
    record(session, actor=actor, action="accounts.join-namespace", target=_target(username), reason=why,
           before=before, after=_state(account), at=or_now(now))
    return account


@serialized
def leave_namespace(session: Session, actor: str, username: str, namespace: str, *, reason: str,
                    now: datetime | None = None) -> Account:
    why = _reason(reason)
    require(session, actor, Permission.ACCOUNTS_MANAGE)
    account = _load(session, username)
    membership = next((m for m in account.namespaces if m.namespace == namespace), None)
    if membership is None:
        raise NotFound(f"{username!r} does not belong to {namespace}", where=_target(username))
    before = _state(account)
    account.namespaces.remove(membership)
    session.flush()
    record(session, actor=actor, action="accounts.leave-namespace", target=_target(username), reason=why,
           before=before, after=_state(account), at=or_now(now))
    return account


def person_of(session: Session, username: str) -> Person:
    account = _load(session, username)
    return account.person


def roles_of(session: Session, username: str) -> list[Role]:
    account = _load(session, username)
    return sorted((Role(g.role) for g in account.person.roles), key=lambda r: r.value) if account.active else []


__all__ = [
    "Allocation", "NewAccount", "UID_BASE", "active_account", "app_namespaces", "bootstrap", "correct_quota",
    "demote", "depart", "expire", "expire_due", "get", "grant_role", "grow_quota", "join_namespace",
    "leave_namespace", "list_accounts", "onboard", "onboard_many", "person_of", "promote", "renew", "revoke_role",
    "roles_of", "visible",
]
