"""The fixed-window strategy over the storage primitives, one async and one sync entry.

Both framework adapters call these; neither builds keys nor talks to Redis itself.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from appkit_runtime.ratelimit.keys import make_client_rate_limit_key, rate_limit_keys
from appkit_runtime.ratelimit.org_cache import ORG_OVERRIDES
from appkit_runtime.ratelimit.results import RateLimitResult
from appkit_runtime.ratelimit.storage import async_storage_for, storage_for
from appkit_runtime.settings import RateLimit, get_settings, parse_rate_limit


async def hit(
    client: Any, org_id: str, project_id: str, path: str, limit: RateLimit, cost: int = 1
) -> RateLimitResult:
    """Count `cost` requests of a project on a route template against its limit.

    The limit is the project's override, else the organisation's (from this process's
    cache, passed in ARGV), else `limit`. Raises `StorageError` when Redis cannot be reached.
    """
    keys = rate_limit_keys(org_id, project_id, path)
    limit = await ORG_OVERRIDES.limit_for(client, org_id, path) or limit
    reply = await async_storage_for(client).run_limiter(
        keys, (limit.max_requests, limit.expiry, cost)
    )
    return RateLimitResult.from_reply(reply)


def hit_sync(
    client: Any, org_id: str, project_id: str, path: str, limit: RateLimit, cost: int = 1
) -> RateLimitResult:
    """The synchronous twin of `hit`, for sync Django views."""
    keys = rate_limit_keys(org_id, project_id, path)
    limit = ORG_OVERRIDES.limit_for_sync(client, org_id, path) or limit
    reply = storage_for(client).run_limiter(keys, (limit.max_requests, limit.expiry, cost))
    return RateLimitResult.from_reply(reply)


async def hit_client(
    client: Any, address: str, path: str, limit: RateLimit, cost: int = 1
) -> RateLimitResult:
    """Count `cost` requests of one client address on a route (no overrides apply)."""
    key = make_client_rate_limit_key(path, address)
    reply = await async_storage_for(client).run_limiter(
        (key,), (limit.max_requests, limit.expiry, cost)
    )
    return RateLimitResult.from_reply(reply)


# Larger values break inside Redis: Lua prints numbers with 14 digits (PEXPIRE of a huge
# expiry fails, so the limiter would fail open) and replies overflow to negative integers.
MAX_LIMIT_VALUE = 2**31 - 1


def check_positive_int(name: str, value: object) -> int:
    """`value` if it is an integer from 1 to `MAX_LIMIT_VALUE`, else `ValueError` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT_VALUE:
        raise ValueError(f"{name} must be an integer from 1 to {MAX_LIMIT_VALUE}, got {value!r}")
    return value


def effective_limit(
    token_limit: RateLimit | None, max_requests: int | None, expiry: int | None
) -> RateLimit:
    """The token's limit, else the route's arguments, else `APPKIT_RATELIMIT_DEFAULT`."""
    if token_limit is not None:
        return token_limit
    if max_requests is not None and expiry is not None:
        return RateLimit(max_requests, expiry)
    default = _parsed(get_settings().ratelimit_default)
    if max_requests is None and expiry is None:
        return default
    return RateLimit(max_requests or default.max_requests, expiry or default.expiry)


@lru_cache(maxsize=8)
def _parsed(text: str) -> RateLimit:
    return parse_rate_limit(text)
