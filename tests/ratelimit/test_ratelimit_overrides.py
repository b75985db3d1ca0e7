"""Override functions: one hash per route plus an index, so list and clear never SCAN."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from redis import Redis

from appkit_runtime.fastapi.ratelimit import (
    clear_project_rate_limit_overrides,
    delete_rate_limit_override,
    get_rate_limit_override,
    list_rate_limit_overrides,
    set_rate_limit_override,
)
from appkit_runtime.ratelimit import RateLimitOverride, make_override_key
from appkit_runtime.settings import get_async_redis_instance


async def test_reference_override_snippet_runs_after_the_rename() -> None:
    org_id, project_id = "org-1", "project-1"
    redis = get_async_redis_instance("ratelimit")

    # All functions require await
    await set_rate_limit_override(redis, org_id, project_id, "/path", 100, 60)
    override = await get_rate_limit_override(redis, org_id, project_id, "/path")
    overrides = await list_rate_limit_overrides(redis, org_id, project_id)

    assert override == RateLimitOverride("/path", 100, 60)
    assert overrides == [override]


async def test_set_replaces_get_misses_delete_reports() -> None:
    redis = get_async_redis_instance("ratelimit")
    await set_rate_limit_override(redis, "o", "p", "/items/{item_id}", 5, 10)
    await set_rate_limit_override(redis, "o", "p", "/items/{item_id}", 7, 20)

    assert await get_rate_limit_override(redis, "o", "p", "/items/{item_id}") == (
        RateLimitOverride("/items/{item_id}", 7, 20)
    )
    assert await get_rate_limit_override(redis, "o", "p", "/other") is None
    assert await get_rate_limit_override(redis, "o", "other-project", "/items/{item_id}") is None
    assert await delete_rate_limit_override(redis, "o", "p", "/items/{item_id}") is True
    assert await delete_rate_limit_override(redis, "o", "p", "/items/{item_id}") is False
    assert await list_rate_limit_overrides(redis, "o", "p") == []


async def test_clear_removes_only_that_projects_overrides_and_counts_them() -> None:
    redis = get_async_redis_instance("ratelimit")
    for path in ("/a", "/b", "/c/{id}"):
        await set_rate_limit_override(redis, "o", "p", path, 1, 1)
    await set_rate_limit_override(redis, "o", "neighbour", "/a", 2, 2)

    assert [o.path for o in await list_rate_limit_overrides(redis, "o", "p")] == [
        "/a",
        "/b",
        "/c/{id}",
    ]
    assert await clear_project_rate_limit_overrides(redis, "o", "p") == 3
    assert await clear_project_rate_limit_overrides(redis, "o", "p") == 0
    assert await list_rate_limit_overrides(redis, "o", "p") == []
    assert await list_rate_limit_overrides(redis, "o", "neighbour") == [
        RateLimitOverride("/a", 2, 2)
    ]


async def test_list_skips_an_index_entry_whose_hash_is_gone() -> None:
    redis = get_async_redis_instance("ratelimit")
    await set_rate_limit_override(redis, "o", "p", "/kept", 3, 4)
    await set_rate_limit_override(redis, "o", "p", "/gone", 3, 4)
    await redis.delete(make_override_key("/gone", "o", "p"))

    assert await list_rate_limit_overrides(redis, "o", "p") == [RateLimitOverride("/kept", 3, 4)]


@pytest.mark.parametrize(
    ("path", "max_requests", "expiry", "message"),
    [
        ("/a", 0, 60, "max_requests must be an integer from 1 to 2147483647, got 0"),
        ("/a", 1.5, 60, "max_requests must be an integer from 1 to 2147483647, got 1.5"),
        ("/a", True, 60, "max_requests must be an integer from 1 to 2147483647, got True"),
        ("/a", "10", 60, "max_requests must be an integer from 1 to 2147483647, got '10'"),
        ("/a", 10, -5, "expiry must be an integer from 1 to 2147483647, got -5"),
        ("a", 10, 60, "path must be a route template starting with '/', got 'a'"),
    ],
)
async def test_bad_values_are_refused_before_redis(
    path: Any, max_requests: Any, expiry: Any, message: str
) -> None:
    redis = get_async_redis_instance("ratelimit")

    with pytest.raises(ValueError) as refused:
        await set_rate_limit_override(redis, "o", "p", path, max_requests, expiry)

    assert str(refused.value) == message
    assert await list_rate_limit_overrides(redis, "o", "p") == []


async def test_no_scan_or_keys_runs(
    redis_server: Any, ratelimit_redis: Callable[[str], None]
) -> None:
    # A redis-server of this test's own, so nobody else's commands end up in its stats.
    redis_server.start()
    ratelimit_redis(redis_server.url)
    redis = get_async_redis_instance("ratelimit")
    with Redis.from_url(redis_server.url) as admin:
        admin.config_resetstat()

        for project in ("p", "q"):
            for path in ("/a", "/b"):
                await set_rate_limit_override(redis, "o", project, path, 5, 5)
        await get_rate_limit_override(redis, "o", "p", "/a")
        await list_rate_limit_overrides(redis, "o", "p")
        await delete_rate_limit_override(redis, "o", "p", "/a")
        assert await clear_project_rate_limit_overrides(redis, "o", "q") == 2

        stats = admin.info("commandstats")
    assert "cmdstat_scan" not in stats
    assert "cmdstat_keys" not in stats
    assert stats["cmdstat_evalsha"]["calls"] >= 6
