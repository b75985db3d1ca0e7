"""Fixtures of the rate-limit tests: an isolated key prefix and tiny apps to limit."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import redis
from fastapi import Depends, FastAPI, Request

from appkit_runtime.fastapi.ratelimit import ProjectRateLimiter
from appkit_runtime.redis_pools import close_redis_connections
from appkit_runtime.settings import get_settings, parse_rate_limit
from appkit_runtime.tokens import ProjectToken


@pytest.fixture(autouse=True)
async def redis_prefix(monkeypatch: pytest.MonkeyPatch, real_redis: str) -> AsyncIterator[str]:
    """A key prefix of this test's own on the shared Redis; its keys are deleted afterwards."""
    prefix = f"test-rl-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("APPKIT_REDIS_PREFIX", prefix)
    monkeypatch.setenv("APPKIT_RATELIMIT_DEFAULT", "100/60")
    for name in ("REDIS_URL_RATELIMIT", "RATELIMIT_HEADERS", "RATELIMIT_FAIL_OPEN"):
        monkeypatch.delenv(f"APPKIT_{name}", raising=False)
    get_settings.cache_clear()
    yield prefix
    await close_redis_connections()
    get_settings.cache_clear()
    with redis.Redis.from_url(real_redis) as shared:
        keys = list(shared.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            shared.delete(*keys)


def use_redis(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Point the `ratelimit` Redis dependency at `url`."""
    monkeypatch.setenv("APPKIT_REDIS_URL_RATELIMIT", url)
    get_settings.cache_clear()


@pytest.fixture
def ratelimit_redis(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Point the `ratelimit` Redis dependency at another URL (settings re-read)."""
    return lambda url: use_redis(monkeypatch, url)


def stand_in_authentication(request: Request) -> None:
    """Stands in for AuthenticateKey: the project comes from `X-Org`/`X-Project` headers."""
    limit = request.headers.get("x-token-limit")
    request.state.project_token = ProjectToken(
        org_id=request.headers.get("x-org", "org-1"),
        project_id=request.headers.get("x-project", "project-1"),
        rate_limit=parse_rate_limit(limit) if limit else None,
    )


@pytest.fixture
def app_factory() -> Callable[..., FastAPI]:
    """A tiny app: `/items/{item_id}` behind stand-in auth and a `ProjectRateLimiter(**kw)`."""

    def build(**limiter_options: Any) -> FastAPI:
        app = FastAPI()
        chain = [Depends(stand_in_authentication), Depends(ProjectRateLimiter(**limiter_options))]

        @app.get("/items/{item_id}", dependencies=chain)
        async def read_item(item_id: int) -> dict[str, int]:
            return {"item_id": item_id}

        @app.get("/unauthenticated", dependencies=[Depends(ProjectRateLimiter())])
        async def unauthenticated() -> dict[str, bool]:
            return {"ok": True}

        return app

    return build


@pytest.fixture
async def client_factory() -> AsyncIterator[Callable[[FastAPI], httpx.AsyncClient]]:
    """httpx clients over ASGITransport, closed at the end of the test."""
    clients: list[httpx.AsyncClient] = []

    def make(app: FastAPI) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        clients.append(httpx.AsyncClient(transport=transport, base_url="http://test"))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()
