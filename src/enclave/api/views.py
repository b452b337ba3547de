"""Read-side helpers shared by API routes and dashboard pages (database reads only; no writes)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from enclave.access.permissions import account_permissions, account_roles, find_account


def roles_and_permissions(session: Session, username: str) -> tuple[list[str], list[str]]:
    account = find_account(session, username)
    return (sorted(r.value for r in account_roles(account)),
            sorted(p.value for p in account_permissions(account)))


def journal_rows(session: Session, limit: int = 20, **filters: Any) -> list[dict[str, Any]]:
    from enclave.journal import query

    return [{"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action, "target": e.target,
             "reason": e.reason, "before": e.before, "after": e.after, "hash": e.hash}
            for e in query(session, limit=limit, newest_first=True, **filters)]
