"""Quota leases: one script call reserves a block of a project's permits, spent in memory.

The hot path of `ProjectRateLimiter` then costs no Redis round trip while this process holds
permits. Redis still arbitrates every block (`PROJECT_RATE_LEASE_LUA`), so the limit never
overshoots across processes; blocks shrink to one permit near the limit and unspent permits
are given back at the next lease of the same window, so a single process stays exact.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from appkit_runtime.ratelimit.keys import rate_limit_keys
from appkit_runtime.ratelimit.org_cache import ORG_OVERRIDES
from appkit_runtime.ratelimit.results import RateLimitResult
from appkit_runtime.ratelimit.storage import AsyncRedisStorage, async_storage_for
from appkit_runtime.settings import RateLimit

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

    def usable(self, limit: RateLimit, cost: int, now: float) -> bool:
        return (
            self.left >= cost
            and now < self.deadline
            and self.generation == _generation
            and self.limit == limit
        )

    def spend(self, cost: int, now: float) -> RateLimitResult:
        """Spend `cost` permits; the result counts what is spent, not what is held."""
        self.left -= cost
        ttl_ms = max(1, int((self.deadline - now) * 1000))
        return RateLimitResult(
            False, self.counter - self.left, ttl_ms, self.max_requests, self.expiry
        )


@dataclass(frozen=True, slots=True)
class _Outcome:
    """A lease call's answer: the caller's own result and the cost it asked for."""

    result: RateLimitResult
    want: int


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
        self._flights: dict[str, asyncio.Task[_Outcome]] = {}

    async def take(
        self, storage: AsyncRedisStorage, keys: Sequence[str], limit: RateLimit, cost: int
    ) -> RateLimitResult:
        """Spend `cost` permits from the lease, or wait for the one lease call in flight.

        A request that finds the lease empty starts the lease call; the others wait for it
        and then try the lease again. Refused when Redis cannot give this cost.
        """
        key = keys[0]
        while True:
            now = time.monotonic()
            lease = self._leases.get(key)
            if lease is not None and lease.usable(limit, cost, now):
                return lease.spend(cost, now)
            flight = self._flights.get(key)
            if flight is None:
                flight = asyncio.get_running_loop().create_task(
                    self._renew(storage, keys, limit, cost)
                )
                flight.add_done_callback(_retrieve)
                self._flights[key] = flight
                # Shielded: a request that goes away must not cancel the call others wait on.
                return (await asyncio.shield(flight)).result
            outcome = await asyncio.shield(flight)
            if outcome.result.is_over_limit and cost >= outcome.want:
                return outcome.result

    async def _renew(
        self, storage: AsyncRedisStorage, keys: Sequence[str], limit: RateLimit, cost: int
    ) -> _Outcome:
        """Give back the unspent permits of this window, take a new block; raises StorageError."""
        key = keys[0]
        try:
            sent = time.monotonic()
            old = self._leases.pop(key, None)
            live = old is not None and sent < old.deadline
            returned = old.left if old is not None and live else 0
            block = _next_block(old, live)
            generation = _generation
            if len(self._leases) > _PRUNE_ABOVE:
                self._prune(sent)
            reply = await storage.run_lease(
                keys, (limit.max_requests, limit.expiry, cost, block, returned)
            )
            over, counter, ttl_ms, max_requests, expiry, granted = map(int, reply)
            if over:
                return _Outcome(RateLimitResult(True, counter, ttl_ms, max_requests, expiry), cost)
            lease = Lease(limit, generation, granted, counter, max_requests, expiry, 0.0, block)
            lease.deadline = sent + ttl_ms / 1000
            self._leases[key] = lease
            return _Outcome(lease.spend(cost, time.monotonic()), cost)
        finally:
            if self._flights.get(key) is asyncio.current_task():
                del self._flights[key]

    def _prune(self, now: float) -> None:
        for key in [k for k, lease in self._leases.items() if now >= lease.deadline]:
            del self._leases[key]


def _retrieve(task: asyncio.Task[_Outcome]) -> None:
    # Every waiter may have gone away: retrieve the error so asyncio does not log it.
    if not task.cancelled():
        task.exception()


_tables: WeakKeyDictionary[AsyncRedisStorage, LeaseTable] = WeakKeyDictionary()


def lease_table_for(storage: AsyncRedisStorage) -> LeaseTable:
    """The leases held through `storage` (one per client and event loop), made once."""
    table = _tables.get(storage)
    if table is None:
        table = _tables[storage] = LeaseTable()
    return table


async def hit_leased(
    client: Any, org_id: str, project_id: str, path: str, limit: RateLimit, cost: int = 1
) -> RateLimitResult:
    """`hit` through this process's lease: same limits, overrides, cost and result.

    Raises `StorageError` when a lease call is needed and Redis cannot be reached.
    """
    keys = rate_limit_keys(org_id, project_id, path)
    limit = await ORG_OVERRIDES.limit_for(client, org_id, path) or limit
    storage = async_storage_for(client)
    return await lease_table_for(storage).take(storage, keys, limit, cost)
