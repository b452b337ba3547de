"""`enclave render access`, `enclave tokens …`, `enclave access …`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from enclave.access.permissions import ROLE_PERMISSIONS, Permission
from enclave.cli.options import SELF, As, Output, OutputFormat, SpecOption, console, emit, enclave, host, services
from enclave.spec.models import Role

tokens_app = typer.Typer(help="API tokens for the REST API and WebDAV.", no_args_is_help=True)
access_app = typer.Typer(help="Who may do what.", no_args_is_help=True)


def render_access_command(out: Annotated[Path, typer.Option("--out", help="Directory to write YAML into.")],
                          spec: SpecOption = None) -> None:
    """Namespaces, RoleBindings, NetworkPolicies, ResourceQuota, LimitRange — one YAML file per namespace, from the
    enclave's database (refused where there is none, or it has no account: docs/accounts.md). Names each binding
    rendered with less than the account's roles give elsewhere, and why (docs/batch.md, "Who can read them")."""
    with services(spec, missing="refuse") as factory:
        files, total, narrowed = factory.renders.access(out, for_apply=True)
    console.print(f"wrote {total} objects to {len(files)} files in {out}")
    for n in narrowed:
        console.print(f"narrowed: {n.username} in {n.namespace} ({n.binding}): {n.why}")
        console.print(f"  a cluster that holds {n.instead_of} from an earlier apply keeps it (kubectl apply never "
                      "deletes): apply with --prune (docs/accounts.md), or")
        console.print(f"  kubectl -n {n.namespace} delete rolebinding {n.instead_of} --ignore-not-found")


@tokens_app.command("issue")
def issue(username: Annotated[str | None, typer.Argument(help="Holder (default: yourself).")] = None,
          scope: Annotated[list[str] | None, typer.Option("--scope", help="Scope (repeat); default '*'.")] = None,
          ttl: Annotated[int, typer.Option("--ttl", help="Lifetime in seconds.")] = 86400,
          reason: Annotated[str, typer.Option("--reason")] = "token issued", actor: As = SELF) -> None:
    """Issue a token; it is printed once and only its hash is stored."""
    with enclave() as factory:
        issued = factory.tokens.issue(actor, username, scope or ["*"], ttl, reason=reason)
    typer.echo(issued.token)


@tokens_app.command("revoke")
def revoke(key: Annotated[str, typer.Argument(help="Token or its key.")],
           reason: Annotated[str, typer.Option("--reason")] = "token revoked", actor: As = SELF) -> None:
    """Revoke a token."""
    with enclave() as factory:
        factory.tokens.revoke(actor, key, reason=reason)
    console.print("revoked")


@tokens_app.command("list")
def list_tokens(username: Annotated[str | None, typer.Argument(help="Holder (default: yourself).")]
                = None, output: Output = OutputFormat.TABLE, actor: As = SELF) -> None:
    """Tokens of an account (yours, or anyone's with accounts.manage): keys, scopes, expiry; never secrets."""
    with enclave() as factory:
        rows = factory.tokens.listing(actor, username)
    if output != OutputFormat.TABLE:
        emit(rows, output)
        return
    table = Table()
    for col in ("key", "scopes", "issued by", "expires", "revoked"):
        table.add_column(col)
    for t in rows:
        by = f"{t.issued_by} (on behalf, by {t.delegated_by})" if t.on_behalf else t.issued_by
        table.add_row(t.key, " ".join(t.scopes), by, t.expires_at.isoformat(),
                      t.revoked_at.isoformat() if t.revoked_at else "")
    console.print(table)


@access_app.command("matrix")
def matrix(output: Output = OutputFormat.TABLE) -> None:
    """The role → permission table."""
    if output != OutputFormat.TABLE:
        emit({r.value: sorted(p.value for p in ROLE_PERMISSIONS[r]) for r in Role}, output)
        return
    table = Table(title="Role → permission")
    table.add_column("permission")
    for role in Role:
        table.add_column(role.value)
    for perm in Permission:
        table.add_row(perm.value, *("✓" if perm in ROLE_PERMISSIONS[r] else "" for r in Role))
    console.print(table)


@access_app.command("check")
def check(username: Annotated[str, typer.Argument()], permission: Annotated[Permission, typer.Argument()],
          output: Output = OutputFormat.TABLE) -> None:
    """Exit 0 if USER may PERMISSION now, else explain and exit 4."""
    with host() as factory:
        factory.accounts.check(username, permission)
    if output != OutputFormat.TABLE:
        emit({"username": username, "permission": permission, "allowed": True}, output)
        return
    console.print(f"{username} may {permission.value}")


def register(app: typer.Typer, render: typer.Typer) -> None:
    render.command("access")(render_access_command)
    app.add_typer(tokens_app, name="tokens")
    app.add_typer(access_app, name="access")
