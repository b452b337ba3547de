"""Serving a File Workspace protocol (WebDAV, VOSpace) with cheroot: one copy of the server settings both use,
the request-header limit among them, and of the background runner the tests and embedders use."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from cheroot import wsgi

MAX_HEADER_BYTES = 64 * 1024
"""Twice nginx's default total (large_client_header_buffers 4 8k, https://nginx.org/en/docs/http/
ngx_http_core_module.html#large_client_header_buffers): room for long lock tokens in If/Destination headers,
while one unauthenticated request can no longer make the server buffer megabytes (cheroot's default is 0,
no limit: cheroot/server.py, HTTPServer.max_request_header_size)."""

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def make_server(app: WsgiApp, host: str, port: int, threads: int = 4) -> wsgi.Server:
    server = wsgi.Server((host, port), app, numthreads=threads)
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
    server = make_server(app, host, port)
    server.expiration_interval = poll_seconds
    server.prepare()
    thread = threading.Thread(target=server.serve, name=name, daemon=True)
    thread.start()
    return Running(server, thread)
