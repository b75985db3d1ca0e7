"""Quota leases on the shared Redis: exact across holders, windows, overrides, single flight."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from appkit_runtime.ratelimit import rate_limit_keys
from appkit_runtime.ratelimit.leases import LeaseTable
from appkit_runtime.ratelimit.overrides import set_rate_limit_override
from appkit_runtime.ratelimit.storage import AsyncRedisStorage, async_storage_for
from appkit_runtime.settings import RateLimit, get_async_redis_instance
from tests.ratelimit.test_ratelimit_fastapi import wait_for_window_reset

ROUTE = "/items/{item_id}"
KEYS = ("org-1", "project-1", ROUTE)


def storage() -> AsyncRedisStorage:
    return async_storage_for(get_async_redis_instance("ratelimit"))


async def counter() -> int:
    key, _ = rate_limit_keys(*KEYS)
    return int(await get_async_redis_instance("ratelimit").get(key) or 0)


async def allowed(table: LeaseTable, limit: RateLimit, cost: int = 1) -> bool:
    result = await table.take(storage(), rate_limit_keys(*KEYS), limit, cost)
    return not result.is_over_limit


async def test_two_lease_holders_on_one_counter_spend_exactly_the_limit() -> None:
    # Two tables stand for two processes: each leases blocks, and together they get 50.
    first, second, limit = LeaseTable(), LeaseTable(), RateLimit(50, 60)
    counts = {"first": 0, "second": 0}
    refused = set()
    while len(refused) < 2:
        refused.clear()
        for name, table in (("first", first), ("second", second)):
            if await allowed(table, limit):
                counts[name] += 1
            else:
                refused.add(name)

    assert counts["first"] + counts["second"] == 50
    assert min(counts.values()) > 0
    assert await counter() == 50


async def test_concurrent_holders_never_pass_the_limit() -> None:
    tables, limit = [LeaseTable() for _ in range(4)], RateLimit(60, 60)

    results = await asyncio.gather(*(allowed(tables[n % 4], limit) for n in range(400)))

    assert 0 < sum(results) <= 60
    assert await counter() <= 60


async def test_a_cost_too_big_for_the_lease_gives_back_its_permits_first() -> None:
    table, limit = LeaseTable(), RateLimit(10, 60)
    assert await allowed(table, limit)
    assert await allowed(table, limit)  # leases a block of 2: one permit still in hand

    assert not await allowed(table, limit, cost=9)  # 8 left in all: refused, nothing used
    assert await allowed(table, limit, cost=8)
    assert not await allowed(table, limit)
    assert await counter() == 10


async def test_the_lease_ends_with_its_window() -> None:
    table, limit = LeaseTable(), RateLimit(3, 1)
    assert [await allowed(table, limit) for _ in range(4)] == [True, True, True, False]
    await wait_for_window_reset()

    result = await table.take(storage(), rate_limit_keys(*KEYS), limit, 1)

    assert (result.is_over_limit, result.request_count, result.remaining) == (False, 1, 2)


async def test_another_processs_override_applies_at_the_next_lease() -> None:
    table, limit = LeaseTable(), RateLimit(1000, 60)
    keys = rate_limit_keys(*KEYS)
    results = [await table.take(storage(), keys, limit, 1) for _ in range(4)]  # blocks 1, 2, 4
    # Written as another process would: this process's lease generation does not change.
    await get_async_redis_instance("ratelimit").hset(
        keys[1], mapping={"max_requests": 5, "expiry": 60}
    )

    in_hand = [await table.take(storage(), keys, limit, 1) for _ in range(3)]
    renewed = await table.take(storage(), keys, limit, 1)

    assert {r.effective_max_requests for r in results + in_hand} == {1000}
    assert [r.request_count for r in in_hand] == [5, 6, 7]
    # The lease call gave back nothing (the block was spent) and 7 + 1 passes 5: refused.
    assert (renewed.is_over_limit, renewed.effective_max_requests) == (True, 5)
    assert await counter() == 7


async def test_an_override_written_here_applies_at_the_next_request() -> None:
    table, limit = LeaseTable(), RateLimit(1000, 60)
    keys = rate_limit_keys(*KEYS)
    for _ in range(4):
        await table.take(storage(), keys, limit, 1)  # blocks 1, 2, 4: three permits in hand
    redis = get_async_redis_instance("ratelimit")
    await set_rate_limit_override(redis, *KEYS, 6, 30)

    result = await table.take(storage(), keys, limit, 1)

    # The renewal gave the three unspent permits back before counting against the override.
    assert (result.effective_max_requests, result.effective_expiry_s) == (6, 30)
    assert (result.request_count, await counter()) == (5, 5)


class CountingStorage:
    """Counts lease calls and the most that were in flight at once."""

    def __init__(self, inner: AsyncRedisStorage) -> None:
        self.inner, self.calls, self.in_flight, self.most = inner, 0, 0, 0

    async def run_lease(self, keys: Sequence[str], args: Sequence[int]) -> list[int]:
        self.calls += 1
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            return await self.inner.run_lease(keys, args)
        finally:
            self.in_flight -= 1


async def test_concurrent_requests_share_one_lease_call() -> None:
    table, spy, limit = LeaseTable(), CountingStorage(storage()), RateLimit(100, 60)
    keys = rate_limit_keys(*KEYS)

    takes = (table.take(spy, keys, limit, 1) for _ in range(200))  # type: ignore[arg-type]
    results = await asyncio.gather(*takes)

    assert sum(not r.is_over_limit for r in results) == 100
    assert spy.most == 1
    assert spy.calls < 100
    assert await counter() == 100


class DelayedStorage:
    """Runs `before()` ahead of each lease call that gives permits back, as a slow network would."""

    def __init__(self, inner: AsyncRedisStorage, before: Callable[[], Awaitable[None]]) -> None:
        self.inner, self.before = inner, before

    async def run_lease(self, keys: Sequence[str], args: Sequence[int]) -> list[int]:
        if args[4] > 0:  # returned permits
            await self.before()
        return await self.inner.run_lease(keys, args)


async def test_permits_returned_after_their_window_ended_are_not_given_to_the_next() -> None:
    slow, other, limit = LeaseTable(), LeaseTable(), RateLimit(100, 2)
    keys = rate_limit_keys(*KEYS)
    granted_next = 0

    async def cross_the_boundary() -> None:
        # The window ends while the call is on its way; another process fills the next one.
        nonlocal granted_next
        await wait_for_window_reset()
        while await allowed(other, limit):
            granted_next += 1

    delayed = DelayedStorage(storage(), cross_the_boundary)
    for _ in range(2):  # blocks 1 and 2: one permit still in hand, its window still live
        assert not (await slow.take(delayed, keys, limit, 1)).is_over_limit  # type: ignore[arg-type]

    # Cost 3 renews the lease before its deadline, sending the one permit back.
    late = await slow.take(delayed, keys, limit, 3)  # type: ignore[arg-type]
    while await allowed(other, limit):
        granted_next += 1

    assert late.is_over_limit
    assert (granted_next, await counter()) == (100, 100)


async def test_remaining_never_goes_up_within_a_window_in_one_process() -> None:
    first, second, limit = LeaseTable(), LeaseTable(), RateLimit(1000, 60)
    keys = rate_limit_keys(*KEYS)
    for _ in range(16):  # blocks 1, 2, 4, 8, 16: the second process holds 15 unspent
        await second.take(storage(), keys, limit, 1)
    seen = [(await first.take(storage(), keys, limit, 1)).remaining]

    # The second process gives its 15 back (a request too big to fit): the counter goes down.
    assert (await second.take(storage(), keys, limit, 2000)).is_over_limit
    seen += [(await first.take(storage(), keys, limit, 1)).remaining for _ in range(3)]

    assert seen == sorted(seen, reverse=True)
    assert await counter() < 1000 - seen[-1]  # Redis's count did go down
