"""Fixtures for usage tests: a unique key prefix and service name, fresh in-memory counts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
import redis.asyncio as async_redis
from fastapi import Depends, FastAPI, Request

from appkit_runtime import usage
from appkit_runtime.fastapi.metrics import AddJobToMetrics
from appkit_runtime.redis_pools import close_redis_connections
from appkit_runtime.settings import get_settings
from appkit_runtime.tokens import ProjectToken


@pytest.fixture
def _fresh_settings() -> Iterator[None]:
    """Re-read settings before and after the test (after monkeypatch has undone its env)."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def usage_env(
    _fresh_settings: None, monkeypatch: pytest.MonkeyPatch, real_redis: str
) -> dict[str, str]:
    """Real Redis, a unique prefix and service name, no periodic flush, empty counts."""
    names = {"prefix": f"test-usage-{uuid4().hex}", "service": f"usage-{uuid4().hex[:12]}"}
    monkeypatch.setenv("APPKIT_REDIS_PREFIX", names["prefix"])
    monkeypatch.setenv("APPKIT_SERVICE_NAME", names["service"])
    monkeypatch.setenv("APPKIT_METRICS_FLUSH_SECONDS", "3600")
    monkeypatch.delenv("APPKIT_REDIS_URL_METRICS", raising=False)
    monkeypatch.setattr(usage, "usage_counts", usage.UsageCounts())
    get_settings.cache_clear()
    return {**names, "redis_url": real_redis}


@pytest.fixture
async def redis(usage_env: dict[str, str]) -> AsyncIterator[async_redis.Redis]:
    """A direct client for reading usage back; deletes the test's keys afterwards."""
    client = async_redis.Redis.from_url(usage_env["redis_url"])
    yield client
    keys = [key async for key in client.scan_iter(match=f"{usage_env['prefix']}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
    await close_redis_connections()


def _make_app(*dependencies: Any, token: ProjectToken | None) -> FastAPI:
    """A tiny app: a stand-in for AuthenticateKey that sets `token`, then `dependencies`."""
    app = FastAPI()

    async def authenticated(request: Request) -> None:
        if token is not None:
            request.state.project_token = token

    @app.get("/items/{item_id}", dependencies=[Depends(authenticated), *map(Depends, dependencies)])
    async def item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    return app


@pytest.fixture
def token() -> ProjectToken:
    """A project whose ids hold the characters that must never reach labels or other keys."""
    return ProjectToken(org_id=f"org:{uuid4().hex[:6]}}}", project_id=f"prj|{uuid4().hex[:6]}")


@pytest.fixture
async def jobs_client(token: ProjectToken) -> AsyncIterator[httpx.AsyncClient]:
    """A client for an app counting `AddJobToMetrics("geo", "search")` for `token`."""
    app = _make_app(AddJobToMetrics("geo", "search"), token=token)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.fixture
def app_factory() -> Callable[..., FastAPI]:
    """`app_factory(*dependencies, token=...)` builds the tiny app with other dependencies."""
    return _make_app
