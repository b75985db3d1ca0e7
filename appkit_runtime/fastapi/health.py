"""`/healthz`, `/readyz` and `/metrics`: what orchestrators and Prometheus ask a service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from appkit_runtime.db import ping_database
from appkit_runtime.settings import get_async_redis_instance, get_settings

# The Redis dependency names the runtime itself uses; each must answer for /readyz.
RUNTIME_REDIS_NAMES = ("ratelimit", "authentication_cache", "metrics")
CHECK_TIMEOUT_SECONDS = 2.0

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive and its event loop answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """200 when every Redis and database the service uses answers, else 503 naming them."""
    checks = await readiness_checks(request.app.state.appkit_databases)
    ready = all(result == "ok" for result in checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    headers = {} if ready else {"Retry-After": "5"}
    return JSONResponse(body, status_code=200 if ready else 503, headers=headers)


@router.get("/metrics")
async def metrics() -> Response:
    """Prometheus text exposition of the process's registry."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


async def readiness_checks(databases: Iterable[str]) -> dict[str, str]:
    """`{"redis": "ok", "database:default": "ConnectionRefusedError", ...}`, checked at once.

    Redis names that share a URL are probed once, under the first name's label.
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
    return {
        label: "ok" if not isinstance(result, BaseException) else type(result).__name__
        for label, result in zip(probes, results, strict=True)
    }
