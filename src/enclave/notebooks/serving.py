"""Serving a File Workspace protocol (WebDAV, VOSpace) with cheroot: one copy of the server settings both use,
the request-header limit and the access log among them, and of the background runner the tests and embedders
use."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from cheroot import wsgi

from enclave.logs import event, logger

ACCOUNT = "enclave.account"
"""The WSGI environ key where each protocol leaves the authenticated account (an AccountLike) for the log."""

MAX_HEADER_BYTES = 64 * 1024
"""Twice nginx's default total (large_client_header_buffers 4 8k, https://nginx.org/en/docs/http/
ngx_http_core_module.html#large_client_header_buffers): room for long lock tokens in If/Destination headers,
while one unauthenticated request can no longer make the server buffer megabytes (cheroot's default is 0,
no limit: cheroot/server.py, HTTPServer.max_request_header_size)."""

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class AccessLog:
    """One log event per request once its body is sent: method, path without the query string, status,
    duration and the caller's account name — never the Authorization header, whose Basic password or Bearer
    value is a token."""

    def __init__(self, app: WsgiApp, name: str) -> None:
        self.app = app
        self.log = logger(f"{name}.access")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        status: list[str] = []

        def starting(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[:] = [code]
            return start_response(code, headers, exc_info) if exc_info else start_response(code, headers)

        body = self.app(environ, starting)
        return Closing(body, lambda: self._done(environ, status, started))

    def _done(self, environ: dict[str, Any], status: list[str], started: float) -> None:
        account = environ.get(ACCOUNT)
        code = status[0].split(" ", 1)[0] if status else "500"
        event(self.log, logging.INFO, "request", method=environ.get("REQUEST_METHOD"),
              path=environ.get("PATH_INFO", ""), status=int(code) if code.isdigit() else code,
              duration_ms=round((time.perf_counter() - started) * 1000, 1),
              account=getattr(account, "username", None))


class Closing:
    """A response body that calls ``done`` when the server closes it (PEP 3333: the server calls close())."""

    def __init__(self, body: Iterable[bytes], done: Callable[[], None]) -> None:
        self.body, self.done = body, done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.done()


def make_server(app: WsgiApp, host: str, port: int, threads: int = 4, name: str = "workspace") -> wsgi.Server:
    server = wsgi.Server((host, port), AccessLog(app, name), numthreads=threads)
    server.max_request_header_size = MAX_HEADER_BYTES  # cheroot's default, 0, means no limit
    return server


@dataclass
class Running:
    server: wsgi.Server
    thread: threading.Thread

    @property
    def url(self) -> str:
        host, port = cast(tuple[str, int], self.server.bind_addr)
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(timeout=10)


def start(app: WsgiApp, name: str, host: str = "127.0.0.1", port: int = 0, poll_seconds: float = 0.5) -> Running:
    """Serve in a background thread (port 0: pick a free one). For tests and embedding; a shorter
    ``poll_seconds`` makes ``stop()`` return sooner (cheroot checks for shutdown that often)."""
    server = make_server(app, host, port, name=name.removeprefix("enclave-"))
    server.expiration_interval = poll_seconds
    server.prepare()
    thread = threading.Thread(target=server.serve, name=name, daemon=True)
    thread.start()
    return Running(server, thread)
