"""The Lua script's contract and the key layout, run directly against the shared Redis."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from appkit_runtime.ratelimit import (
    PROJECT_RATE_LIMITER_LUA,
    RateLimitResult,
    make_override_key,
    make_rate_limit_key,
    rate_limit_keys,
)
from appkit_runtime.settings import get_async_redis_instance


async def test_reference_snippet_runs_after_the_rename() -> None:
    # The reference page's Lua snippet, with application_kit renamed to appkit_runtime.
    key, override_key = rate_limit_keys("org-1", "project-1", "/items/{item_id}")
    max_requests, expiry = 2, 60

    redis = get_async_redis_instance("ratelimit")
    script = redis.register_script(PROJECT_RATE_LIMITER_LUA)
    result = await script([key, override_key], [max_requests, expiry])

    over, count, ttl_ms, effective_max, effective_expiry = result
    assert (over, count, effective_max, effective_expiry) == (0, 1, 2, 60)
    assert 0 < ttl_ms <= 60_000


async def test_window_is_opened_by_the_first_request_and_refusals_use_no_quota() -> None:
    redis = get_async_redis_instance("ratelimit")
    script = redis.register_script(PROJECT_RATE_LIMITER_LUA)
    key, override_key = rate_limit_keys("org-1", "project-1", "/a")

    replies = [
        RateLimitResult.from_reply(await script([key, override_key], [2, 30])) for _ in "abcd"
    ]

    assert [r.is_over_limit for r in replies] == [False, False, True, True]
    assert [r.request_count for r in replies] == [1, 2, 2, 2]
    assert int(await redis.get(key)) == 2
    assert 0 < await redis.pttl(key) <= 30_000
    assert all(0 < r.ttl_ms <= 30_000 for r in replies)


async def test_override_hash_wins_over_argv() -> None:
    redis = get_async_redis_instance("ratelimit")
    script = redis.register_script(PROJECT_RATE_LIMITER_LUA)
    key, override_key = rate_limit_keys("org-1", "project-1", "/a")
    await redis.hset(override_key, mapping={"max_requests": 1, "expiry": 7})

    first, second = [
        RateLimitResult.from_reply(await script([key, override_key], [100, 60])) for _ in range(2)
    ]

    assert (first.is_over_limit, first.effective_max_requests, first.effective_expiry_s) == (
        False,
        1,
        7,
    )
    assert second.is_over_limit
    assert 0 < await redis.pttl(key) <= 7_000


async def test_cost_is_checked_before_incrementing() -> None:
    redis = get_async_redis_instance("ratelimit")
    script = redis.register_script(PROJECT_RATE_LIMITER_LUA)
    key, override_key = rate_limit_keys("org-1", "project-1", "/batch")

    replies = [
        RateLimitResult.from_reply(await script([key, override_key], [120, 60, 50]))
        for _ in range(3)
    ]

    assert [r.is_over_limit for r in replies] == [False, False, True]
    assert int(await redis.get(key)) == 100


async def test_counter_without_expiry_gets_a_window_again() -> None:
    redis = get_async_redis_instance("ratelimit")
    script = redis.register_script(PROJECT_RATE_LIMITER_LUA)
    key, override_key = rate_limit_keys("org-1", "project-1", "/a")
    await redis.set(key, 5)

    reply = RateLimitResult.from_reply(await script([key, override_key], [5, 10]))

    assert reply.is_over_limit
    assert 0 < await redis.pttl(key) <= 10_000


def test_keys_put_the_project_tag_first(redis_prefix: str) -> None:
    key, override_key = rate_limit_keys("org-1", "project-1", "/items/{item_id}")

    assert key == f"{redis_prefix}:rl:{{org-1:project-1}}:/items/{{item_id}}"
    assert override_key == f"{redis_prefix}:rlo:{{org-1:project-1}}:/items/{{item_id}}"
    assert key == make_rate_limit_key("/items/{item_id}", "org-1", "project-1")
    assert override_key == make_override_key("/items/{item_id}", "org-1", "project-1")
    assert (
        key_slot(key.encode()) == key_slot(b"{org-1:project-1}") == key_slot(override_key.encode())
    )


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("a:b", "c"), ("a", "b:c")),
        (("a}", "b"), ("a", "}b")),
        (("a", "b}:x"), ("a", "b")),
    ],
)
def test_ids_cannot_reach_another_projects_keys(
    one: tuple[str, str], other: tuple[str, str]
) -> None:
    first = rate_limit_keys(*one, "/items")
    second = rate_limit_keys(*other, "/items")

    assert not set(first) & set(second)
    assert all(k.count("{") == 1 and k.count("}") == 1 for k in (*first, *second))
