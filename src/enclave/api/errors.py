"""Turn every failure into one JSON shape with the status enclave.errors assigns to it.

Body: ``{"error": "<ErrorType>", "message": "...", "problems": [{"where", "what", "fix"}]}``. Request bodies
that fail FastAPI/pydantic validation are reported as an ``InputError`` would be, so a client sees one shape
whatever layer refused it.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from enclave.api.auth import ACCOUNT_KEY
from enclave.errors import EnclaveError, InputError, Problem, Unauthenticated, http_status
from enclave.logs import event, logger

log = logger("api")


def error_body(error: EnclaveError) -> dict[str, Any]:
    return {
        "error": type(error).__name__,
        "message": str(error),
        "problems": [{"where": p.where, "what": p.what, "fix": p.fix} for p in error.problems],
    }


def error_response(error: EnclaveError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="enclave"'} if isinstance(error, Unauthenticated) else None
    return JSONResponse(error_body(error), status_code=http_status(error), headers=headers)


def validation_problems(errors: Any) -> list[Problem]:
    out = []
    for e in errors:
        loc = ".".join(str(x) for x in e.get("loc", ()))
        out.append(Problem(where=loc or "request", what=str(e.get("msg", "invalid value")),
                           fix="send a value of the documented type (see /openapi.json)"))
    return out or [Problem(where="request", what="the request is malformed")]


INTERNAL_ERROR = "InternalServerError"
"""The ``error`` of a 500: a failure no enclave error describes (a bug)."""


def internal_error_body(path: str) -> dict[str, Any]:
    problem = Problem(where=path, what="the server failed while handling this request",
                      fix="try again; if it persists, report it with the time: the server's log has the traceback")
    return {"error": INTERNAL_ERROR, "message": str(problem),
            "problems": [{"where": problem.where, "what": problem.what, "fix": problem.fix}]}


def install(app: FastAPI) -> None:
    async def on_enclave_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, EnclaveError)
        # Every refusal with its cause (the access log has the status only); the caller by account name.
        event(log, logging.WARNING, "request refused", method=request.method, path=request.url.path,
              status=http_status(exc), error=type(exc).__name__, cause=str(exc),
              account=request.scope.get(ACCOUNT_KEY))
        return error_response(exc)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(InputError(validation_problems(exc.errors())))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        body = {"error": "HTTPError", "message": str(exc.detail),
                "problems": [{"where": request.url.path, "what": str(exc.detail), "fix": ""}]}
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Anything else is a fault of the server: the traceback goes to the log, the client gets the one shape
        # with nothing of the exception's text (it may hold what the client must not see).
        log.error("request failed", exc_info=exc, extra={"fields": {
            "method": request.method, "path": request.url.path, "status": 500, "error": type(exc).__name__,
            "account": request.scope.get(ACCOUNT_KEY)}})
        return JSONResponse(internal_error_body(request.url.path), status_code=500)

    app.add_exception_handler(EnclaveError, on_enclave_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    # Starlette answers with this one from its outermost middleware, then re-raises for the server to see.
    app.add_exception_handler(Exception, on_unexpected)
