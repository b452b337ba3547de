"""One HTTP call to the enclave API with a context's token, its problem body turned back into the
``enclave.errors`` exception the server raised (``enclave.api.errors`` writes ``{"error", "message",
"problems"}``), so a command run through the API fails with the same message and exit code as one run locally."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import httpx

from enclave.client.config import Context
from enclave.errors import _CODES, EnclaveError, ExternalError, InputError, PermissionDenied, Problem

API_PREFIX = "/api/v1"
"""Where the routes live (``enclave.api.app.API_PREFIX``)."""

TIMEOUT_S = 30.0


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1: a host whose traffic never leaves this machine."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def plain_http_problem(server: str) -> str | None:
    """Why ``server`` may not carry a token (None: it may). A bearer token is a password anyone who sees it can
    use, so it never crosses the network in clear text: RFC 6750 §5.3 — clients "MUST always use TLS (https) or
    equivalent transport security when making requests with bearer tokens". Plain ``http://`` is allowed to a
    loopback host only (``is_loopback``: a server on this machine, or an ``ssh -L`` / ``kubectl port-forward``
    tunnel, which is itself the transport security)."""
    try:
        url = httpx.URL(server)
    except httpx.InvalidURL:
        return None  # not a URL at all: enclave.client.config.server_problem says so
    if url.scheme == "http" and not is_loopback(url.host):
        return (f"{server} is plain http to {url.host}, which is not loopback: the token would cross the network "
                "in clear text (RFC 6750 §5.3: bearer tokens only over TLS)")
    return None


NOT_ENCLAVE = "check that the context's server is enclave"


def _error_classes() -> dict[str, type[EnclaveError]]:
    """Every public error class by name: ``enclave.errors``'s and their subclasses wherever they are defined
    (``enclave.services.broker.DrainTimedOut``), walked from the class hierarchy when asked, so a new error class
    needs no entry here. The first of a name wins (breadth first: ``enclave.errors``'s own)."""
    found: dict[str, type[EnclaveError]] = {}
    generation: list[type[EnclaveError]] = [EnclaveError]
    while generation:
        for cls in generation:
            if not cls.__name__.startswith("_"):
                found.setdefault(cls.__name__, cls)
        generation = [sub for cls in generation for sub in cls.__subclasses__()]
    return found


def _class_for_status(status: int) -> type[EnclaveError]:
    """The inverse of the server's status mapping (``enclave.errors._CODES``, the one table of exit codes and
    statuses): the first class the table gives ``status``, so the exit code is the one the error has locally
    (422 reads as InputError; IntegrityError, also 422, is known by name). A status the table never gives: 5xx
    the server failed (ExternalError, as for a reply without a problem body), else the base EnclaveError."""
    for cls, (_, code) in _CODES.items():
        if code == status:
            return cls
    return ExternalError if status >= 500 else EnclaveError


def _build(cls: type[EnclaveError], problems: list[Problem], message: str) -> EnclaveError:
    first = problems[0] if problems else Problem("", message)
    if issubclass(cls, InputError):
        return cls(problems or [first])
    return cls(first.what, where=first.where, fix=first.fix)


def error_from(response: httpx.Response) -> EnclaveError:
    """The error a problem body describes: its class by name, or, for a name this client does not know, the class
    the reply's status stands for (so the exit code is the same as locally); a reply that is not a problem body
    becomes an ExternalError naming the status."""
    try:
        body = response.json()
        problems = [Problem(str(p.get("where", "")), str(p["what"]), str(p.get("fix", "")))
                    for p in body.get("problems") or []]
        name = str(body["error"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return ExternalError(f"{response.request.method} {response.request.url} answered {response.status_code} "
                             "without a problem body", where="API", fix=NOT_ENCLAVE)
    message = str(body.get("message", ""))
    known = _error_classes().get(name)
    if known is not None:
        try:
            return _build(known, problems, message)
        except TypeError:  # a class with a constructor of its own: the status still gives the exit code
            pass
    return _build(_class_for_status(response.status_code), problems, message)


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
        """Refuses a context whose server is plain http to a host that is not loopback (``plain_http_problem``,
        RFC 6750 §5.3), as `enclave login` does: a hand-edited config does not send the token in clear text
        either."""
        problem = plain_http_problem(context.server)
        if problem is not None:
            raise InputError([Problem(f"context {context.name}", problem,
                                      "use https:// (edit the server in the config, or `enclave login https://… "
                                      f"--context {context.name}` again), or reach the server through a tunnel "
                                      "to localhost")])
        self.context = context
        self.username = context.username
        try:
            self._http = httpx.Client(base_url=context.server.rstrip("/") + API_PREFIX, timeout=TIMEOUT_S,
                                      headers={"Authorization": f"Bearer {context.token}"}, transport=transport)
        except httpx.InvalidURL as exc:  # not an httpx.HTTPError
            raise InputError([Problem(f"context {context.name}", f"server {context.server!r} is not a valid URL "
                                      f"({exc})", "fix the server URL (`enclave config get-contexts`)")]) from exc

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
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL is not an HTTPError
            raise self._unreachable(exc) from exc
        if response.is_success:
            try:
                return response.json()
            except ValueError as exc:  # HTML (a proxy's sign-in page, a web server), or no body
                raise self.not_enclave(response, "not JSON") from exc
        raise error_from(response)

    def not_enclave(self, response: httpx.Response, what: str) -> ExternalError:
        """A 2xx reply that is not what the enclave API answers (``what``)."""
        kind = response.headers.get("content-type", "no content type")
        return ExternalError(f"{response.request.method} {response.request.url} answered {response.status_code} "
                             f"({kind}) with {what}: not the enclave API's answer", where=f"context "
                             f"{self.context.name}", fix=f"{NOT_ENCLAVE} (its URL is the base URL, without /api/v1)")

    def _unreachable(self, exc: Exception) -> ExternalError:
        return ExternalError(f"cannot reach {self.context.server}: {exc}", where=f"context {self.context.name}",
                             fix="check the server URL (`enclave config get-contexts`) and that it runs")

    def lines(self, path: str, *, params: dict[str, Any] | None = None, follow: bool = False) -> Iterator[str]:
        """A text/plain response line by line as the server streams it. ``follow`` (a followed pod log, which may
        stay silent for as long as the pod does): no read timeout; otherwise ``TIMEOUT_S``, as every call."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        timeout = httpx.Timeout(TIMEOUT_S, read=None) if follow else httpx.Timeout(TIMEOUT_S)
        try:
            with self._http.stream("GET", path, params=query, timeout=timeout) as response:
                if not response.is_success:
                    response.read()
                    raise error_from(response)
                yield from response.iter_lines()
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._unreachable(exc) from exc
