"""Organisation overrides, cost and the operator CLI on the real 3-master Redis Cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import Depends, FastAPI, Request, Response
from redis.crc import key_slot

from appkit_runtime.fastapi.ratelimit import (
    ProjectRateLimiter,
    apply_rate_limit,
    delete_org_rate_limit_override,
    get_org_rate_limit_override,
    list_org_rate_limit_overrides,
    set_org_rate_limit_override,
    set_rate_limit_override,
)
from appkit_runtime.ratelimit import (
    RateLimitOverride,
    make_org_override_key,
    rate_limit_keys,
)
from appkit_runtime.ratelimit.keys import make_org_override_index_key
from appkit_runtime.settings import get_async_redis_instance, get_settings
from appkit_runtime.tokens import ProjectToken

from .conftest import RedisCluster

pytestmark = pytest.mark.redis_server

PROJECTS = [f"project-{n}" for n in range(6)]
ROUTE = "/items/{item_id}"


def authenticated(request: Request) -> None:
    request.state.project_token = ProjectToken(
        org_id=request.headers.get("x-org", "org"), project_id=request.headers["x-project"]
    )


def cluster_app(**limiter_options: object) -> FastAPI:
    app = FastAPI()
    chain = [Depends(authenticated), Depends(ProjectRateLimiter(**limiter_options))]

    @app.get(ROUTE, dependencies=chain)
    async def read_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.post("/batch", dependencies=[Depends(authenticated)])
    async def batch(request: Request, response: Response, size: int) -> dict[str, int]:
        await apply_rate_limit(request, count=size, response=response, max_requests=120, expiry=60)
        return {"accepted": size}

    return app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_org_override_reaches_projects_on_every_master_unless_they_have_their_own() -> None:
    redis = get_async_redis_instance("ratelimit")
    await redis.initialize()
    masters = {redis.get_node_from_key(rate_limit_keys("org", p, ROUTE)[0]).name for p in PROJECTS}
    await set_org_rate_limit_override(redis, "org", ROUTE, 2, 30)
    await set_rate_limit_override(redis, "org", "project-5", ROUTE, 4, 30)

    async with client_for(cluster_app(max_requests=50, expiry=60)) as client:
        codes = {
            p: [
                (await client.get("/items/1", headers={"x-project": p})).status_code
                for _ in "abcde"
            ]
            for p in PROJECTS
        }
        other_org = await client.get("/items/1", headers={"x-project": "p", "x-org": "other"})

    assert len(masters) >= 2
    assert codes == {
        **{p: [200, 200, 429, 429, 429] for p in PROJECTS[:5]},
        "project-5": [200, 200, 200, 200, 429],
    }
    assert other_org.headers["ratelimit-policy"] == '"default";q=50;w=60'


async def test_org_overrides_share_one_slot_and_survive_a_script_flush() -> None:
    redis = get_async_redis_instance("ratelimit")
    for org in ("a", "b:c", "{d}"):
        await set_org_rate_limit_override(redis, org, ROUTE, 3, 9, ttl=600)
    slots = {key_slot(make_org_override_key(ROUTE, o).encode()) for o in ("a", "b:c", "{d}")}
    slots.add(key_slot(make_org_override_index_key().encode()))

    await redis.script_flush()
    get_settings.cache_clear()  # a fresh settings object: the next request reads the copy again
    async with client_for(cluster_app(max_requests=50, expiry=60)) as client:
        reply = await client.get("/items/1", headers={"x-project": "p", "x-org": "b:c"})

    assert len(slots) == 1
    assert reply.headers["ratelimit-policy"] == '"default";q=3;w=9'
    assert await list_org_rate_limit_overrides(redis, "{d}") == [RateLimitOverride(ROUTE, 3, 9)]
    assert await delete_org_rate_limit_override(redis, "a", ROUTE) is True
    assert await get_org_rate_limit_override(redis, "a", ROUTE) is None


@pytest.mark.parametrize("where", ["dependency", "handler"])
async def test_cost_50_against_120_on_the_cluster(where: str) -> None:
    redis = get_async_redis_instance("ratelimit")
    async with client_for(cluster_app(max_requests=120, expiry=60, cost=50)) as client:
        if where == "dependency":
            codes = [
                (await client.get("/items/1", headers={"x-project": p})).status_code
                for p in ("p1", "p1", "p1")
            ]
            key = rate_limit_keys("org", "p1", ROUTE)[0]
        else:
            codes = [
                (
                    await client.post("/batch", params={"size": 50}, headers={"x-project": "p2"})
                ).status_code
                for _ in range(3)
            ]
            key = rate_limit_keys("org", "p2", "/batch")[0]

    assert codes == [200, 200, 429]
    assert int(await redis.get(key)) == 100


def manage(url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the operator CLI on the Redis at `url`, under this test's key prefix."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("APPKIT_")}
    environ |= {"APPKIT_REDIS_URL": url, "APPKIT_REDIS_PREFIX": get_settings().redis_prefix}
    command = [sys.executable, "-m", "appkit_runtime.manage", *args]
    return subprocess.run(command, env=environ, cwd=cwd, capture_output=True, text=True, timeout=60)


async def test_the_cli_round_trips_on_the_cluster(
    redis_cluster: RedisCluster, tmp_path: Path
) -> None:
    options = ["--org-id", "org", "--endpoint", ROUTE]
    limit = ["--max-requests", "6", "--expiry", "7"]

    made = manage(redis_cluster.url, tmp_path, "ratelimit", "set-org", *options, *limit)
    redis = get_async_redis_instance("ratelimit")
    seen = await get_org_rate_limit_override(redis, "org", ROUTE)
    await set_org_rate_limit_override(redis, "org", ROUTE, 8, 9)
    got = manage(redis_cluster.url, tmp_path, "ratelimit", "get-org", *options, "--json")

    assert made.returncode == 0, made.stderr
    assert seen == RateLimitOverride(ROUTE, 6, 7)
    assert got.stdout == '{"endpoint": "/items/{item_id}", "expiry": 9, "max_requests": 8}\n'
