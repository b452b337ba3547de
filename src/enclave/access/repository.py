"""Database side of access: load the subjects the pure renderer needs, write rendered YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.orm import Session

from enclave.access.render import Subject
from enclave.accounts.models import Account, Membership, RoleGrant
from enclave.spec.models import Role


def subjects(session: Session) -> list[Subject]:
    """One Subject per account, built with three flat queries (no per-account round trips)."""
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


# The C dumper is an order of magnitude faster for the thousands of bindings a large enclave renders.
_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def write_yaml(objects: dict[str, list[dict[str, Any]]], out: Path) -> list[Path]:
    """One multi-document file per namespace: DIR/<namespace>.yaml. Returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for namespace, docs in objects.items():
        path = out / f"{namespace}.yaml"
        path.write_text(yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False))
        written.append(path)
    return written
