"""API tokens: issue (shown once), list, revoke — ``enclave.services.tokens.TokenService``, as the CLI calls it."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from enclave.access.permissions import Permission
from enclave.accounts.tokens import MAX_TTL_SECONDS
from enclave.accounts.types import IssuedToken, TokenView
from enclave.api.deps import Caller, Tokens
from enclave.api.routes.bodies import Body, Reason, Short, Username

router = APIRouter(prefix="/tokens", tags=["tokens"])


class Issue(Body):
    username: Username | None = Field(default=None, description="Whose token; default the caller.")
    scopes: list[Short] = Field(default_factory=lambda: ["*"], min_length=1, max_length=32)
    ttl_seconds: int = Field(default=86_400, ge=60, le=MAX_TTL_SECONDS)
    reason: Reason = "token issued through the API"


class Revoked(BaseModel):
    key: str
    revoked: bool


@router.post("", status_code=201, summary="Issue a token (for yourself, or for anyone with accounts.manage)")
def issue(body: Issue, caller: Caller, tokens: Tokens) -> IssuedToken:
    if body.username not in (None, caller.username):
        caller.need_scope(Permission.ACCOUNTS_MANAGE)
    # The caller's token is the new one's parent: no broader, no longer-lived, revoked with it.
    return tokens.issue(caller.username, body.username, body.scopes, body.ttl_seconds, reason=body.reason,
                        parent=caller.key)


@router.get("", summary="Tokens of an account (your own, or any with accounts.manage); never the secrets")
def list_tokens(caller: Caller, tokens: Tokens, username: Username | None = None) -> list[TokenView]:
    if username not in (None, caller.username):
        caller.need_scope(Permission.ACCOUNTS_MANAGE)
    return tokens.listing(caller.username, username)


@router.delete("/{key}", summary="Revoke a token by key: refused on its very next use")
def revoke(key: Short, caller: Caller, tokens: Tokens,
           reason: Reason = Query("token revoked through the API")) -> Revoked:  # noqa: B008
    if tokens.owner(key) != caller.username:
        caller.need_scope(Permission.ACCOUNTS_MANAGE)
    tokens.revoke(caller.username, key, reason=reason)
    return Revoked(key=key, revoked=True)
