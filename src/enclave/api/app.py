"""The FastAPI application: API under /api/v1, dashboard pages at /, Prometheus metrics at /metrics."""

from __future__ import annotations

import time

from fastapi import FastAPI, Response
from fastapi.routing import APIRoute
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from enclave.api import errors
from enclave.api.metrics import Metrics
from enclave.api.service import Service

API_PREFIX = "/api/v1"


def route_template(request: HTTPConnection) -> str:
    """The matched route as a template (``/api/v1/accounts/{username}``). Metrics are labelled by it, never by
    the raw path: usernames in paths would make the label set grow without bound."""
    if not isinstance(request.scope.get("route"), APIRoute):
        return "unmatched"
    params = {str(v): k for k, v in request.scope.get("path_params", {}).items()}
    return "/".join("{" + params[seg] + "}" if seg in params else seg for seg in request.url.path.split("/"))


class TimingMiddleware:
    """API latency per method, route template and status. Plain ASGI rather than ``@app.middleware``: the
    latter wraps every response in extra tasks and streams, a cost every request would pay."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

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
            name = route_template(HTTPConnection(scope))
            self.metrics.api_latency.labels(scope["method"], name, str(status)).observe(
                time.perf_counter() - started)


def create_app(service: Service) -> FastAPI:
    """One app over one service. Routers of concepts that are not installed are simply absent."""
    from enclave.api import dashboard
    from enclave.api.routes import ROUTERS

    app = FastAPI(
        title="enclave control plane",
        version="1",
        description="Accounts and roles, lifecycle transitions, notebook options, pools and nodes, the capacity "
        "broker (plan, actions, manual BCS procedures), twin runs, journal and operations reports. "
        "Authenticate with `Authorization: Bearer <token>`.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.service = service
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(dashboard.router)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        from enclave.api.metrics import CONTENT_TYPE

        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE)

    app.add_middleware(TimingMiddleware, metrics=service.metrics)

    return app
