"""The FastAPI application: API under /api/v1, dashboard pages at /, Prometheus metrics at /metrics."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping

from fastapi import APIRouter, FastAPI, Response
from fastapi_offline import FastAPIOffline
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from enclave.api import dashboard, errors
from enclave.api.auth import ACCOUNT_KEY
from enclave.api.metrics import CONTENT_TYPE, Metrics
from enclave.api.routes import ROUTERS
from enclave.api.service import Service
from enclave.logs import event, logger

access_log = logger("api.access")

API_PREFIX = "/api/v1"
UNMATCHED = "unmatched"
"""The route label of a request no route matched (a 404 for an unknown path): one label, whatever the path."""


def full_templates(routers: Iterable[APIRouter], prefix: str) -> dict[int, str]:
    """The full path template of each route of ``routers`` once included under ``prefix``, by the route object's
    id. FastAPI 0.165 includes a router as a branch and leaves the router's own route in ``scope["route"]``, whose
    ``path`` lacks the prefix it was included under (``/accounts/{username}``, not ``/api/v1/accounts/{username}``);
    an older FastAPI copied each route with the prefix in its path, and such a route is simply not in this map."""
    templates: dict[int, str] = {}
    for router in routers:
        for route in router.routes:
            path = getattr(route, "path", None)
            if isinstance(path, str):
                templates[id(route)] = prefix + path
    return templates


def route_template(request: HTTPConnection, templates: Mapping[int, str] | None = None) -> str:
    """The matched route's own path template (``/api/v1/accounts/{username}``): the route the router matched, which
    Starlette leaves in ``scope["route"]`` (a partial match, 405, included), with the prefix it was included under
    (``templates``, from ``full_templates``); ``"unmatched"`` when no route matched. Metrics are labelled by it,
    never by the raw path: usernames in paths would make the label set grow without bound. Not rebuilt from the
    path and its parameters' values: ``/api/v1/accounts/accounts`` read ``/api/v1/{username}/{username}``
    (review, metrics_label)."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    if route is None or not isinstance(path, str):
        return UNMATCHED
    return (templates or {}).get(id(route), path)


class TimingMiddleware:
    """API latency per method, route template and status. Plain ASGI rather than ``@app.middleware``: the
    latter wraps every response in extra tasks and streams, a cost every request would pay."""

    def __init__(self, app: ASGIApp, metrics: Metrics, templates: Mapping[int, str] | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = dict(templates or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            took = time.perf_counter() - started
            name = route_template(HTTPConnection(scope), self.templates)
            self.metrics.api_latency.labels(scope["method"], name, str(status)).observe(took)
            # The path only: a query string may carry what must not be kept (tokens pasted into a URL).
            event(access_log, logging.INFO, "request", method=scope["method"], path=scope["path"], status=status,
                  duration_ms=round(took * 1000, 1), account=scope.get(ACCOUNT_KEY))


MAX_BODY_BYTES = 1 << 20
"""No request of this API needs more than a few kilobytes; a megabyte is generous and bounds memory."""


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes with 413 before they are read into memory, whether the
    client declares a Content-Length or streams the body chunked."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(send)
            return
        seen = 0
        too_large = False

        async def counting() -> Message:
            nonlocal seen, too_large
            if too_large:
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # Stop reading here; whatever the app answers to the cut body is replaced by the 413.
                    too_large = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        refused = passed = False

        async def sending(message: Message) -> None:
            nonlocal refused, passed
            if not too_large or passed:  # a response already under way is left alone
                passed = passed or message["type"] == "http.response.start"
                await send(message)
            elif not refused:
                refused = True
                await self._refuse(send)

        await self.app(scope, counting, sending)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": "HTTPError", "message": f"request body over {self.limit} bytes",
                           "problems": [{"where": "request body", "what": f"larger than {self.limit} bytes",
                                         "fix": "send a smaller body"}]}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def create_app(service: Service) -> FastAPI:
    """One app over one running control plane."""
    # Swagger UI and ReDoc from the assets fastapi-offline ships in its wheel, not from a CDN: an enclave
    # behind the seed's local registry has no internet, and the CDN page would be blank (issue 18).
    app = FastAPIOffline(
        title="enclave control plane",
        version="1",
        description="Accounts and roles, lifecycle transitions, notebook options, pools and nodes, the capacity "
        "broker (plan, actions, manual BCS procedures), twin runs, journal and operations reports. "
        "Authenticate with `Authorization: Bearer <token>`.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=f"{API_PREFIX}/redoc",
        static_url=f"{API_PREFIX}/docs-assets",
    )
    app.state.service = service
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(dashboard.router)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE)

    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(TimingMiddleware, metrics=service.metrics, templates=full_templates(ROUTERS, API_PREFIX))

    return app
