"""Bearer-token authentication.

Every request re-verifies its token against the database through ``enclave.accounts.tokens.verify``: a revoked
token, an expired one, or an account that departed since the token was issued is refused on the very next
request, not when the token would have expired. Nothing about a caller is cached between requests.

The API takes the token from ``Authorization: Bearer …`` only. Dashboard pages also accept it from an
HttpOnly cookie set by ``/login`` (browsers cannot add headers to page loads); the cookie is only honoured on
read-only pages, so a third-party page cannot make a browser change state with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from enclave.access.permissions import Permission
from enclave.accounts.types import Caller
from enclave.api.service import Service, get_service
from enclave.errors import PermissionDenied, Unauthenticated
from enclave.services.tokens import acting_for

ACCOUNT_KEY = "enclave.account"
"""Where the authenticated caller's account name is left in the ASGI scope, for the access log."""

COOKIE = "enclave_token"


@dataclass(frozen=True)
class Principal:
    """The caller of one request, as verified from its token on this very request."""

    username: str
    scopes: frozenset[str]
    permissions: frozenset[Permission]
    """The account's permissions narrowed to the token's scopes."""
    delegated_by: str | None = None
    """Who issued the token, when someone other than its holder did (see ``accounts.types.Caller``)."""
    key: str | None = None
    """The token's key: the parent of a token issued with this request."""

    def allows(self, permission: Permission) -> bool:
        return permission in self.permissions

    def need_scope(self, *permissions: Permission) -> None:
        """Refuse unless the token's scopes include one of ``permissions``. The role check itself stays in the
        service (the same one the CLI calls), so a scope can only narrow what the account may do."""
        wanted = [p.value for p in permissions]
        if "*" not in self.scopes and not self.scopes & set(wanted):
            raise PermissionDenied(f"this token's scopes ({', '.join(sorted(self.scopes))}) do not include "
                                   f"{' or '.join(wanted)}", where="Authorization",
                                   fix=f"use a token issued with scope {' or '.join(wanted)}, or *")
        # Any of several: the service checks the account's roles for any of them, so the one the scope allows
        # and the one the roles give must be the same (review, stop 48: a token scoped to images.vet submitted
        # an image on its account's services.deploy, which the token was scoped away from).
        if len(permissions) > 1 and "*" not in self.scopes and not self.permissions & set(permissions):
            raise PermissionDenied(f"this token's scopes ({', '.join(sorted(self.scopes))}) and {self.username}'s "
                                   f"roles share none of {' or '.join(wanted)}", where="Authorization",
                                   fix="use a token issued with a scope among those your roles give, or *")


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated("the Authorization header is not a bearer token", where="Authorization header",
                              fix="send 'Authorization: Bearer <token>' with a token from `enclave tokens issue`")
    return value.strip()


def _principal(caller: Caller) -> Principal:
    return Principal(username=caller.username, scopes=caller.scopes, delegated_by=caller.delegated_by,
                     key=caller.key, permissions=frozenset(Permission(p) for p in caller.permissions))


def verify_token(service: Service, token: str) -> Principal:
    return _principal(service.factory.tokens.authenticate(token))


def _missing() -> Unauthenticated:
    return Unauthenticated("no credential was presented", where="Authorization header",
                           fix="send 'Authorization: Bearer <token>' with a token from `enclave tokens issue`")


def _known(request: Request, principal: Principal) -> Principal:
    """Name the caller for the access log (``enclave.api.app``): the account, never the credential."""
    request.scope[ACCOUNT_KEY] = principal.username
    return principal


async def api_principal(request: Request, service: Service = Depends(get_service)) -> Principal:  # noqa: B008
    """The caller of an API request. Async so that it runs in the request's own context, where it records the
    token's delegation for the services the route then calls (``acting_for``); the verification itself, a few
    queries, runs in the thread pool as a sync dependency would."""
    token = _bearer(request)
    if token is None:
        raise _missing()
    caller = await run_in_threadpool(service.factory.tokens.authenticate, token)
    acting_for(caller)
    return _known(request, _principal(caller))


def page_principal(request: Request, service: Service = Depends(get_service)) -> Principal:  # noqa: B008
    token = _bearer(request) or request.cookies.get(COOKIE)
    if not token:
        raise _missing()
    return _known(request, verify_token(service, token))
