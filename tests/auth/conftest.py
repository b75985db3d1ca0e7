"""Fixtures for the authentication tests: real Redis, fresh caches, a tiny protected app."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import Depends, FastAPI, Request

from appkit_runtime.auth import redis_cache, reset_auth_caches
from appkit_runtime.auth.http_authority import close_async_http_clients
from appkit_runtime.fastapi.authentication import FastAPIAuthenticateBase
from appkit_runtime.redis_pools import close_redis_connections
from appkit_runtime.settings import get_settings
from appkit_runtime.testing.keys import api_key  # noqa: F401  (also served by the plugin)
from appkit_runtime.tokens import ProjectToken


@pytest_asyncio.fixture(autouse=True)
async def auth_env(real_redis: str) -> AsyncIterator[None]:
    """Every auth test runs on the real Redis with fresh settings and caches."""
    get_settings.cache_clear()
    reset_auth_caches()
    yield
    await close_redis_connections()
    get_settings.cache_clear()
    reset_auth_caches()


class CountingAuthenticate(FastAPIAuthenticateBase):
    """An authority of our own (the README's extension point) that counts its calls."""

    def __init__(self, tokens: Mapping[str, ProjectToken], ttl: float = 300.0, **options: Any):
        super().__init__(**options)
        self.tokens = dict(tokens)
        self.ttl = ttl
        self.calls: Counter[str] = Counter()

    def get_project_token(
        self,
        current_product: str | None,
        headers: Mapping[str, str],
        key_token: str,
        kind: str | None,
        request_method: str,
        port: int | None,
    ) -> tuple[ProjectToken | None, float]:
        self.calls[key_token] += 1
        return self.tokens.get(key_token), self.ttl


def make_app(dependency: FastAPIAuthenticateBase) -> FastAPI:
    """One protected route that echoes the token it received and what is on request.state."""
    app = FastAPI()

    @app.get("/items")
    async def items(request: Request, token: ProjectToken = Depends(dependency)) -> dict[str, Any]:
        return {
            "org_id": token.org_id,
            "project_id": token.project_id,
            "on_state": request.state.project_token is token,
        }

    return app


@pytest_asyncio.fixture
async def client_for() -> AsyncIterator[Callable[[FastAPIAuthenticateBase], httpx.AsyncClient]]:
    """`client_for(dependency)`: an httpx client over a fresh app protected by `dependency`."""
    clients: list[httpx.AsyncClient] = []

    def make(dependency: FastAPIAuthenticateBase) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=make_app(dependency))
        clients.append(httpx.AsyncClient(transport=transport, base_url="http://test"))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()
    await close_async_http_clients()  # what the lifespan these apps run without would do


@pytest.fixture
def redis_lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Records every time the auth cache asks for a Redis client (the only way to Redis)."""
    calls: list[str] = []
    real = redis_cache.get_async_redis_instance

    def counting(name: str) -> Any:
        calls.append(name)
        return real(name)

    monkeypatch.setattr(redis_cache, "get_async_redis_instance", counting)
    yield calls


@pytest.fixture
def counting_auth() -> Callable[..., CountingAuthenticate]:
    """`counting_auth({key: token}, ttl=300, product=..., scopes=...)`."""
    return CountingAuthenticate
