"""API tokens: issue (shown once), list, revoke. Calls ``enclave.access.tokens`` exactly as the CLI does."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from enclave.access import tokens
from enclave.access.permissions import Permission, require
from enclave.api.auth import Principal, api_principal
from enclave.api.routes.bodies import Body, Reason, Short, Username
from enclave.api.service import Service, get_service
from enclave.errors import PermissionDenied

router = APIRouter(prefix="/tokens", tags=["tokens"])


class Issue(Body):
    username: Username | None = Field(default=None, description="Whose token; default the caller.")
    scopes: list[Short] = Field(default_factory=lambda: ["*"], min_length=1, max_length=32)
    ttl_seconds: int = Field(default=86_400, ge=60, le=tokens.MAX_TTL_SECONDS)
    reason: Reason = "token issued through the API"


class Issued(Body):
    token: str = Field(description="The token itself: shown this once; only its hash is stored.")
    username: str
    scopes: list[str]
    expires_at: datetime


@router.post("", status_code=201, summary="Issue a token (for yourself, or for anyone with accounts.manage)")
def issue(body: Issue, principal: Principal = Depends(api_principal),  # noqa: B008
          service: Service = Depends(get_service)) -> Issued:  # noqa: B008
    username = body.username or principal.username
    # A token can only hand on what it holds itself: a narrowly scoped token must not mint a "*" one.
    if "*" not in principal.scopes and not set(body.scopes) <= principal.scopes:
        raise PermissionDenied(f"this token's scopes ({', '.join(sorted(principal.scopes))}) do not cover "
                               f"{', '.join(sorted(set(body.scopes) - principal.scopes))}", where="scopes",
                               fix="request only scopes your token carries, or use a token with scope *")
    if username != principal.username:
        principal.need_scope(Permission.ACCOUNTS_MANAGE)
    with service.db.session() as session:
        plaintext = tokens.issue(session, principal.username, username, body.scopes, body.ttl_seconds,
                                 reason=body.reason)
        row = next(t for t in tokens.list_tokens(session, username) if plaintext.startswith(f"enc_{t.key}_"))
        return Issued(token=plaintext, username=username, scopes=row.scopes.split(), expires_at=row.expires_at)


@router.get("", summary="Tokens of an account (your own, or any with accounts.manage); never the secrets")
def list_tokens(username: Username | None = None, principal: Principal = Depends(api_principal),  # noqa: B008
                service: Service = Depends(get_service)) -> list[dict[str, Any]]:  # noqa: B008
    who = username or principal.username
    with service.db.session() as session:
        if who != principal.username:
            principal.need_scope(Permission.ACCOUNTS_MANAGE)
            require(session, principal.username, Permission.ACCOUNTS_MANAGE)
        return [{"key": t.key, "scopes": t.scopes.split(), "issued_by": t.issued_by, "created_at": t.created_at,
                 "expires_at": t.expires_at, "revoked_at": t.revoked_at} for t in tokens.list_tokens(session, who)]


@router.delete("/{key}", summary="Revoke a token by key: refused on its very next use")
def revoke(key: Short, reason: Reason = Query("token revoked through the API"),  # noqa: B008
           principal: Principal = Depends(api_principal),  # noqa: B008
           service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    with service.db.session() as session:
        if key not in {t.key for t in tokens.list_tokens(session, principal.username)}:
            principal.need_scope(Permission.ACCOUNTS_MANAGE)
        tokens.revoke(session, principal.username, key, reason=reason)
    return {"key": key, "revoked": True}
