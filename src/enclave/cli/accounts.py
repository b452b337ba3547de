"""`enclave accounts …` and `enclave roles …`. Every change takes --reason; the actor is the context's token's
account, or in local mode an account mapped to the OS user (--as picks among them). Each command is one call of
``enclave.services.accounts.AccountService`` (or its API client, ``enclave.client.remote``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from enclave.accounts.cohort import parse_cohort
from enclave.accounts.lifecycle import Allocation
from enclave.accounts.types import AccountKind, AccountStatus, AccountView
from enclave.cli.db import db_app
from enclave.cli.options import (
    SELF,
    As,
    Live,
    Output,
    OutputFormat,
    Reason,
    SpecOption,
    console,
    emit,
    enclave,
    host,
    parse_date,
)
from enclave.client.remote import Remote
from enclave.domain.reach import ReachReport, Status
from enclave.errors import ExternalError, InputError, Problem
from enclave.services import local
from enclave.services.factory import Factory
from enclave.spec.document import read_text
from enclave.spec.models import Role

accounts_app = typer.Typer(help="People and their accounts: onboard, depart, expire, promote, demote.",
                           no_args_is_help=True)
roles_app = typer.Typer(help="Actor roles (seed §2) held by people.", no_args_is_help=True)
User = Annotated[str, typer.Argument(help="Username of the account.")]


def _allocation(proposal: str | None, quota: float | None, expires: str | None) -> Allocation | None:
    if proposal is None and quota is None and expires is None:
        return None
    return Allocation(proposal_id=proposal or "", quota_gib=quota, expires=parse_date(expires, "--expires"))


LiveReach = Annotated[bool, typer.Option(
    "--live", help="Also end the account's RoleBindings, and its running work in the live HTCondor pool (and hub, "
                 "when configured).")]


def _reach_live(factory: Factory | Remote, live: bool) -> None:
    """--live: this process reaches the live schedds (and hub) itself, in local mode on the server host. Sent
    through a context, the server reaches the systems it is configured with (`enclave serve --live`)."""
    if not live:
        return
    if not isinstance(factory, Factory):
        raise InputError([Problem("--live", "through a context the server reaches its own running systems",
                                  "drop --live: the report shows what the server reached")])
    factory.use_live_systems()


def _reached(report: ReachReport | None) -> None:
    """What each running system did (docs/accounts.md, "Reaching the running systems"). A step that failed is an
    error (exit 7) after the transition itself succeeded: it says how to retry."""
    if report is None:
        return
    for o in report.outcomes:
        if o.status == Status.DONE:
            console.print(f"  {o.system} {o.where}: {o.action}: {o.count}")
    skipped = sorted({o.system for o in report.outcomes if o.status == Status.NOT_CONFIGURED})
    retry = f"enclave accounts reach {report.username} --live --as ... --reason ..."
    if skipped:
        console.print(f"note: not reached, as none is configured here: {', '.join(skipped)} (the CLI reaches "
                      f"Kubernetes and HTCondor with --live); to end the account's running work there: {retry}")
    failed = [o for o in report.outcomes if o.status == Status.FAILED]
    if failed:
        listed = "; ".join(f"{o.system} {o.where}: {o.action}: {o.error}" for o in failed)
        raise ExternalError(f"{len(failed)} step(s) did not reach their system (recorded in the journal): {listed}",
                            where=f"account/{report.username}", fix=f"fix the cause, then run: {retry}")


def _noticed(account: AccountView) -> None:
    """The notice of an account just made: its home was not made, and how to make it (docs/accounts.md, "Home
    provisioning"). The account stands, so the command succeeded: running it again would be refused."""
    if account.notice:
        console.print(f"{account.username}: {account.notice}")


def _describe(account: AccountView) -> dict[str, object]:
    return account.model_dump(mode="json")


@accounts_app.command("bootstrap")
def bootstrap(username: User, name: Annotated[str, typer.Option("--name")],
              email: Annotated[str, typer.Option("--email")], spec: SpecOption = None) -> None:
    """Create the first sysadmin; refused once any account exists. Run on the server host by the OS user who owns
    the database: that OS user is mapped to the new account for local mode."""
    user = local.os_user()
    with host(spec, may_create=True) as factory:
        account = factory.accounts.bootstrap(username, name=name, email=email, os_user=user.name)
        console.print(f"bootstrapped {account.username} (uid {account.uid}) as sysadmin, developer; OS user "
                      f"{user.name} may act as {account.username} in local mode")


@accounts_app.command("onboard")
def onboard(
    username: User, reason: Reason,
    name: Annotated[str, typer.Option("--name", help="Full name of the person.")],
    email: Annotated[str, typer.Option("--email", help="Email; identifies the person across accounts.")],
    kind: Annotated[AccountKind, typer.Option("--kind", help="staff or science.")] = AccountKind.SCIENCE,
    role: Annotated[list[Role] | None, typer.Option("--role", help="Roles (repeat); default by kind.")] = None,
    namespace: Annotated[list[str] | None, typer.Option("--namespace", help="Application namespace (staff).")] = None,
    proposal: Annotated[str | None, typer.Option("--proposal", help="Allocation proposal id.")] = None,
    quota: Annotated[float | None, typer.Option("--quota", help="Allocation storage quota, GiB.")] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="Allocation expiry, YYYY-MM-DD.")] = None,
    uid: Annotated[int | None, typer.Option("--uid", help="Fixed uid (default: next free).")] = None,
    spec: SpecOption = None, actor: As = SELF) -> None:
    """Add a staff member (development resources + platform) or a science user (platform only)."""
    with enclave(spec) as factory:
        account = factory.accounts.onboard(actor, username, name=name, email=email, kind=kind, reason=reason,
                                           roles=role or None, allocation=_allocation(proposal, quota, expires),
                                           namespaces=namespace or (), uid=uid)
        console.print(f"onboarded {account.username}: {account.kind}, uid {account.uid}, home {account.home}, "
                      f"quota {account.quota_gib:g} GiB")
    _noticed(account)


@accounts_app.command("import")
def import_(file: Annotated[Path, typer.Argument(help="CSV: username,name,email,kind[,roles,namespaces,proposal,"
                                                      "quota_gib,expires,uid].")],
            reason: Reason, spec: SpecOption = None, actor: As = SELF) -> None:
    """Onboard a cohort from CSV in one transaction: every row, or none if any row is wrong."""
    rows = parse_cohort(read_text(file), str(file))
    with host(spec) as factory:
        created = factory.accounts.onboard_many(actor, rows, reason=reason)
    console.print(f"onboarded {len(created)} account(s) from {file}")
    for account in created:
        _noticed(account)


@accounts_app.command("show")
def show(username: User, output: Output = OutputFormat.TABLE, actor: As = SELF) -> None:
    """Everything about one account: person, roles, permissions, paths, allocation (yours, or any with
    accounts.manage)."""
    with enclave() as factory:
        data = _describe(factory.accounts.show(actor, username))
    if output != OutputFormat.TABLE:
        emit(data, output)
        return
    table = Table(show_header=False)
    for key, value in data.items():
        table.add_row(key, ", ".join(map(str, value)) if isinstance(value, list) else str(value))
    console.print(table)


@accounts_app.command("list")
def list_(status: Annotated[AccountStatus | None, typer.Option("--status")] = None,
          kind: Annotated[AccountKind | None, typer.Option("--kind")] = None,
          output: Output = OutputFormat.TABLE, actor: As = SELF) -> None:
    """All accounts, optionally filtered by status and kind (needs accounts.manage)."""
    with enclave() as factory:
        rows = [_describe(a) for a in factory.accounts.list_accounts(actor, status=status, kind=kind)]
    if output != OutputFormat.TABLE:
        emit(rows, output)
        return
    table = Table(title=f"{len(rows)} account(s)")
    for col in ("username", "uid", "kind", "status", "roles", "quota GiB", "home"):
        table.add_column(col)
    for r in rows:
        roles = r["roles"]
        table.add_row(str(r["username"]), str(r["uid"]), str(r["kind"]), str(r["status"]),
                      ", ".join(roles) if isinstance(roles, list) else "", f"{r['quota_gib']:g}", str(r["home"]))
    console.print(table)


@accounts_app.command("depart")
def depart(username: User, reason: Reason, live: LiveReach = False, actor: As = SELF) -> None:
    """Staff leaves: every access revoked at once; data kept; their servers stop and jobs go (docs/accounts.md)."""
    with enclave() as factory:
        _reach_live(factory, live)
        done = factory.accounts.depart(actor, username, reason=reason)
    console.print(f"{username} departed: roles, namespaces and tokens revoked; data kept")
    _reached(done.reach)


@accounts_app.command("expire")
def expire(username: User, reason: Reason, live: LiveReach = False, actor: As = SELF) -> None:
    """A science allocation ends: read access to own data only; queued jobs removed, running ones held."""
    with enclave() as factory:
        _reach_live(factory, live)
        done = factory.accounts.expire(actor, username, reason=reason)
    console.print(f"{username} expired: read-only access to its own data; other services revoked")
    _reached(done.reach)


@accounts_app.command("expire-due")
def expire_due(live: LiveReach = False, actor: As = SELF) -> None:
    """Expire every science account whose allocation expiry date has passed."""
    with host() as factory:
        _reach_live(factory, live)
        done = factory.accounts.expire_due(actor)
    console.print(f"expired {len(done)} account(s): {', '.join(a.username for a in done) or '-'}")
    errors = []
    for account in done:
        try:
            _reached(account.reach)
        except ExternalError as exc:  # report every account's failures, then fail once
            errors.append(exc)
    if errors:
        raise errors[0] if len(errors) == 1 else ExternalError(
            "; ".join(str(e) for e in errors), where="accounts expire-due",
            fix="fix the causes, then run `enclave accounts reach USER --live` for each account named")


@accounts_app.command("renew")
def renew(username: User, reason: Reason,
          proposal: Annotated[str, typer.Option("--proposal", help="New allocation proposal id.")],
          expires: Annotated[str, typer.Option("--expires", help="New allocation expiry, YYYY-MM-DD.")],
          quota: Annotated[float | None, typer.Option("--quota", help="Allocation storage quota, GiB.")] = None,
          spec: SpecOption = None, actor: As = SELF) -> None:
    """Reactivate an expired science account with a new allocation."""
    alloc = Allocation(proposal_id=proposal, quota_gib=quota, expires=parse_date(expires, "--expires"))
    with enclave(spec) as factory:
        factory.accounts.renew(actor, username, alloc, reason=reason)
    console.print(f"{username} renewed under {proposal}")


@accounts_app.command("promote")
def promote(username: User, reason: Reason,
            role: Annotated[list[Role] | None, typer.Option("--role", help="Staff roles (default developer).")]
            = None, actor: As = SELF) -> None:
    """A science user becomes staff: same account and data, staff access."""
    with enclave() as factory:
        done = factory.accounts.promote(actor, username, reason=reason, roles=role or None)
    console.print(done.note or f"{username} is now staff (same account, data kept)")


@accounts_app.command("demote")
def demote(username: User, reason: Reason,
           new_username: Annotated[str, typer.Option("--new-username", help="Username of the new science account.")],
           proposal: Annotated[str | None, typer.Option("--proposal")] = None,
           quota: Annotated[float | None, typer.Option("--quota")] = None,
           expires: Annotated[str | None, typer.Option("--expires")] = None,
           spec: SpecOption = None, live: LiveReach = False, actor: As = SELF) -> None:
    """Staff becomes a science user: a new account; the old one is deactivated, its data unreachable."""
    with enclave(spec) as factory:
        _reach_live(factory, live)
        new = factory.accounts.demote(actor, username, new_username=new_username, reason=reason,
                                      allocation=_allocation(proposal, quota, expires))
        console.print(f"{username} deactivated; new science account {new.username} (uid {new.uid}, "
                      f"home {new.home})")
    _noticed(new)
    _reached(new.reach)


@accounts_app.command("reach")
def reach(username: User, reason: Reason, live: Live = False, spec: SpecOption = None, actor: As = SELF) -> None:
    """Carry a departure, demotion or expiry to the running systems again (after one failed): delete RoleBindings,
    stop servers, revoke hub tokens, remove or hold jobs in every schedd, as docs/accounts.md's table says."""
    with host(spec) as factory:
        if live:
            factory.use_live_systems()
        report = factory.accounts.reach(actor, username, reason=reason)
    console.print(f"{username}: {report.transition.value} carried to the running systems")
    _reached(report)


@accounts_app.command("grow-quota")
def grow_quota(username: User, reason: Reason,
               quota: Annotated[float, typer.Option("--quota", help="New storage quota, GiB (larger).")],
               proposal: Annotated[str | None, typer.Option("--proposal")] = None, actor: As = SELF) -> None:
    """Raise an account's storage quota (a larger allocation)."""
    with enclave() as factory:
        account = factory.accounts.grow_quota(actor, username, quota, reason=reason, proposal_id=proposal)
        console.print(f"{username}: quota {account.quota_gib:g} GiB")


@accounts_app.command("correct-quota")
def correct_quota(username: User, reason: Reason,
                  quota: Annotated[float, typer.Option("--quota", help="Storage quota, GiB (may be lower).")],
                  actor: As = SELF) -> None:
    """Set an account's storage quota to any valid size, lower included, to correct a mistake (journaled)."""
    with enclave() as factory:
        account = factory.accounts.correct_quota(actor, username, quota, reason=reason)
        console.print(f"{username}: quota {account.quota_gib:g} GiB")


@accounts_app.command("join")
def join(username: User, namespace: Annotated[str, typer.Argument(help="Application namespace.")], reason: Reason,
         spec: SpecOption = None, actor: As = SELF) -> None:
    """Add a staff account to an application namespace (logs, RoleBinding). A developer's membership of the notebook
    namespace binds view there, not edit, while batch tokens are on: said below (docs/batch.md, "Who can read
    them")."""
    with enclave(spec) as factory:
        done = factory.accounts.join_namespace(actor, username, namespace, reason=reason)
    console.print(f"{username} joined {namespace}")
    if done.notice:
        console.print(f"narrowed: {done.notice}")


@accounts_app.command("leave")
def leave(username: User, namespace: Annotated[str, typer.Argument(help="Application namespace.")], reason: Reason,
          actor: As = SELF) -> None:
    """Remove an account from an application namespace."""
    with enclave() as factory:
        factory.accounts.leave_namespace(actor, username, namespace, reason=reason)
    console.print(f"{username} left {namespace}")


@roles_app.command("grant")
def grant(username: User, role: Annotated[Role, typer.Argument(help="Role to grant.")], reason: Reason,
          actor: As = SELF) -> None:
    """Grant an actor role to the person behind an account."""
    with enclave() as factory:
        done = factory.accounts.grant_role(actor, username, role, reason=reason)
    console.print(done.note or f"{username} now holds {role.value}")
    if done.notice:
        console.print(f"narrowed: {done.notice}")


@roles_app.command("revoke")
def revoke(username: User, role: Annotated[Role, typer.Argument(help="Role to revoke.")], reason: Reason,
           actor: As = SELF) -> None:
    """Revoke an actor role."""
    with enclave() as factory:
        done = factory.accounts.revoke_role(actor, username, role, reason=reason)
    console.print(done.note or f"{username} no longer holds {role.value}")


@roles_app.command("list")
def list_roles(username: Annotated[str | None, typer.Argument(help="Only this account.")] = None,
               output: Output = OutputFormat.TABLE, actor: As = SELF) -> None:
    """Roles held, per active account (needs roles.grant), or for one account (yours, or any with roles.grant)."""
    with host() as factory:
        rows = factory.accounts.roles(actor, username)
    if output != OutputFormat.TABLE:
        emit(rows, output)
        return
    table = Table()
    table.add_column("username")
    table.add_column("roles")
    for name, roles in rows.items():
        table.add_row(name, ", ".join(roles) or "-")
    console.print(table)


def register(app: typer.Typer, render: typer.Typer) -> None:
    app.add_typer(accounts_app, name="accounts")
    app.add_typer(roles_app, name="roles")
    app.add_typer(db_app, name="db")
