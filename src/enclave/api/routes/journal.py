"""The journal: entries with filters, and chain verification. Reading needs journal.read (the service checks)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel

from enclave.access.permissions import Permission
from enclave.api.deps import Caller, Journal
from enclave.api.routes.bodies import When
from enclave.journal import Entry

router = APIRouter(prefix="/journal", tags=["journal"])


class Verified(BaseModel):
    ok: bool
    entries: int


@router.get("", summary="Journal entries, newest first, with filters")
def entries(caller: Caller, journal: Journal, actor: str | None = Query(None, max_length=64),
            action: str | None = Query(None, max_length=64), target: str | None = Query(None, max_length=255),
            since: When | None = None, until: When | None = None,
            limit: int = Query(50, ge=1, le=1000)) -> list[Entry]:
    caller.need_scope(Permission.JOURNAL_READ)
    return journal.entries(caller.username, by=actor, action=action, target=target, since=since, until=until,
                           limit=limit)


@router.get("/verify", summary="Walk the hash chain; 200 with the entry count, 422 naming the first bad entry")
def verify_chain(caller: Caller, journal: Journal) -> Verified:
    caller.need_scope(Permission.JOURNAL_READ)
    return Verified(ok=True, entries=journal.verify(caller.username))
