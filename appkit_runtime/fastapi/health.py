"""`/healthz`, `/readyz` and `/metrics`: what orchestrators and Prometheus ask a service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from appkit_runtime.db import ping_database
from appkit_runtime.schema import SchemaCheck
from appkit_runtime.settings import get_async_redis_instance, get_settings

# The Redis dependency names the runtime itself uses; each must answer for /readyz.
RUNTIME_REDIS_NAMES = ("ratelimit", "authentication_cache", "metrics")
CHECK_TIMEOUT_SECONDS = 2.0


async def healthz(request: Request) -> JSONResponse:
    """The process is alive and its event loop answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """200 when every Redis and database the service uses answers, else 503 naming them."""
    state = request.app.state
    checks = await readiness_checks(state.appkit_databases, getattr(state, "appkit_schema", None))
    ready = all(result == "ok" for result in checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    headers = {} if ready else {"Retry-After": "5"}
    return JSONResponse(body, status_code=200 if ready else 503, headers=headers)


async def metrics(request: Request) -> Response:
    """Prometheus text exposition of the process's registry."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


HEALTH_ROUTES = {
    route.path: route
    for route in (
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    )
}

# Outside the router, so answered here as FastAPI answers a route's wrong method.
_METHOD_NOT_ALLOWED = JSONResponse(
    {"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": "GET, HEAD"}
)


def health_route(scope: Scope) -> Route | None:
    """The health route an HTTP request asks for, found by one dict lookup, else None.

    Served before the router (`RuntimeMiddleware`): as routes they cost every other request
    their matching, about 8 % of a bare endpoint's work in FastAPI 0.165 (15 % as an included
    router); here they cost a lookup.
    """
    path: str = scope["path"]
    # Without the `root_path` a proxy mounted the service under.
    root_path = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    return HEALTH_ROUTES.get(path)


async def answer_health(route: Route, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve `route` for this request, or 405 for a method other than GET and HEAD."""
    scope["route"] = route  # labels the request metrics, as the router would
    if scope["method"] in ("GET", "HEAD"):
        await route.handle(scope, receive, send)
    else:
        await _METHOD_NOT_ALLOWED(scope, receive, send)


async def readiness_checks(
    databases: Iterable[str], schema: SchemaCheck | None = None
) -> dict[str, str]:
    """`{"redis": "ok", "database:default": "ConnectionRefusedError", ...}`, checked at once.

    Redis names that share a URL are probed once, under the first name's label. A database
    that answers but is behind its migrations' head reads `schema behind: <current> != <head>`.
    """
    settings = get_settings()
    probes: dict[str, Awaitable[object]] = {}
    seen_urls: set[str] = set()
    for name in RUNTIME_REDIS_NAMES:
        url, _ = settings.redis_url_for(name)
        if url not in seen_urls:
            seen_urls.add(url)
            label = "redis" if not probes else f"redis:{name}"
            probes[label] = get_async_redis_instance(name).ping()
    probes.update({f"database:{name}": ping_database(name) for name in databases})
    results = await asyncio.gather(
        *(asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS) for probe in probes.values()),
        return_exceptions=True,
    )
    checks = {
        label: "ok" if not isinstance(result, BaseException) else type(result).__name__
        for label, result in zip(probes, results, strict=True)
    }
    label = f"database:{schema.database}" if schema is not None else ""
    if schema is not None and checks.get(label) == "ok":
        try:
            checks[label] = await asyncio.wait_for(schema(), CHECK_TIMEOUT_SECONDS)
        except Exception as error:  # readiness reports a failure, it never raises one
            checks[label] = type(error).__name__
    return checks
