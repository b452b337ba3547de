"""The journal: entries with filters, and chain verification. Reading needs journal.read (as in the CLI)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query

from enclave.access.permissions import Permission, require
from enclave.api.auth import Principal, api_principal
from enclave.api.service import Service, get_service
from enclave.api.views import journal_rows
from enclave.journal import verify

router = APIRouter(prefix="/journal", tags=["journal"])


@router.get("", summary="Journal entries, newest first, with filters")
def entries(actor: str | None = Query(None, max_length=64), action: str | None = Query(None, max_length=64),
            target: str | None = Query(None, max_length=255), since: datetime | None = None,
            until: datetime | None = None, limit: int = Query(50, ge=1, le=1000),
            principal: Principal = Depends(api_principal),  # noqa: B008
            service: Service = Depends(get_service)) -> list[dict[str, Any]]:  # noqa: B008
    with service.db.session() as session:
        principal.need_scope(Permission.JOURNAL_READ)
        require(session, principal.username, Permission.JOURNAL_READ)
        return journal_rows(session, limit=limit, actor=actor, action=action, target=target, since=since,
                            until=until)


@router.get("/verify", summary="Walk the hash chain; 200 with the entry count, 422 naming the first bad entry")
def verify_chain(principal: Principal = Depends(api_principal),  # noqa: B008
                 service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    with service.db.session() as session:
        principal.need_scope(Permission.JOURNAL_READ)
        require(session, principal.username, Permission.JOURNAL_READ)
        return {"ok": True, "entries": verify(session)}
