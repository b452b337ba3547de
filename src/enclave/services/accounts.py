"""Accounts and roles: every lifecycle transition of seed §4 as one method.

Each method opens and commits one transaction; the rule it applies (``enclave.accounts.lifecycle``) checks the
actor's permission and journals the change inside that transaction, so a refused or failed call leaves nothing
behind. Reads check permission here, once, for the CLI and the API alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from enclave import journal
from enclave.access.permissions import Permission
from enclave.access.render import app_namespaces, cluster_role
from enclave.accounts import homes, lifecycle, local, storage, tokens
from enclave.accounts.authorize import account_permissions, account_roles, find_account, require, subject_of
from enclave.accounts.lifecycle import Allocation, NewAccount
from enclave.accounts.models import Account
from enclave.accounts.types import AccountKind, AccountStatus, AccountView, Person
from enclave.db import Database
from enclave.domain.reach import ReachReport, Transition
from enclave.errors import ExternalError, NotFound, PermissionDenied
from enclave.logs import event, logger
from enclave.services.reach import ReachService
from enclave.spec.models import EnclaveSpec, Role

log = logger("accounts")


def view(account: Account) -> AccountView:
    summary = account.summary()
    return AccountView(
        **summary, roles=sorted(r.value for r in account_roles(account)),
        permissions=sorted(p.value for p in account_permissions(account)),
        person=Person(name=account.person.name, email=account.person.email),
        other_accounts=[a.username for a in account.person.accounts if a.id != account.id])


def _noticed(account: AccountView, said: str) -> AccountView:
    """``account`` with ``said`` added to its notice."""
    return account.model_copy(update={"notice": "; ".join(n for n in (account.notice, said) if n)})


@dataclass(frozen=True)
class ServiceAccount:
    """A staff service account enclave makes for itself (the broker's): who, and why."""

    username: str
    name: str
    roles: tuple[Role, ...]
    reason: str


@dataclass
class AccountService:
    db: Database
    spec: EnclaveSpec
    reacher: ReachService | None = None
    """Carries depart, expire and demote to the running systems once committed (``enclave.services.reach``)."""
    remote_homes: Callable[[AccountView], homes.Provisioned | None] | None = None
    """Provisioning through the live cluster (a Job, ``KubeCluster.provision_home``) for when the home file
    system is not mounted here; None, or returning None: no cluster at hand."""

    def _change(self, fn: Callable[[Session], Account], *, notice_in: Sequence[str] = ()) -> AccountView:
        """``fn``'s account, with the no-op's note, and the notice of its narrowed bindings in ``notice_in``."""
        with self.db.session() as session:
            account = fn(session)
            done = view(account)
            told = {"note": session.info.pop(lifecycle.UNCHANGED, None), "notice": self._narrowed(account, notice_in)}
            update = {k: v for k, v in told.items() if v}
            return done.model_copy(update=update) if update else done

    def _narrowed(self, account: Account, namespaces: Sequence[str]) -> str | None:
        """What the account's bindings in ``namespaces`` lack beside what its roles and memberships give elsewhere,
        as rendered (``access.render.cluster_role``, the one rule), or None."""
        subject = subject_of(account)
        said = [f"{namespace}: {grant.narrowed}" for namespace in namespaces
                if (grant := cluster_role(subject, namespace, self.spec)) is not None and grant.narrowed]
        return "; ".join(said) or None

    # --- reads -------------------------------------------------------------------------------------------

    def show(self, actor: str, username: str) -> AccountView:
        """``username``'s account: your own (unless departed), or anyone's with accounts.manage or roles.grant."""
        with self.db.session() as session:
            return view(lifecycle.visible(session, actor, username))

    def list_accounts(self, actor: str, *, status: AccountStatus | None = None,
             kind: AccountKind | None = None) -> list[AccountView]:
        with self.db.session() as session:
            require(session, actor, Permission.ACCOUNTS_MANAGE)
            return [view(a) for a in lifecycle.list_accounts(session, status=status, kind=kind)]

    def count_accounts(self, actor: str, *, status: AccountStatus | None = None,
                       kind: AccountKind | None = None) -> int:
        """How many accounts ``list_accounts`` would list (accounts.manage), counted by the database."""
        with self.db.session() as session:
            require(session, actor, Permission.ACCOUNTS_MANAGE)
            return storage.count_accounts(session, status=status, kind=kind)

    def roles(self, actor: str, username: str | None = None) -> dict[str, list[str]]:
        """Roles held: by one account (yours, or any with roles.grant) or by every active one (roles.grant)."""
        with self.db.session() as session:
            if username is not None:
                accounts = [lifecycle.visible(session, actor, username)]
            else:
                require(session, actor, Permission.ROLES_GRANT)
                accounts = lifecycle.list_accounts(session, status=AccountStatus.ACTIVE)
            return {a.username: sorted(r.value for r in account_roles(a)) for a in accounts}

    def whoami(self, username: str) -> tuple[list[str], list[str]]:
        """The roles and permissions ``username`` acts with now."""
        with self.db.session() as session:
            account = find_account(session, username)
            return (sorted(r.value for r in account_roles(account)),
                    sorted(p.value for p in account_permissions(account)))

    def check(self, username: str, permission: Permission) -> None:
        """PermissionDenied (naming the roles that would grant it) unless ``username`` may do it now."""
        with self.db.session() as session:
            require(session, username, permission)

    # --- transitions -------------------------------------------------------------------------------------

    def bootstrap(self, username: str, *, name: str, email: str, os_user: str | None = None) -> AccountView:
        """The first sysadmin; ``os_user``: the OS user who ran the bootstrap on the server host, mapped to it for
        local mode in the same transaction (journaled)."""
        def first(session: Session) -> Account:
            account = lifecycle.bootstrap(session, self.spec, username, name=name, email=email)
            if os_user is not None:
                local.map_os_user(session, username, os_user, username, reason="the OS user who bootstrapped")
            return account

        return self._change(first)

    def onboard(self, actor: str, username: str, *, name: str, email: str, kind: AccountKind, reason: str,
                roles: Iterable[Role] | None = None, allocation: Allocation | None = None,
                namespaces: Iterable[str] = (), uid: int | None = None) -> AccountView:
        return self._provision(self._change(lambda s: lifecycle.onboard(
            s, actor, self.spec, username, name=name, email=email, kind=kind, reason=reason, roles=roles,
            allocation=allocation, namespaces=namespaces, uid=uid)))

    def _reached(self, actor: str, transition: Transition, username: str, reason: str,
                 done: AccountView) -> AccountView:
        if self.reacher is None:
            return done
        return done.model_copy(update={"reach": self.reacher.after(actor, transition, username, reason)})

    def reach(self, actor: str, username: str, *, reason: str) -> ReachReport:
        """Carry the transition that ended ``username`` to the running systems again (a retry after a failure)."""
        return (self.reacher or ReachService(self.db)).retry(actor, username, reason=reason)

    def _provision(self, account: AccountView) -> AccountView:
        """Home, workspace and quota on the home file system: here when it is mounted here (as `enclave webdav`
        decides), else through the live cluster's Job; after the commit, so a refused onboarding creates
        nothing. Idempotent. What was done is logged; a quota the spec gives no tool for is advisory.

        The account is committed and journaled by now, so a home that cannot be made (a stray file where it goes,
        no right to chown, the cluster refusing the Job) does not fail the call: the caller would retry, and the
        retry is refused, the username being taken. The committed account is returned with a ``notice`` saying
        that the home was not made, why, and the commands that make it; the failure is logged as an error. Nothing
        standing at the home's path is removed. A quota tool that fails once the directories stand is the same kind
        of notice, with the command that sets the quota (docs/accounts.md, "Home provisioning")."""
        root = self.spec.storage.home_root
        done: homes.Provisioned | None
        if Path(root).is_dir():
            try:
                made = homes.make_home(account, root)
            except ExternalError as exc:
                return self._not_made(account, exc, cause_fix=(
                    f"whatever stands at {account.home} is kept: move it aside, never delete it; enclave makes homes "
                    f"where it may create and chown under {root}, as root on the storage host"))
            try:
                quota = homes.set_quota(account, self.spec.storage.quota)
            except ExternalError as exc:
                return self._quota_not_set(account, exc)
            done = homes.Provisioned(made, quota, "local")
        else:
            try:
                done = self.remote_homes(account) if self.remote_homes is not None else None
            except ExternalError as exc:
                return self._not_made(account, exc)
        if done is None:
            event(log, logging.WARNING, "home not provisioned", account=account.username, home=account.home,
                  cause=f"{root} is not mounted here and no live cluster is at hand; run the onboarding where "
                        "homes are mounted, or through the API in the commons")
            return account
        event(log, logging.INFO, "home provisioned", account=account.username, home=account.home, how=done.how,
              quota_gib=account.quota_gib, quota=done.quota)
        if done.quota == "advisory":
            event(log, logging.WARNING, "home quota recorded only", account=account.username,
                  cause="storage.quota.tool is none: nothing on the file system enforces the quota")
        return account

    def _quota_not_set(self, account: AccountView, exc: ExternalError) -> AccountView:
        """``account`` (committed, its home made) with the notice that its quota is not set: why, and the command
        (the tool's error names it in its fix)."""
        said = (f"{exc.problem.what}. The account {account.username} is committed and its home made; do not make "
                f"it again (the username is taken). Set the quota on the storage host, as root: {exc.problem.fix}")
        event(log, logging.ERROR, "home quota not set", account=account.username, home=account.home, cause=str(exc))
        return _noticed(account, said)

    def _not_made(self, account: AccountView, exc: ExternalError, *, cause_fix: str | None = None) -> AccountView:
        """``account`` (committed) with the notice that its home was not made: why, and how to make it."""
        said = (f"home not made: {exc.problem.what}. The account {account.username} is committed and journaled: do "
                "not make it again (the username is taken); no enclave command makes a home again. Fix the cause "
                f"({cause_fix or exc.problem.fix}), then make the home on the storage host, as root: "
                f"{homes.by_hand(account, self.spec.storage.quota)}")
        event(log, logging.ERROR, "home not made", account=account.username, home=account.home, cause=str(exc))
        return _noticed(account, said)

    def onboard_many(self, actor: str, rows: Sequence[NewAccount], *, reason: str) -> list[AccountView]:
        with self.db.session() as session:
            made = [view(a) for a in lifecycle.onboard_many(session, actor, self.spec, rows, reason=reason)]
        return [self._provision(a) for a in made]

    def depart(self, actor: str, username: str, *, reason: str) -> AccountView:
        done = self._change(lambda s: lifecycle.depart(s, actor, username, reason=reason))
        return self._reached(actor, Transition.DEPART, username, reason, done)

    def expire(self, actor: str, username: str, *, reason: str) -> AccountView:
        done = self._change(lambda s: lifecycle.expire(s, actor, username, reason=reason))
        return self._reached(actor, Transition.EXPIRE, username, reason, done)

    def expire_due(self, actor: str, *, now: datetime | None = None) -> list[AccountView]:
        with self.db.session() as session:
            done = [view(a) for a in lifecycle.expire_due(session, actor, now=now)]
        return [self._reached(actor, Transition.EXPIRE, a.username, lifecycle.EXPIRY_REASON, a) for a in done]

    def renew(self, actor: str, username: str, allocation: Allocation, *, reason: str) -> AccountView:
        return self._change(lambda s: lifecycle.renew(s, actor, username, allocation, reason=reason,
                                                      spec=self.spec))

    def promote(self, actor: str, username: str, *, reason: str, roles: Iterable[Role] | None = None) -> AccountView:
        return self._change(lambda s: lifecycle.promote(s, actor, username, reason=reason, roles=roles))

    def demote(self, actor: str, username: str, *, new_username: str, reason: str,
               allocation: Allocation | None = None) -> AccountView:
        """The NEW science account; the staff one is deactivated (and its running work ends: ``reach``)."""
        new = self._provision(self._change(lambda s: lifecycle.demote(
            s, actor, self.spec, username, new_username=new_username, reason=reason, allocation=allocation)))
        return self._reached(actor, Transition.DEMOTE, username, reason, new)

    def grow_quota(self, actor: str, username: str, quota_gib: float, *, reason: str,
                   proposal_id: str | None = None) -> AccountView:
        return self._change(lambda s: lifecycle.grow_quota(s, actor, username, quota_gib, reason=reason,
                                                           proposal_id=proposal_id))

    def correct_quota(self, actor: str, username: str, quota_gib: float, *, reason: str) -> AccountView:
        """Set a quota to any valid size, lower included (undo a mistaken grow-quota); journaled."""
        return self._change(lambda s: lifecycle.correct_quota(s, actor, username, quota_gib, reason=reason))

    def grant_role(self, actor: str, username: str, role: Role, *, reason: str) -> AccountView:
        """Grants ``role``; granting developer, the view's notice says when a membership that role would make edit
        binds view (in the notebook namespace while batch tokens are on: ``join_namespace``)."""
        return self._change(lambda s: lifecycle.grant_role(s, actor, username, role, reason=reason),
                            notice_in=app_namespaces(self.spec) if Role(role) == Role.DEVELOPER else ())

    def revoke_role(self, actor: str, username: str, role: Role, *, reason: str) -> AccountView:
        return self._change(lambda s: lifecycle.revoke_role(s, actor, username, role, reason=reason))

    def join_namespace(self, actor: str, username: str, namespace: str, *, reason: str) -> AccountView:
        """Adds the membership. A developer joining the notebook namespace while ``notebooks.batch_tokens`` is on
        is accepted, not refused, and the view's ``notice`` says the membership binds view there, not edit, and
        why (``access.render.cluster_role``, which renders it so): the membership is what the account manager
        asked for and what the accounts' state keeps — it still gives a view of the namespace and journaled log
        reads (``enclave logs``), and ``edit`` once tokens are turned off — while the key decides only what it
        renders to. Refusing would make the same state depend on the order of events: members who joined before
        tokens were on keep their membership (narrowed), so a refused one would lose ``edit`` for good when tokens
        go off again. Whoever should have nothing there leaves the namespace (``leave_namespace``)."""
        return self._change(lambda s: lifecycle.join_namespace(s, actor, self.spec, username, namespace,
                                                               reason=reason), notice_in=[namespace])

    def leave_namespace(self, actor: str, username: str, namespace: str, *, reason: str) -> AccountView:
        return self._change(lambda s: lifecycle.leave_namespace(s, actor, username, namespace, reason=reason))

    # --- a fresh database --------------------------------------------------------------------------------

    def ensure_admin(self, admin: str) -> bool | None:
        """On an empty database, bootstrap ``admin`` as the first sysadmin. True: ``admin`` was bootstrapped
        now; False: it already was an active account manager; None: it is not one."""
        with self.db.session() as session:
            return self._ensure_admin(session, admin)

    def _ensure_admin(self, session: Session, admin: str) -> bool | None:
        # Checked and made under the journal's head lock: two replicas starting together on one empty PostgreSQL
        # database (READ COMMITTED) would otherwise both see no account and both bootstrap, the loser failing on
        # the username; queued here, the second finds the first's admin made (SQLite's BEGIN IMMEDIATE queues them
        # already).
        journal.lock(session)
        created = not lifecycle.list_accounts(session)
        if created:
            lifecycle.bootstrap(session, self.spec, admin, name="Enclave Administrator",
                                email=f"{admin}@enclave.local")
        try:
            require(session, admin, Permission.ACCOUNTS_MANAGE)
        except (NotFound, PermissionDenied):
            return None
        return created

    def ensure_service_account(self, admin: str, username: str, *, name: str, roles: list[Role],
                               reason: str) -> None:
        """Onboard a staff service account (the broker's) once, by ``admin``; its actions are role-checked and
        journaled like anyone's."""
        with self.db.session() as session:
            self._ensure_service_account(session, admin, username, name=name, roles=roles, reason=reason)

    def _ensure_service_account(self, session: Session, admin: str, username: str, *, name: str, roles: list[Role],
                                reason: str) -> None:
        # Under the journal's head lock, as ``_ensure_admin``: of two replicas the second finds the account the
        # first made instead of failing with "is taken".
        journal.lock(session)
        try:
            find_account(session, username)
        except NotFound:
            lifecycle.onboard(session, admin, self.spec, username, name=name,
                              email=f"{username}@enclave.local", kind=AccountKind.STAFF, reason=reason,
                              roles=roles)

    def ensure_enclave(self, admin: str, service: ServiceAccount, *, token_ttl_seconds: int,
                       token_reason: str) -> tuple[bool | None, str | None]:
        """What a fresh database needs, in ONE transaction: ``admin`` bootstrapped on an empty database (as
        ``ensure_admin``), the ``service`` account onboarded once, and — only when ``admin`` was bootstrapped now —
        a ``*`` token for it. Returns (``ensure_admin``'s answer, the token or None).

        One transaction, so the bootstrap token is never lost: the process that creates the admin is the one that
        mints its token, and if anything fails before the commit (a rival replica, a lost connection) neither the
        admin nor the token is there, and the next start bootstraps again (docs/deploy.md step 8: "the replica that
        created it writes the bootstrap token"). Until this stop they were three transactions, and a replica that
        failed after the first left an admin nobody ever got a token for."""
        with self.db.session() as session:
            state = self._ensure_admin(session, admin)
            if state is None:
                return None, None
            self._ensure_service_account(session, admin, service.username, name=service.name,
                                         roles=list(service.roles), reason=service.reason)
            if not state:
                return state, None
            return state, tokens.issue(session, admin, admin, ["*"], token_ttl_seconds, reason=token_reason)

    # --- local mode (enclave.services.local) --------------------------------------------------------------

    def map_local(self, actor: str, os_user: str, username: str, *, reason: str) -> bool:
        """Let ``os_user`` act as ``username`` in local mode; False if it already could."""
        with self.db.session() as session:
            return local.map_os_user(session, actor, os_user, username, reason=reason)

    def unmap_local(self, actor: str, os_user: str, username: str, *, reason: str) -> bool:
        with self.db.session() as session:
            return local.unmap_os_user(session, actor, os_user, username, reason=reason)

    def local_accounts(self, os_user: str) -> list[str]:
        with self.db.session() as session:
            return local.mapped(session, os_user)
