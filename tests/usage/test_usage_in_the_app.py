"""Usage through the real app factory: protected() routes, the runtime lifespan's flusher."""

from __future__ import annotations

import json

import httpx
import pytest
import redis.asyncio as async_redis
from asgi_lifespan import LifespanManager

from appkit_runtime.fastapi import protected
from appkit_runtime.fastapi.fastapi import get_fastapi_app
from appkit_runtime.settings import get_settings
from appkit_runtime.usage import get_project_usage


async def test_protected_requests_are_read_back_after_shutdown(
    redis: async_redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = {"key": "usage-key-1", "org_id": "o-app", "project_id": "p-app", "product": "geo"}
    monkeypatch.setenv("APPKIT_API_KEYS", json.dumps([key]))
    monkeypatch.setenv("APPKIT_RATELIMIT_DEFAULT", "1000/60")
    get_settings.cache_clear()
    app = get_fastapi_app("usage-app")

    @app.get("/things/{thing_id}", dependencies=protected("geo"))
    async def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        headers = {"X-API-Key": "usage-key-1"}
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for i in range(21):
                assert (await client.get(f"/things/{i}", headers=headers)).status_code == 200
    assert await get_project_usage(redis, "o-app", "p-app") == {"geo": {"default": 21}}
