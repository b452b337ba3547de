"""API tokens: issue (shown once), list, revoke — ``enclave.services.tokens.TokenService``, as the CLI calls it."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from enclave.access.permissions import Permission
from enclave.accounts.tokens import MAX_TTL_SECONDS
from enclave.accounts.types import IssuedToken, TokenView
from enclave.api.auth import Principal
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


def _need_token_scope(caller: Principal, *, own_lineage: bool) -> None:
    """The one scope rule of token management, for issuing and revoking alike. A token may always act on its own
    lineage: revoke itself or a token issued with it (generation by generation), and issue itself a child (no
    broader, expiring no later, revoked with it: ``enclave.accounts.tokens.issue``). Any other token — another of
    its own account's, its parent included, or another account's — needs scope ``*`` or accounts.manage, the
    scope token management needs for another account; the role check for another account stays in the service.
    Otherwise a ``data.read`` WebDAV password could revoke its account's ``*`` token (review, scope_revoke)."""
    if not own_lineage:
        caller.need_scope(Permission.ACCOUNTS_MANAGE)


@router.post("", status_code=201, summary="Issue a token (for yourself, or for anyone with accounts.manage)")
def issue(body: Issue, caller: Caller, tokens: Tokens) -> IssuedToken:
    # A token issued for the caller with the caller's token is its child; without a token (never through the API)
    # or for another account, the scope is needed.
    _need_token_scope(caller, own_lineage=body.username in (None, caller.username) and caller.key is not None)
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
    _need_token_scope(caller, own_lineage=caller.key is not None and tokens.derives_from(key, caller.key))
    tokens.revoke(caller.username, key, reason=reason)
    return Revoked(key=key, revoked=True)
