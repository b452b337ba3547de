"""One HTTP call to the enclave API with a context's token, its problem body turned back into the
``enclave.errors`` exception the server raised (``enclave.api.errors`` writes ``{"error", "message",
"problems"}``), so a command run through the API fails with the same message and exit code as one run locally."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from enclave.client.config import Context
from enclave.errors import (
    Conflict,
    EnclaveError,
    ExternalError,
    InputError,
    IntegrityError,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    Problem,
    SpecError,
    Unauthenticated,
)

API_PREFIX = "/api/v1"
"""Where the routes live (``enclave.api.app.API_PREFIX``)."""

_SINGLE: dict[str, type[EnclaveError]] = {cls.__name__: cls for cls in (
    NotFound, PermissionDenied, Unauthenticated, InvalidTransition, Conflict, IntegrityError, ExternalError,
    EnclaveError)}
_MANY: dict[str, type[InputError]] = {"InputError": InputError, "SpecError": SpecError}
TIMEOUT_S = 30.0


def error_from(response: httpx.Response) -> EnclaveError:
    """The error a problem body describes; a reply that is not one becomes an ExternalError naming the status."""
    try:
        body = response.json()
        problems = [Problem(str(p.get("where", "")), str(p["what"]), str(p.get("fix", "")))
                    for p in body.get("problems") or []]
        name = str(body["error"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return ExternalError(f"{response.request.method} {response.request.url} answered {response.status_code} "
                             "without a problem body", where="API", fix="check that the context's server is enclave")
    if name in _MANY and problems:
        return _MANY[name](problems)
    first = problems[0] if problems else Problem("", str(body.get("message", "")))
    return _SINGLE.get(name, EnclaveError)(first.what, where=first.where, fix=first.fix)


def check_actor(context: Context, actor: str) -> None:
    """A call names its actor as the local services do; over the API the token decides, so another name is refused
    rather than silently replaced."""
    if actor != context.username:
        raise PermissionDenied(f"context {context.name!r} acts as {context.username!r} (its token's account), not "
                               f"{actor!r}", where=f"--as {actor}",
                               fix="drop --as, or use a context whose token belongs to that account")


class Api:
    """The API of one context: every call carries the context's token."""

    def __init__(self, context: Context, *, transport: httpx.BaseTransport | None = None) -> None:
        self.context = context
        self.username = context.username
        self._http = httpx.Client(base_url=context.server.rstrip("/") + API_PREFIX, timeout=TIMEOUT_S,
                                  headers={"Authorization": f"Bearer {context.token}"}, transport=transport)

    def close(self) -> None:
        self._http.close()

    def acting(self, actor: str) -> None:
        check_actor(self.context, actor)

    def call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
             read_timeout: float | None = None) -> Any:
        """``read_timeout``: how long to wait for the answer when the server is known to take longer than
        ``TIMEOUT_S`` (a drain it waits out)."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        timeout = httpx.Timeout(TIMEOUT_S, read=read_timeout) if read_timeout is not None else httpx.USE_CLIENT_DEFAULT
        try:
            response = self._http.request(method, path, json=json, params=query, timeout=timeout)
        except httpx.HTTPError as exc:
            raise ExternalError(f"cannot reach {self.context.server}: {exc}", where=f"context {self.context.name}",
                                fix="check the server URL (`enclave config get-contexts`) and that it runs") from exc
        if response.is_success:
            return response.json()
        raise error_from(response)

    def lines(self, path: str, *, params: dict[str, Any] | None = None) -> Iterator[str]:
        """A text/plain response line by line as the server streams it (a followed pod log: no read timeout)."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            with self._http.stream("GET", path, params=query, timeout=httpx.Timeout(TIMEOUT_S, read=None)) as response:
                if not response.is_success:
                    response.read()
                    raise error_from(response)
                yield from response.iter_lines()
        except httpx.HTTPError as exc:
            raise ExternalError(f"cannot reach {self.context.server}: {exc}", where=f"context {self.context.name}",
                                fix="check the server URL (`enclave config get-contexts`) and that it runs") from exc
