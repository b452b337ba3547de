"""`enclave accounts …`, `enclave roles …` and `enclave db …`. Every change takes --as USER and --reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from enclave.access.permissions import Permission, account_permissions, require
from enclave.accounts import service
from enclave.accounts.cohort import parse_cohort
from enclave.accounts.models import Account, AccountKind, AccountStatus
from enclave.db.cli import cli_session, db_app, parse_date
from enclave.errors import InputError, Problem
from enclave.spec.cli import SpecOption, load_spec_option
from enclave.spec.models import Role

accounts_app = typer.Typer(help="People and their accounts: onboard, depart, expire, promote, demote.",
                           no_args_is_help=True)
roles_app = typer.Typer(help="Actor roles (seed §2) held by people.", no_args_is_help=True)
console = Console(highlight=False, width=140)

As = Annotated[str, typer.Option("--as", envvar="ENCLAVE_AS", help="The acting account (or $ENCLAVE_AS).")]
Reason = Annotated[str, typer.Option("--reason", help="Why: every change is documented (seed §8).")]
User = Annotated[str, typer.Argument(help="Username of the account.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _allocation(proposal: str | None, quota: float | None, expires: str | None) -> service.Allocation | None:
    if proposal is None and quota is None and expires is None:
        return None
    return service.Allocation(proposal_id=proposal or "", quota_gib=quota, expires=parse_date(expires, "--expires"))


def _describe(account: Account) -> dict[str, object]:
    data = account.summary()
    data["person"] = {"name": account.person.name, "email": account.person.email}
    data["roles"] = sorted(g.role for g in account.person.roles) if account.active else []
    data["permissions"] = sorted(p.value for p in account_permissions(account))
    data["other_accounts"] = [a.username for a in account.person.accounts if a.id != account.id]
    return data


@accounts_app.command("bootstrap")
def bootstrap(username: User, name: Annotated[str, typer.Option("--name")],
              email: Annotated[str, typer.Option("--email")], spec: SpecOption = None) -> None:
    """Create the first sysadmin; refused once any account exists."""
    s = load_spec_option(spec)
    with cli_session() as session:
        account = service.bootstrap(session, s, username, name=name, email=email)
        console.print(f"bootstrapped {account.username} (uid {account.uid}) as sysadmin, developer")


@accounts_app.command("onboard")
def onboard(
    username: User, actor: As, reason: Reason,
    name: Annotated[str, typer.Option("--name", help="Full name of the person.")],
    email: Annotated[str, typer.Option("--email", help="Email; identifies the person across accounts.")],
    kind: Annotated[AccountKind, typer.Option("--kind", help="staff or science.")] = AccountKind.SCIENCE,
    role: Annotated[list[Role] | None, typer.Option("--role", help="Roles (repeat); default by kind.")] = None,
    namespace: Annotated[list[str] | None, typer.Option("--namespace", help="Application namespace (staff).")] = None,
    proposal: Annotated[str | None, typer.Option("--proposal", help="Allocation proposal id.")] = None,
    quota: Annotated[float | None, typer.Option("--quota", help="Allocation storage quota, GiB.")] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="Allocation expiry, YYYY-MM-DD.")] = None,
    uid: Annotated[int | None, typer.Option("--uid", help="Fixed uid (default: next free).")] = None,
    spec: SpecOption = None,
) -> None:
    """Add a staff member (development resources + platform) or a science user (platform only)."""
    s = load_spec_option(spec)
    with cli_session() as session:
        account = service.onboard(session, actor, s, username, name=name, email=email, kind=kind, reason=reason,
                                  roles=role or None, allocation=_allocation(proposal, quota, expires),
                                  namespaces=namespace or (), uid=uid)
        console.print(f"onboarded {account.username}: {account.kind}, uid {account.uid}, home {account.home_path}, "
                      f"quota {account.quota_gib:g} GiB")


@accounts_app.command("import")
def import_(file: Annotated[Path, typer.Argument(help="CSV: username,name,email,kind[,roles,namespaces,proposal,"
                                                      "quota_gib,expires,uid].")],
            actor: As, reason: Reason, spec: SpecOption = None) -> None:
    """Onboard a cohort from CSV in one transaction: every row, or none if any row is wrong."""
    s = load_spec_option(spec)
    try:
        text = file.read_text()
    except OSError as exc:
        raise InputError([Problem(str(file), f"cannot read: {exc.strerror}", "check the path")]) from exc
    rows = parse_cohort(text, str(file))
    with cli_session() as session:
        created = service.onboard_many(session, actor, s, rows, reason=reason)
    console.print(f"onboarded {len(created)} account(s) from {file}")


@accounts_app.command("show")
def show(username: User, actor: As, as_json: Json = False) -> None:
    """Everything about one account: person, roles, permissions, paths, allocation (yours, or any with
    accounts.manage)."""
    with cli_session() as session:
        data = _describe(service.visible(session, actor, username))
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    table = Table(show_header=False)
    for key, value in data.items():
        table.add_row(key, ", ".join(map(str, value)) if isinstance(value, list) else str(value))
    console.print(table)


@accounts_app.command("list")
def list_(actor: As, status: Annotated[AccountStatus | None, typer.Option("--status")] = None,
          kind: Annotated[AccountKind | None, typer.Option("--kind")] = None, as_json: Json = False) -> None:
    """All accounts, optionally filtered by status and kind (needs accounts.manage)."""
    with cli_session() as session:
        require(session, actor, Permission.ACCOUNTS_MANAGE)
        rows = [_describe(a) for a in service.list_accounts(session, status=status, kind=kind)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
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
def depart(username: User, actor: As, reason: Reason) -> None:
    """Staff leaves: every access revoked at once; data kept."""
    with cli_session() as session:
        service.depart(session, actor, username, reason=reason)
    console.print(f"{username} departed: roles, namespaces and tokens revoked; data kept")


@accounts_app.command("expire")
def expire(username: User, actor: As, reason: Reason) -> None:
    """A science allocation ends: read access to own data only."""
    with cli_session() as session:
        service.expire(session, actor, username, reason=reason)
    console.print(f"{username} expired: read-only access to its own data; other services revoked")


@accounts_app.command("expire-due")
def expire_due(actor: As) -> None:
    """Expire every science account whose allocation expiry date has passed."""
    with cli_session() as session:
        done = service.expire_due(session, actor)
    console.print(f"expired {len(done)} account(s): {', '.join(a.username for a in done) or '-'}")


@accounts_app.command("renew")
def renew(username: User, actor: As, reason: Reason,
          proposal: Annotated[str, typer.Option("--proposal", help="New allocation proposal id.")],
          expires: Annotated[str, typer.Option("--expires", help="New allocation expiry, YYYY-MM-DD.")],
          quota: Annotated[float | None, typer.Option("--quota", help="Allocation storage quota, GiB.")] = None,
          spec: SpecOption = None) -> None:
    """Reactivate an expired science account with a new allocation."""
    s = load_spec_option(spec)
    alloc = service.Allocation(proposal_id=proposal, quota_gib=quota, expires=parse_date(expires, "--expires"))
    with cli_session() as session:
        service.renew(session, actor, username, alloc, reason=reason, spec=s)
    console.print(f"{username} renewed under {proposal}")


@accounts_app.command("promote")
def promote(username: User, actor: As, reason: Reason,
            role: Annotated[list[Role] | None, typer.Option("--role", help="Staff roles (default developer).")]
            = None) -> None:
    """A science user becomes staff: same account and data, staff access."""
    with cli_session() as session:
        service.promote(session, actor, username, reason=reason, roles=role or None)
    console.print(f"{username} is now staff (same account, data kept)")


@accounts_app.command("demote")
def demote(username: User, actor: As, reason: Reason,
           new_username: Annotated[str, typer.Option("--new-username", help="Username of the new science account.")],
           proposal: Annotated[str | None, typer.Option("--proposal")] = None,
           quota: Annotated[float | None, typer.Option("--quota")] = None,
           expires: Annotated[str | None, typer.Option("--expires")] = None,
           spec: SpecOption = None) -> None:
    """Staff becomes a science user: a new account; the old one is deactivated, its data unreachable."""
    s = load_spec_option(spec)
    with cli_session() as session:
        new = service.demote(session, actor, s, username, new_username=new_username, reason=reason,
                             allocation=_allocation(proposal, quota, expires))
        console.print(f"{username} deactivated; new science account {new.username} (uid {new.uid}, "
                      f"home {new.home_path})")


@accounts_app.command("grow-quota")
def grow_quota(username: User, actor: As, reason: Reason,
               quota: Annotated[float, typer.Option("--quota", help="New storage quota, GiB (larger).")],
               proposal: Annotated[str | None, typer.Option("--proposal")] = None) -> None:
    """Raise an account's storage quota (a larger allocation)."""
    with cli_session() as session:
        account = service.grow_quota(session, actor, username, quota, reason=reason, proposal_id=proposal)
        console.print(f"{username}: quota {account.quota_gib:g} GiB")


@accounts_app.command("join")
def join(username: User, namespace: Annotated[str, typer.Argument(help="Application namespace.")], actor: As,
         reason: Reason, spec: SpecOption = None) -> None:
    """Add a staff account to an application namespace (logs, RoleBinding)."""
    s = load_spec_option(spec)
    with cli_session() as session:
        service.join_namespace(session, actor, s, username, namespace, reason=reason)
    console.print(f"{username} joined {namespace}")


@accounts_app.command("leave")
def leave(username: User, namespace: Annotated[str, typer.Argument(help="Application namespace.")], actor: As,
          reason: Reason) -> None:
    """Remove an account from an application namespace."""
    with cli_session() as session:
        service.leave_namespace(session, actor, username, namespace, reason=reason)
    console.print(f"{username} left {namespace}")


@roles_app.command("grant")
def grant(username: User, role: Annotated[Role, typer.Argument(help="Role to grant.")], actor: As,
          reason: Reason) -> None:
    """Grant an actor role to the person behind an account."""
    with cli_session() as session:
        service.grant_role(session, actor, username, role, reason=reason)
    console.print(f"{username} now holds {role.value}")


@roles_app.command("revoke")
def revoke(username: User, role: Annotated[Role, typer.Argument(help="Role to revoke.")], actor: As,
           reason: Reason) -> None:
    """Revoke an actor role."""
    with cli_session() as session:
        service.revoke_role(session, actor, username, role, reason=reason)
    console.print(f"{username} no longer holds {role.value}")


@roles_app.command("list")
def list_roles(actor: As, username: Annotated[str | None, typer.Argument(help="Only this account.")] = None,
               as_json: Json = False) -> None:
    """Roles held, per active account (needs roles.grant), or for one account (yours, or any with roles.grant)."""
    with cli_session() as session:
        if username is None:
            require(session, actor, Permission.ROLES_GRANT)
        accounts = [service.visible(session, actor, username)] if username else \
            service.list_accounts(session, status=AccountStatus.ACTIVE)
        rows = {a.username: [r.value for r in service.roles_of(session, a.username)] for a in accounts}
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
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
