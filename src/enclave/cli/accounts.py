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
from enclave.services import local
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


@accounts_app.command("import")
def import_(file: Annotated[Path, typer.Argument(help="CSV: username,name,email,kind[,roles,namespaces,proposal,"
                                                      "quota_gib,expires,uid].")],
            reason: Reason, spec: SpecOption = None, actor: As = SELF) -> None:
    """Onboard a cohort from CSV in one transaction: every row, or none if any row is wrong."""
    rows = parse_cohort(read_text(file), str(file))
    with host(spec) as factory:
        created = factory.accounts.onboard_many(actor, rows, reason=reason)
    console.print(f"onboarded {len(created)} account(s) from {file}")


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
def depart(username: User, reason: Reason, actor: As = SELF) -> None:
    """Staff leaves: every access revoked at once; data kept."""
    with enclave() as factory:
        factory.accounts.depart(actor, username, reason=reason)
    console.print(f"{username} departed: roles, namespaces and tokens revoked; data kept")


@accounts_app.command("expire")
def expire(username: User, reason: Reason, actor: As = SELF) -> None:
    """A science allocation ends: read access to own data only."""
    with enclave() as factory:
        factory.accounts.expire(actor, username, reason=reason)
    console.print(f"{username} expired: read-only access to its own data; other services revoked")


@accounts_app.command("expire-due")
def expire_due(actor: As = SELF) -> None:
    """Expire every science account whose allocation expiry date has passed."""
    with host() as factory:
        done = factory.accounts.expire_due(actor)
    console.print(f"expired {len(done)} account(s): {', '.join(a.username for a in done) or '-'}")


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
           spec: SpecOption = None, actor: As = SELF) -> None:
    """Staff becomes a science user: a new account; the old one is deactivated, its data unreachable."""
    with enclave(spec) as factory:
        new = factory.accounts.demote(actor, username, new_username=new_username, reason=reason,
                                      allocation=_allocation(proposal, quota, expires))
        console.print(f"{username} deactivated; new science account {new.username} (uid {new.uid}, "
                      f"home {new.home})")


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
    """Add a staff account to an application namespace (logs, RoleBinding)."""
    with enclave(spec) as factory:
        factory.accounts.join_namespace(actor, username, namespace, reason=reason)
    console.print(f"{username} joined {namespace}")


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
