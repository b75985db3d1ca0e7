"""The miss path: in-process cache, then Redis, then the authority, one lookup per key at once.

Callers check `LOCAL` themselves first (the hit path) and come here only on a miss. The
authority call is passed in, so FastAPI can run it in the threadpool and Django directly;
whichever authority answered, its answer is checked here before it is cached or used.

The built-in `static` authority is the exception: its table is in this process, so a miss is
answered from it (`static_answer`) with no Redis round trip, no thread and no authority slot.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from prometheus_client import Counter

from appkit_runtime.auth import redis_cache, static_keys
from appkit_runtime.auth.authorities import get_authority
from appkit_runtime.auth.cache import LOCAL, local_ttl
from appkit_runtime.auth.flights import AsyncFlights, Slots, SyncFlights
from appkit_runtime.auth.http_authority import close_http_authority
from appkit_runtime.auth.log_throttle import LogThrottle
from appkit_runtime.auth.token_validation import checked_answer
from appkit_runtime.errors import AuthorityBusy, AuthorityUnavailable
from appkit_runtime.settings import Settings, get_settings
from appkit_runtime.tokens import ProjectToken

Answer = tuple[ProjectToken | None, float]

logger = logging.getLogger("appkit_runtime.auth")
_unavailable = LogThrottle(redis_cache.WARN_INTERVAL_SECONDS)
_busy = LogThrottle(redis_cache.WARN_INTERVAL_SECONDS)
_async_flights: AsyncFlights[ProjectToken | None] = AsyncFlights()
_sync_flights: SyncFlights[ProjectToken | None] = SyncFlights()
# One bound for the process: FastAPI's event loops and Django's threads share the authority.
_authority_slots = Slots()

REFUSED = Counter(
    "appkit_auth_lookups_refused",
    "Uncached keys answered 503 because APPKIT_AUTH_MAX_CONCURRENT authority calls were in flight",
)


def _keep_locally(
    digest: bytes, token: ProjectToken | None, ttl: float, settings: Settings
) -> None:
    LOCAL.put(
        digest,
        token,
        local_ttl(token, ttl, settings.auth_cache_ttl, settings.auth_negative_ttl),
        max_invalid=settings.auth_negative_cache_max,
    )


def shared_ttl(token: ProjectToken | None, ttl: float, settings: Settings) -> float:
    """How long Redis keeps an answer: the authority's ttl, capped for invalid keys."""
    return ttl if token is not None else min(ttl, settings.auth_negative_ttl)


def static_backend() -> bool:
    """Whether the configured authority is the built-in static key table."""
    return get_authority() is static_keys.STATIC_AUTHORITY


def static_answer(digest: bytes) -> ProjectToken | None:
    """The static table's token for `digest` (None: unknown), asked directly.

    Every process holds the whole table, so the Redis cache could only add a round trip to
    each miss (and, after a restart, serve answers of a table since changed), and a
    remembered unknown key would cost as much as looking it up again: an unknown key costs
    one dict lookup and leaves nothing behind, which a flood of random keys cannot make
    dear. A valid key is kept in-process, as any authority's answer, for the hit path.
    """
    token = static_keys.lookup(digest)
    if token is not None:
        settings = get_settings()
        _keep_locally(digest, token, settings.auth_cache_ttl, settings)
    return token


def _log_unavailable(error: AuthorityUnavailable) -> None:
    _unavailable.warning(logger, "Key authority unavailable: %s", error)


def _take_slot(settings: Settings) -> None:
    """Count this authority call in, or refuse it (`AuthorityBusy`) when the bound is reached."""
    if not _authority_slots.try_take(settings.auth_max_concurrent):
        REFUSED.inc()
        _busy.warning(
            logger,
            "APPKIT_AUTH_MAX_CONCURRENT=%d authority calls in flight; answering 503",
            settings.auth_max_concurrent,
        )
        raise AuthorityBusy("too many key lookups in flight")


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
    _take_slot(settings)
    try:
        token, ttl = checked_answer(await ask())
    except AuthorityUnavailable as error:
        _log_unavailable(error)
        raise
    finally:
        _authority_slots.give_back()
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
    _take_slot(settings)
    try:
        token, ttl = checked_answer(ask())
    except AuthorityUnavailable as error:
        _log_unavailable(error)
        raise
    finally:
        _authority_slots.give_back()
    _keep_locally(digest, token, ttl, settings)
    redis_cache.store_sync(digest, token, shared_ttl(token, ttl, settings))
    return token


def reset_auth_caches() -> None:
    """Forget every in-process auth state: cached answers, lookups under way, the http
    client and the log throttles. Keys registered by tests stay registered."""
    LOCAL.clear()
    _async_flights.clear()
    _sync_flights.clear()
    close_http_authority()
    redis_cache.throttle.reset()
    redis_cache.command_errors.reset()
    _unavailable.reset()
    _busy.reset()
