"""`get_fastapi_app`: a FastAPI app with the runtime's lifespan, health routes and metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy.exc import DBAPIError, DisconnectionError

from appkit_runtime.errors import ConfigurationError, DatabaseUnavailable
from appkit_runtime.fastapi.access_log import AccessLog
from appkit_runtime.fastapi.authentication import AuthDenied, denied_response
from appkit_runtime.fastapi.key_gate import UnknownKeyGate
from appkit_runtime.fastapi.lifespan import Lifespan, runtime_lifespan
from appkit_runtime.fastapi.openapi import rate_limit_openapi
from appkit_runtime.fastapi.runtime_middleware import RuntimeMiddleware
from appkit_runtime.fastapi.tracing import instrument_tracing
from appkit_runtime.log_config import configure_logging, json_access_line
from appkit_runtime.request_context import REQUEST_ID_HEADER, current_request_id
from appkit_runtime.settings import use_service_name

logger = logging.getLogger("appkit_runtime")


def get_fastapi_app(
    name: str,
    lifespan: Lifespan | None = None,
    *,
    databases: Sequence[str] = ("default",),
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A FastAPI app named `name` whose lifespan wraps `lifespan` in the runtime's own.

    `name` is the default for `APPKIT_SERVICE_NAME`. `databases` are the database names
    pinged at start-up and by `/readyz` (pass `()` for a service without a database).
    Bad settings stop here with one line naming the variable.
    """
    try:
        settings = use_service_name(name)
        configure_logging(settings)
        server_spans = instrument_tracing(settings)
    except ConfigurationError as error:
        raise SystemExit(f"appkit: {error}") from None
    fastapi_kwargs.setdefault("title", name)
    app = FastAPI(lifespan=runtime_lifespan(lifespan), **fastapi_kwargs)
    app.state.appkit_databases = tuple(databases)
    rate_limit_openapi(app)
    app.add_middleware(
        RuntimeMiddleware,
        service=settings.service_name,
        state_owner=app,
        access_log=AccessLog(json_access_line()) if settings.access_log else None,
        server_spans=server_spans,
    )
    # Outermost: a flood of unknown keys is queued before any per-request work is done.
    app.add_middleware(UnknownKeyGate)
    app.add_exception_handler(AuthDenied, denied_response)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _internal_error)
    app.add_exception_handler(ConnectionError, _unavailable)
    app.add_exception_handler(DatabaseUnavailable, _database_unavailable)
    app.add_exception_handler(DBAPIError, _database_unavailable)
    app.add_exception_handler(DisconnectionError, _database_unavailable)
    return app


async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's 422 body, written as ASCII JSON so that any input it echoes can be sent."""
    # A body's JSON may hold a lone surrogate (`\ud800`): UTF-8 cannot encode it, so
    # FastAPI's own handler would answer 500 instead of this 422.
    body = json.dumps({"detail": jsonable_encoder(exc.errors())}, separators=(",", ":"))
    return Response(body, status_code=422, media_type="application/json")


async def _internal_error(request: Request, exc: Exception) -> Response:
    """Starlette's plain 500, with the request's id (it is sent outside `RuntimeMiddleware`)."""
    request_id = current_request_id()
    headers = {REQUEST_ID_HEADER: request_id} if request_id is not None else None
    return PlainTextResponse("Internal Server Error", status_code=500, headers=headers)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("%s %s: dependency unavailable (%s)", request.method, request.url.path, exc)
    return JSONResponse(
        {"detail": "A dependency of this service is unavailable; retry later."},
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DBAPIError) and not exc.connection_invalidated:
        if not isinstance(exc.orig, ConnectionError | OSError):
            raise exc
    logger.warning("%s %s: database unavailable (%s)", request.method, request.url.path, exc)
    return JSONResponse(
        {"detail": "The database is unavailable; retry later."},
        status_code=503,
        headers={"Retry-After": "5"},
    )
