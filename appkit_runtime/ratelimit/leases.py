"""Quota leases: one script call reserves a block of a project's permits, spent in memory.

The hot path of `ProjectRateLimiter` then costs no Redis round trip while this process holds
permits. Redis still arbitrates every block (`PROJECT_RATE_LEASE_LUA`), so the limit never
overshoots across processes; blocks shrink to one permit near the limit and unspent permits
are given back at the next lease, to the window that granted them only, so a single process
stays exact and a late return cannot free permits of the next window.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from appkit_runtime.ratelimit.keys import rate_limit_keys
from appkit_runtime.ratelimit.org_cache import ORG_OVERRIDES, UNREAD
from appkit_runtime.ratelimit.results import RateLimitResult
from appkit_runtime.ratelimit.storage import AsyncRedisStorage, async_storage_for
from appkit_runtime.settings import RateLimit, Settings, get_settings

# The largest block a process asks for; its block doubles each time it spends one up.
MAX_BLOCK = 1024
# Past this many leases, a lease call first drops those whose window has ended.
_PRUNE_ABOVE = 10_000

_generation = 0


def invalidate_leases() -> None:
    """Make every lease of this process renew at its next use (after an override write here)."""
    global _generation
    _generation += 1


@dataclass(slots=True)
class Lease:
    """Permits in hand for one counter key, until `deadline` (monotonic) ends their window."""

    limit: RateLimit  # the limit the caller passed (before the project override)
    generation: int
    left: int
    counter: int  # the Redis counter after the lease call, every lease held included
    max_requests: int
    expiry: int
    deadline: float
    block: int
    window: int  # the window that granted the permits, named by the lease script
    reported: int = 0  # the highest count this process answered with in the window

    def same_window(self, window: int) -> bool:
        """Whether `window` (as the script names it) is this lease's; ends of two windows are
        at least a second apart, the same one's within a millisecond or two."""
        return abs(self.window - window) < 500

    def usable(self, limit: RateLimit, cost: int, now: float) -> bool:
        return (
            self.left >= cost
            and now < self.deadline
            and self.generation == _generation
            and self.limit == limit
        )

    def take(self, cost: int) -> None:
        """Spend `cost` permits in place; `reported` counts what is spent, not what is held.

        The count never goes down within a window in this process, so neither does `r`
        between a client's requests: permits another process gives back lower the counter.
        """
        self.left -= cost
        spent = self.counter - self.left
        if spent > self.reported:
            self.reported = spent

    def ttl_ms(self, now: float) -> int:
        """Milliseconds left in the lease's window, at least 1 (as Redis's PTTL would say)."""
        return max(1, int((self.deadline - now) * 1000))

    def spend(self, cost: int, now: float) -> RateLimitResult:
        """Spend `cost` permits and say so as a limiter result."""
        self.take(cost)
        return RateLimitResult(
            False, self.reported, self.ttl_ms(now), self.max_requests, self.expiry
        )


@dataclass(slots=True)
class _Waiter:
    """A request queued behind the lease call in flight, answered in arrival order."""

    limit: RateLimit
    cost: int
    future: asyncio.Future[RateLimitResult]


def _next_block(old: Lease | None, live: bool) -> int:
    """Double while blocks are spent in their window; halve after one ended unspent."""
    if old is None:
        return 1
    if live:
        return min(old.block * 2, MAX_BLOCK)
    return old.block if old.left == 0 else max(1, old.block // 2)


class LeaseTable:
    """One process's leases on one Redis client, and at most one lease call per key in flight."""

    def __init__(self) -> None:
        self._leases: dict[str, Lease] = {}
        self._queues: dict[str, deque[_Waiter]] = {}
        self._drains: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    def spend(self, key: str, limit: RateLimit, cost: int) -> RateLimitResult | None:
        """Spend `cost` permits of the lease held for `key`, without awaiting; None when the
        lease cannot serve them now (none held, spent, expired, or a lease call in flight)."""
        now = time.monotonic()
        lease = self.usable_lease(key, limit, cost, now)
        return None if lease is None else lease.spend(cost, now)

    def usable_lease(self, key: str, limit: RateLimit, cost: int, now: float) -> Lease | None:
        """The lease held for `key` if it can serve `cost` permits of `limit` at `now`."""
        lease = self._leases.get(key)
        if lease is None or key in self._queues or not lease.usable(limit, cost, now):
            return None
        return lease

    async def take(
        self, storage: AsyncRedisStorage, keys: Sequence[str], limit: RateLimit, cost: int
    ) -> RateLimitResult:
        """Spend `cost` permits from the lease, or queue behind the one lease call in flight.

        Queued requests are answered in arrival order, as Redis would have counted them;
        a request is refused when Redis cannot give its cost.
        """
        return self.spend(keys[0], limit, cost) or await self.wait_for_lease(
            storage, keys, limit, cost
        )

    async def wait_for_lease(
        self, storage: AsyncRedisStorage, keys: Sequence[str], limit: RateLimit, cost: int
    ) -> RateLimitResult:
        """Queue a request `spend` could not serve behind the lease call for its key, which
        starts here when none is in flight."""
        key = keys[0]
        loop = asyncio.get_running_loop()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            drain = loop.create_task(self._drain(storage, keys, queue))
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        waiter = _Waiter(limit, cost, loop.create_future())
        queue.append(waiter)
        return await waiter.future

    async def _drain(
        self, storage: AsyncRedisStorage, keys: Sequence[str], queue: deque[_Waiter]
    ) -> None:
        """Serve the queue in order, one lease call at a time, until it is empty."""
        key = keys[0]
        try:
            while queue:
                head = queue[0]
                if head.future.done():  # its request went away
                    queue.popleft()
                    continue
                lease = self._leases.get(key)
                if lease is None or not lease.usable(head.limit, head.cost, time.monotonic()):
                    refusal = await self._renew(storage, keys, head.limit, head.cost)
                    if refusal is not None:
                        _refuse(queue, refusal, head.cost)
                        continue
                    lease = self._leases[key]
                _hand_out(queue, lease)
        except asyncio.CancelledError:
            for waiter in queue:
                waiter.future.cancel()
            raise
        except Exception as error:  # StorageError, for every request waiting on Redis
            for waiter in queue:
                if not waiter.future.done():
                    waiter.future.set_exception(error)
        finally:
            queue.clear()
            if self._queues.get(key) is queue:
                del self._queues[key]

    async def _renew(
        self, storage: AsyncRedisStorage, keys: Sequence[str], limit: RateLimit, cost: int
    ) -> RateLimitResult | None:
        """Give back this window's unspent permits and lease a new block; the refusal if none."""
        key = keys[0]
        sent = time.monotonic()
        old = self._leases.pop(key, None)
        live = old is not None and sent < old.deadline
        returned = old.left if old is not None and live else 0
        window = old.window if old is not None and live else 0
        block = _next_block(old, live)
        generation = _generation
        if len(self._leases) > _PRUNE_ABOVE:
            self._prune(sent)
        reply = await storage.run_lease(
            keys, (limit.max_requests, limit.expiry, cost, block, returned, window)
        )
        over, counter, ttl_ms, max_requests, expiry, granted, window = map(int, reply)
        if over:
            return RateLimitResult(True, counter, ttl_ms, max_requests, expiry)
        lease = Lease(limit, generation, granted, counter, max_requests, expiry, 0.0, block, window)
        lease.deadline = sent + ttl_ms / 1000
        if old is not None and old.same_window(window):
            lease.reported = old.reported
        self._leases[key] = lease
        return None

    def _prune(self, now: float) -> None:
        for key in [k for k, lease in self._leases.items() if now >= lease.deadline]:
            del self._leases[key]


def _hand_out(queue: deque[_Waiter], lease: Lease) -> None:
    """Answer queued requests in order while the lease covers them."""
    now = time.monotonic()
    while queue:
        waiter = queue[0]
        if not waiter.future.done():
            if not lease.usable(waiter.limit, waiter.cost, now):
                return
            waiter.future.set_result(lease.spend(waiter.cost, now))
        queue.popleft()


def _refuse(queue: deque[_Waiter], refusal: RateLimitResult, want: int) -> None:
    """Refuse every queued request Redis could not have served either (cost >= `want`)."""
    kept = [w for w in queue if not w.future.done() and w.cost < want]
    for waiter in queue:
        if not waiter.future.done() and waiter.cost >= want:
            waiter.future.set_result(refusal)
    queue.clear()
    queue.extend(kept)


def lease_table_for(storage: AsyncRedisStorage) -> LeaseTable:
    """The leases held through `storage` (one per client and event loop), made once."""
    table = storage.lease_table
    if table is None:
        table = storage.lease_table = LeaseTable()
    return table


async def hit_leased(
    client: Any,
    org_id: str,
    project_id: str,
    path: str,
    limit: RateLimit,
    cost: int = 1,
    *,
    settings: Settings | None = None,
) -> RateLimitResult:
    """`hit` through this process's lease: same limits, overrides, cost and result.

    `settings`: the current ones, when the caller has read them already. Raises
    `StorageError` when a lease call is needed and Redis cannot be reached.
    """
    if settings is None:
        settings = get_settings()
    keys = rate_limit_keys(org_id, project_id, path, settings=settings)
    override = ORG_OVERRIDES.cached_limit(client, org_id, path, settings)
    if override is UNREAD:
        override = await ORG_OVERRIDES.limit_for(client, org_id, path)
    limit = override or limit
    storage = async_storage_for(client)
    table = lease_table_for(storage)
    # `take` inlined: most requests are served by `spend`, with no coroutine made or awaited.
    return table.spend(keys[0], limit, cost) or await table.wait_for_lease(
        storage, keys, limit, cost
    )
