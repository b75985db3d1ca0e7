"""The miss path: in-process cache, then Redis, then the authority, one lookup per key at once.

Callers check `LOCAL` themselves first (the hit path) and come here only on a miss. The
authority call is passed in, so FastAPI can run it in the threadpool and Django directly;
whichever authority answered, its answer is checked here before it is cached or used.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from appkit_runtime.auth import redis_cache
from appkit_runtime.auth.cache import LOCAL, local_ttl
from appkit_runtime.auth.flights import AsyncFlights, SyncFlights
from appkit_runtime.auth.http_authority import close_http_authority
from appkit_runtime.auth.log_throttle import LogThrottle
from appkit_runtime.auth.static_keys import forget_table
from appkit_runtime.auth.token_validation import checked_answer
from appkit_runtime.errors import AuthorityUnavailable
from appkit_runtime.settings import Settings, get_settings
from appkit_runtime.tokens import ProjectToken

Answer = tuple[ProjectToken | None, float]

logger = logging.getLogger("appkit_runtime.auth")
_unavailable = LogThrottle(redis_cache.WARN_INTERVAL_SECONDS)
_async_flights: AsyncFlights[ProjectToken | None] = AsyncFlights()
_sync_flights: SyncFlights[ProjectToken | None] = SyncFlights()


def _keep_locally(
    digest: bytes, token: ProjectToken | None, ttl: float, settings: Settings
) -> None:
    LOCAL.put(
        digest, token, local_ttl(token, ttl, settings.auth_cache_ttl, settings.auth_negative_ttl)
    )


def shared_ttl(token: ProjectToken | None, ttl: float, settings: Settings) -> float:
    """How long Redis keeps an answer: the authority's ttl, capped for invalid keys."""
    return ttl if token is not None else min(ttl, settings.auth_negative_ttl)


def _log_unavailable(error: AuthorityUnavailable) -> None:
    _unavailable.warning(logger, "Key authority unavailable: %s", error)


async def resolve_async(digest: bytes, ask: Callable[[], Awaitable[Answer]]) -> ProjectToken | None:
    """The token of the key with `digest` (None: invalid); raises `AuthorityUnavailable`."""
    return await _async_flights.run(digest, lambda: _lookup_async(digest, ask))


async def _lookup_async(digest: bytes, ask: Callable[[], Awaitable[Answer]]) -> ProjectToken | None:
    settings = get_settings()
    entry = LOCAL.get(digest)
    if entry is not None:
        return entry[0]
    cached = await redis_cache.fetch_async(digest)
    if cached is not None:
        _keep_locally(digest, *cached, settings)
        return cached[0]
    try:
        token, ttl = checked_answer(await ask())
    except AuthorityUnavailable as error:
        _log_unavailable(error)
        raise
    _keep_locally(digest, token, ttl, settings)
    await redis_cache.store_async(digest, token, shared_ttl(token, ttl, settings))
    return token


def resolve_sync(digest: bytes, ask: Callable[[], Answer]) -> ProjectToken | None:
    """`resolve_async` for threads: sync Redis and a direct authority call (Django)."""
    return _sync_flights.run(digest, lambda: _lookup_sync(digest, ask))


def _lookup_sync(digest: bytes, ask: Callable[[], Answer]) -> ProjectToken | None:
    settings = get_settings()
    entry = LOCAL.get(digest)
    if entry is not None:
        return entry[0]
    cached = redis_cache.fetch_sync(digest)
    if cached is not None:
        _keep_locally(digest, *cached, settings)
        return cached[0]
    try:
        token, ttl = checked_answer(ask())
    except AuthorityUnavailable as error:
        _log_unavailable(error)
        raise
    _keep_locally(digest, token, ttl, settings)
    redis_cache.store_sync(digest, token, shared_ttl(token, ttl, settings))
    return token


def reset_auth_caches() -> None:
    """Forget every in-process auth state: cached answers, lookups under way, key tables,
    the http client and the log throttles. Keys registered by tests stay registered."""
    LOCAL.clear()
    _async_flights.clear()
    _sync_flights.clear()
    forget_table()
    close_http_authority()
    redis_cache.throttle.reset()
    redis_cache.command_errors.reset()
    _unavailable.reset()
