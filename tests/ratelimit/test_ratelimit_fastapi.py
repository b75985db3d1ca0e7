"""`ProjectRateLimiter` in tiny apps on the shared Redis: counts, limits, headers, overrides."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from appkit_runtime.errors import RouteOrderError
from appkit_runtime.fastapi.ratelimit import (
    ProjectRateLimiter,
    delete_rate_limit_override,
    set_rate_limit_override,
)
from appkit_runtime.ratelimit import rate_limit_keys
from appkit_runtime.settings import get_async_redis_instance, get_settings

AppFactory = Callable[..., FastAPI]
ClientFactory = Callable[[FastAPI], httpx.AsyncClient]
DRAFT = re.compile(r'^"default";r=(\d+);t=(\d+)$')


async def statuses(client: httpx.AsyncClient, count: int, **headers: str) -> Counter[int]:
    replies = await asyncio.gather(*(client.get("/items/1", headers=headers) for _ in range(count)))
    return Counter(reply.status_code for reply in replies)


async def wait_for_window_reset(path: str = "/items/{item_id}") -> None:
    """Sleep until Redis has expired the window (its PTTL, not the test's clock)."""
    key, _ = rate_limit_keys("org-1", "project-1", path)
    redis = get_async_redis_instance("ratelimit")
    for _ in range(10):
        ttl = await redis.pttl(key)
        if ttl <= 0:
            return
        await asyncio.sleep(ttl / 1000)
    raise AssertionError(f"{key} never expired")


async def test_500_concurrent_requests_against_100_twice(
    app_factory: AppFactory,
    client_factory: ClientFactory,
    ratelimit_redis: Callable[[str], None],
    real_redis: str,
) -> None:
    # redis-py's async pool refuses (MaxConnectionsError) past 100 connections instead of
    # waiting, and 500 requests in flight open one each: give this test a bigger pool, on the
    # Redis (and database) the environment names, as every other test.
    ratelimit_redis(f"{real_redis}{'&' if '?' in real_redis else '?'}max_connections=1000")
    client = client_factory(app_factory(max_requests=100, expiry=3))

    assert await statuses(client, 500) == {200: 100, 429: 400}
    await wait_for_window_reset()
    assert await statuses(client, 500) == {200: 100, 429: 400}


async def test_counters_are_keyed_by_route_template_and_project(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    client = client_factory(app_factory(max_requests=2, expiry=60))

    codes = [(await client.get(f"/items/{n}")).status_code for n in (1, 2, 3)]
    other_project = await client.get("/items/4", headers={"x-project": "project-2"})

    assert codes == [200, 200, 429]
    assert other_project.status_code == 200
    key, _ = rate_limit_keys("org-1", "project-1", "/items/{item_id}")
    assert int(await get_async_redis_instance("ratelimit").get(key)) == 2


async def test_draft_headers_on_200_and_429(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    client = client_factory(app_factory(max_requests=2, expiry=30))

    first, second, refused = [await client.get("/items/1") for _ in range(3)]

    for reply, remaining in ((first, 1), (second, 0), (refused, 0)):
        assert reply.headers["ratelimit-policy"] == '"default";q=2;w=30'
        match = DRAFT.match(reply.headers["ratelimit"])
        assert match is not None
        assert int(match[1]) == remaining
        assert 0 < int(match[2]) <= 30
        assert "ratelimit-limit" not in reply.headers
    assert "retry-after" not in first.headers
    assert refused.status_code == 429
    assert refused.json() == {"detail": "Rate limit exceeded"}
    assert 0 < int(refused.headers["retry-after"]) <= 30


@pytest.mark.parametrize(
    ("style", "draft", "legacy"),
    [("legacy", False, True), ("both", True, True), ("off", False, False)],
)
async def test_header_styles(
    monkeypatch: pytest.MonkeyPatch,
    app_factory: AppFactory,
    client_factory: ClientFactory,
    style: str,
    draft: bool,
    legacy: bool,
) -> None:
    monkeypatch.setenv("APPKIT_RATELIMIT_HEADERS", style)
    get_settings.cache_clear()
    client = client_factory(app_factory(max_requests=1, expiry=20))

    allowed, refused = [await client.get("/items/1") for _ in range(2)]

    for reply in (allowed, refused):
        assert ("ratelimit" in reply.headers) is draft
        assert ("ratelimit-policy" in reply.headers) is draft
        assert ("ratelimit-limit" in reply.headers) is legacy
    if legacy:
        assert allowed.headers["ratelimit-limit"] == "1"
        assert allowed.headers["ratelimit-remaining"] == "0"
        assert 0 < int(allowed.headers["ratelimit-reset"]) <= 20
    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= 20


async def test_limit_comes_from_token_then_arguments_then_default(
    monkeypatch: pytest.MonkeyPatch, app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    monkeypatch.setenv("APPKIT_RATELIMIT_DEFAULT", "3/40")
    get_settings.cache_clear()
    with_args = client_factory(app_factory(max_requests=5, expiry=50))
    with_default = client_factory(app_factory())
    only_count = client_factory(app_factory(max_requests=7))

    from_token = await with_args.get("/items/1", headers={"x-token-limit": "9/90"})
    from_args = await with_args.get("/items/1", headers={"x-project": "p2"})
    from_default = await with_default.get("/items/1", headers={"x-project": "p3"})
    mixed = await only_count.get("/items/1", headers={"x-project": "p4"})

    assert from_token.headers["ratelimit-policy"] == '"default";q=9;w=90'
    assert from_args.headers["ratelimit-policy"] == '"default";q=5;w=50'
    assert from_default.headers["ratelimit-policy"] == '"default";q=3;w=40'
    assert mixed.headers["ratelimit-policy"] == '"default";q=7;w=40'


async def test_override_wins_and_delete_restores_the_default(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    client = client_factory(app_factory(max_requests=100, expiry=60))
    redis = get_async_redis_instance("ratelimit")
    await set_rate_limit_override(redis, "org-1", "project-1", "/items/{item_id}", 2, 30)

    assert await statuses(client, 5) == {200: 2, 429: 3}
    refused = await client.get("/items/1")
    assert refused.headers["ratelimit-policy"] == '"default";q=2;w=30'

    assert await delete_rate_limit_override(redis, "org-1", "project-1", "/items/{item_id}")
    allowed = await client.get("/items/1")
    assert allowed.status_code == 200
    assert allowed.headers["ratelimit-policy"] == '"default";q=100;w=60'


async def test_missing_token_is_a_route_order_error(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    app = app_factory()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")

    async with client:
        with pytest.raises(RouteOrderError, match="GET /unauthenticated: .*AuthenticateKey"):
            await client.get("/unauthenticated")


@pytest.mark.parametrize("options", [{"max_requests": 0}, {"expiry": -1}, {"max_requests": 1.5}])
def test_bad_limiter_arguments_fail_at_construction(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be an integer from 1 to 2147483647"):
        ProjectRateLimiter(**options)  # type: ignore[arg-type]


async def test_embedded_memory_redis_runs_the_same_script(
    app_factory: AppFactory,
    client_factory: ClientFactory,
    ratelimit_redis: Callable[[str], None],
) -> None:
    # memory:// is fakeredis with Lua: the embedded default of a new service.
    ratelimit_redis(f"memory://ratelimit-{id(app_factory)}")
    client = client_factory(app_factory(max_requests=2, expiry=60))

    redis = get_async_redis_instance("ratelimit")
    await set_rate_limit_override(redis, "org-1", "p2", "/items/{item_id}", 3, 60)

    assert await statuses(client, 5) == {200: 2, 429: 3}
    assert await statuses(client, 5, **{"x-project": "p2"}) == {200: 3, 429: 2}
