"""The FastAPI application: API under /api/v1, dashboard pages at /, Prometheus metrics at /metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute
from starlette.requests import HTTPConnection

from enclave.api import errors
from enclave.api.service import Service

API_PREFIX = "/api/v1"


def route_template(request: HTTPConnection) -> str:
    """The matched route as a template (``/api/v1/accounts/{username}``). Metrics are labelled by it, never by
    the raw path: usernames in paths would make the label set grow without bound."""
    if not isinstance(request.scope.get("route"), APIRoute):
        return "unmatched"
    params = {str(v): k for k, v in request.scope.get("path_params", {}).items()}
    return "/".join("{" + params[seg] + "}" if seg in params else seg for seg in request.url.path.split("/"))


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

    @app.middleware("http")
    async def time_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        name = route_template(request)
        service.metrics.api_latency.labels(request.method, name, str(response.status_code)).observe(
            time.perf_counter() - started)
        return response

    return app
