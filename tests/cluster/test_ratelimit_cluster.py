"""The rate limiter and its overrides on a real 3-master Redis Cluster (`redis+cluster://`)."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from redis.asyncio import RedisCluster as AsyncRedisCluster

from appkit_runtime.fastapi.ratelimit import (
    ProjectRateLimiter,
    clear_project_rate_limit_overrides,
    list_rate_limit_overrides,
    set_rate_limit_override,
)
from appkit_runtime.ratelimit import RateLimitOverride, rate_limit_keys
from appkit_runtime.settings import get_async_redis_instance

from .conftest import RedisCluster

pytestmark = pytest.mark.redis_server

PROJECTS = [f"project-{n}" for n in range(6)]


def limited_app(max_requests: int) -> FastAPI:
    """`/items/{item_id}` limited per project; the project comes from `X-Project`."""
    from appkit_runtime.tokens import ProjectToken

    def authenticated(request: Request) -> None:
        project = request.headers["x-project"]
        request.state.project_token = ProjectToken(org_id="org", project_id=project)

    app = FastAPI()
    chain = [Depends(authenticated), Depends(ProjectRateLimiter(max_requests, 60))]

    @app.get("/items/{item_id}", dependencies=chain)
    async def read_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    return app


async def test_projects_spread_over_the_masters() -> None:
    client = get_async_redis_instance("ratelimit")
    assert isinstance(client, AsyncRedisCluster)
    await client.initialize()

    nodes = {client.get_node_from_key(rate_limit_keys("org", p, "/x")[0]).name for p in PROJECTS}

    assert len(nodes) >= 2


async def test_limiter_counts_each_project_exactly() -> None:
    transport = httpx.ASGITransport(app=limited_app(max_requests=5))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        replies = await asyncio.gather(
            *(client.get("/items/1", headers={"x-project": p}) for p in PROJECTS for _ in range(12))
        )

    by_project = Counter((r.request.headers["x-project"], r.status_code) for r in replies)
    assert by_project == Counter(
        {(p, code): n for p in PROJECTS for code, n in ((200, 5), (429, 7))}
    )


async def test_override_wins_on_the_cluster_and_script_flush_is_harmless(
    redis_cluster: RedisCluster,
) -> None:
    redis = get_async_redis_instance("ratelimit")
    await set_rate_limit_override(redis, "org", "project-1", "/items/{item_id}", 2, 30)
    transport = httpx.ASGITransport(app=limited_app(max_requests=50))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        first = await client.get("/items/1", headers={"x-project": "project-1"})
        await redis.script_flush()  # every master forgets the script
        codes = [
            (await client.get("/items/1", headers={"x-project": "project-1"})).status_code
            for _ in range(2)
        ]

    assert first.headers["ratelimit-policy"] == '"default";q=2;w=30'
    assert (first.status_code, codes) == (200, [200, 429])


async def test_overrides_list_and_clear_per_project() -> None:
    redis = get_async_redis_instance("ratelimit")
    for project in PROJECTS:
        for path in ("/a", "/b/{id}"):
            await set_rate_limit_override(redis, "org", project, path, 3, 9)

    listed = await list_rate_limit_overrides(redis, "org", "project-2")
    cleared = [await clear_project_rate_limit_overrides(redis, "org", p) for p in PROJECTS[:3]]

    assert listed == [RateLimitOverride("/a", 3, 9), RateLimitOverride("/b/{id}", 3, 9)]
    assert cleared == [2, 2, 2]
    assert await list_rate_limit_overrides(redis, "org", "project-0") == []
    assert len(await list_rate_limit_overrides(redis, "org", "project-5")) == 2
