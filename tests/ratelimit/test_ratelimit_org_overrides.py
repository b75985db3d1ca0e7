"""Organisation overrides: the async functions, priority, TTL and the per-process cache."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis import Redis

from appkit_runtime.fastapi.fastapi import get_fastapi_app
from appkit_runtime.fastapi.ratelimit import (
    delete_org_rate_limit_override,
    delete_rate_limit_override,
    get_org_rate_limit_override,
    list_org_rate_limit_overrides,
    set_org_rate_limit_override,
    set_rate_limit_override,
)
from appkit_runtime.ratelimit import RateLimitOverride, make_org_override_key, org_cache
from appkit_runtime.ratelimit.keys import make_org_override_index_key, org_override_member
from appkit_runtime.ratelimit.limiter import hit_sync
from appkit_runtime.ratelimit.org_cache import (
    ORG_OVERRIDES,
    REFRESH_SECONDS,
    org_override_refresher,
)
from appkit_runtime.ratelimit.storage import async_storage_for
from appkit_runtime.settings import RateLimit, get_async_redis_instance, get_redis_instance

AppFactory = Callable[..., FastAPI]
ClientFactory = Callable[[FastAPI], httpx.AsyncClient]
ROUTE = "/items/{item_id}"


async def policy(client: httpx.AsyncClient, project: str, org: str = "org-1") -> str:
    reply = await client.get("/items/1", headers={"x-project": project, "x-org": org})
    return reply.headers["ratelimit-policy"]


async def test_round_trip_of_the_async_functions() -> None:
    redis = get_async_redis_instance("ratelimit")
    await set_org_rate_limit_override(redis, "org:1", "/b", 5, 10)
    await set_org_rate_limit_override(redis, "org:1", "/a/{id}", 3, 9)
    await set_org_rate_limit_override(redis, "org", "/a/{id}", 1, 1)

    assert await get_org_rate_limit_override(redis, "org:1", "/b") == RateLimitOverride("/b", 5, 10)
    assert await list_org_rate_limit_overrides(redis, "org:1") == [
        RateLimitOverride("/a/{id}", 3, 9),
        RateLimitOverride("/b", 5, 10),
    ]
    assert await delete_org_rate_limit_override(redis, "org:1", "/b") is True
    assert await delete_org_rate_limit_override(redis, "org:1", "/b") is False
    assert await get_org_rate_limit_override(redis, "org:1", "/b") is None
    assert await list_org_rate_limit_overrides(redis, "org") == [RateLimitOverride("/a/{id}", 1, 1)]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: set_org_rate_limit_override(r, "", "/a", 1, 1), "org_id"),
        (lambda r: set_org_rate_limit_override(r, "o", "a", 1, 1), "path"),
        (lambda r: set_org_rate_limit_override(r, "o", "/a", 0, 1), "max_requests"),
        (lambda r: set_org_rate_limit_override(r, "o", "/a", 1, 1, ttl=0), "ttl"),
        (lambda r: set_rate_limit_override(r, "o", "p", "/a", 1, 1, ttl=-5), "ttl"),
    ],
)
async def test_bad_arguments_are_refused_before_redis(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await call(get_async_redis_instance("ratelimit"))


async def test_org_override_applies_to_every_project_unless_a_project_override_exists(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    redis = get_async_redis_instance("ratelimit")
    client = client_factory(app_factory(max_requests=100, expiry=60))
    await set_org_rate_limit_override(redis, "org-1", ROUTE, 2, 30)
    await set_rate_limit_override(redis, "org-1", "special", ROUTE, 5, 20)

    policies = {p: await policy(client, p) for p in ("a", "b", "special")}
    other_org = await policy(client, "a", org="org-2")
    statuses = [
        (await client.get("/items/1", headers={"x-project": "a"})).status_code for _ in range(2)
    ]

    assert policies == {
        "a": '"default";q=2;w=30',
        "b": '"default";q=2;w=30',
        "special": '"default";q=5;w=20',
    }
    assert other_org == '"default";q=100;w=60'
    # Each project keeps its own counter: "a" used 1 of 2 above, so one more passes.
    assert statuses == [200, 429]

    await delete_rate_limit_override(redis, "org-1", "special", ROUTE)
    await delete_org_rate_limit_override(redis, "org-1", ROUTE)
    assert await policy(client, "b") == '"default";q=100;w=60'


async def test_org_override_wins_over_the_tokens_own_limit(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    client = client_factory(app_factory())
    await set_org_rate_limit_override(get_async_redis_instance("ratelimit"), "org-1", ROUTE, 4, 8)

    reply = await client.get("/items/1", headers={"x-token-limit": "50/60"})

    assert reply.headers["ratelimit-policy"] == '"default";q=4;w=8'


async def test_ttl_overrides_disappear_by_themselves(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    redis = get_async_redis_instance("ratelimit")
    client = client_factory(app_factory(max_requests=100, expiry=60))
    await set_org_rate_limit_override(redis, "org-1", ROUTE, 2, 30, ttl=1)
    await set_rate_limit_override(redis, "org-1", "p", "/x", 2, 30, ttl=1)
    assert await policy(client, "a") == '"default";q=2;w=30'

    await wait_until_gone(redis, "org-1", ROUTE)

    assert await get_org_rate_limit_override(redis, "org-1", ROUTE) is None
    assert await list_org_rate_limit_overrides(redis, "org-1") == []
    # The cached copy also knows the TTL, so this process stops applying it at once.
    assert await policy(client, "b") == '"default";q=100;w=60'


async def test_setting_again_without_ttl_removes_the_ttl() -> None:
    redis = get_async_redis_instance("ratelimit")
    await set_org_rate_limit_override(redis, "org-1", ROUTE, 2, 30, ttl=100)
    assert 0 < await redis.pttl(make_org_override_key(ROUTE, "org-1")) <= 100_000

    await set_org_rate_limit_override(redis, "org-1", ROUTE, 3, 30)

    assert await redis.pttl(make_org_override_key(ROUTE, "org-1")) == -1
    assert await get_org_rate_limit_override(redis, "org-1", ROUTE) == RateLimitOverride(
        ROUTE, 3, 30
    )


async def write_as_another_process(max_requests: int, expiry: int) -> None:
    """The same storage call as `set_org_rate_limit_override`, but this process's copy is
    not told."""
    await async_storage_for(get_async_redis_instance("ratelimit")).write_override(
        make_org_override_key(ROUTE, "org-1"),
        make_org_override_index_key(),
        org_override_member("org-1", ROUTE),
        max_requests,
        expiry,
    )


async def test_a_copy_past_the_bound_is_read_again_before_the_answer(
    monkeypatch: pytest.MonkeyPatch, app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    client = client_factory(app_factory(max_requests=100, expiry=60))
    assert await policy(client, "a") == '"default";q=100;w=60'  # the copy is read here
    await write_as_another_process(2, 30)
    monkeypatch.setattr(org_cache, "REFRESH_SECONDS", 0.0)  # the copy is now past the bound

    assert await policy(client, "a") == '"default";q=2;w=30'


async def test_a_sync_request_past_the_bound_waits_for_the_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redis = get_redis_instance("ratelimit")
    before = hit_sync(redis, "org-1", "project-1", ROUTE, RateLimit(100, 60))
    await write_as_another_process(2, 30)
    monkeypatch.setattr(org_cache, "REFRESH_SECONDS", 0.0)

    after = hit_sync(redis, "org-1", "project-1", ROUTE, RateLimit(100, 60))

    assert (before.effective_max_requests, after.effective_max_requests) == (100, 2)


async def test_a_copy_past_half_the_bound_answers_while_it_is_read_again(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    client = client_factory(app_factory(max_requests=100, expiry=60))
    assert await policy(client, "a") == '"default";q=100;w=60'
    await write_as_another_process(2, 30)
    # Age the copy to 60 % of the bound: due for a read, still good to answer from.
    copy = ORG_OVERRIDES._snapshot
    assert copy is not None
    ORG_OVERRIDES._snapshot = replace(copy, loaded_at=copy.loaded_at - 0.6 * REFRESH_SECONDS)

    seen_before = await policy(client, "a")  # serves the copy, reads behind it
    await ORG_OVERRIDES.settled()
    seen_after = await policy(client, "a")

    assert (seen_before, seen_after) == ('"default";q=100;w=60', '"default";q=2;w=30')


async def test_an_idle_process_applies_an_override_within_the_bound(
    monkeypatch: pytest.MonkeyPatch, app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    monkeypatch.setattr(org_cache, "REFRESH_SECONDS", 1.0)
    client = client_factory(app_factory(max_requests=100, expiry=60))
    redis = get_async_redis_instance("ratelimit")
    async with org_override_refresher():
        assert await policy(client, "a") == '"default";q=100;w=60'
        await write_as_another_process(2, 30)

        await asyncio.sleep(1.0)  # no request: only the timer can read the change

        held = ORG_OVERRIDES.cached_limit(redis, "org-1", ROUTE)  # the copy, as it is now
        assert held == RateLimit(2, 30)
        assert await policy(client, "a") == '"default";q=2;w=30'


async def test_the_service_lifespan_refreshes_the_copy() -> None:
    app = get_fastapi_app("refresher", databases=())
    async with app.router.lifespan_context(app):
        names = {task.get_name() for task in asyncio.all_tasks()}
    assert "appkit-org-override-refresher" in names
    assert "appkit-org-override-refresher" not in {t.get_name() for t in asyncio.all_tasks()}


async def test_a_cached_request_costs_one_command_with_org_overrides_in_place(
    redis_server: Any,
    ratelimit_redis: Callable[[str], None],
    app_factory: AppFactory,
    client_factory: ClientFactory,
) -> None:
    redis_server.start()
    ratelimit_redis(redis_server.url)
    redis = get_async_redis_instance("ratelimit")
    for org in ("org-1", "org-2"):
        await set_org_rate_limit_override(redis, org, ROUTE, 50, 60)
    client = client_factory(app_factory())
    assert (await client.get("/items/1")).status_code == 200  # reads the copy once
    with Redis.from_url(redis_server.url) as admin:
        admin.config_resetstat()
        replies = [await client.get("/items/1", headers={"x-project": f"p{n}"}) for n in range(5)]
        stats = admin.info("commandstats")

    sent = {name.removeprefix("cmdstat_"): s["calls"] for name, s in stats.items()}
    assert {r.headers["ratelimit-policy"] for r in replies} == {'"default";q=50;w=60'}
    assert sent["evalsha"] == 5
    assert "smembers" not in sent


async def wait_until_gone(redis: Any, org: str, path: str) -> None:
    """Sleep until Redis has expired the override (its own TTL, not the test's clock)."""
    key = make_org_override_key(path, org)
    for _ in range(20):
        ttl = await redis.pttl(key)
        if ttl < 0:
            return
        await asyncio.sleep(ttl / 1000 + 0.01)
    raise AssertionError(f"{key} never expired")
