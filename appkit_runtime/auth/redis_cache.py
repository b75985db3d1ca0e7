"""The shared `authentication_cache` in Redis: tokens by key digest, invalid keys too.

Names are `service_key("auth", <sha256 hex>)`, never the key. Any Redis failure makes the
caller skip this layer, so an unreachable cache never becomes a 500. An outage and an error
answer (a refused command) are logged apart, each at most once per interval, so one cannot
hide the other.
"""

from __future__ import annotations

import json
import logging

from redis.exceptions import RedisError

from appkit_runtime.auth.log_throttle import LogThrottle
from appkit_runtime.auth.token_validation import MalformedToken, check_token
from appkit_runtime.errors import ConfigurationError
from appkit_runtime.keys import service_key
from appkit_runtime.redis_errors import is_outage, server_message
from appkit_runtime.settings import RateLimit, get_async_redis_instance, get_redis_instance
from appkit_runtime.tokens import ProjectToken
from appkit_runtime.tracing import traced

REDIS_NAME = "authentication_cache"
WARN_INTERVAL_SECONDS = 60.0
_INVALID = b"-"
_FAILURES = (RedisError, OSError, ConfigurationError)

logger = logging.getLogger("appkit_runtime.auth")
throttle = LogThrottle(WARN_INTERVAL_SECONDS)
command_errors = LogThrottle(WARN_INTERVAL_SECONDS)

# What a lookup found: the token (None: known invalid) and its remaining seconds.
Cached = tuple[ProjectToken | None, float]


def redis_key(digest: bytes) -> str:
    """The Redis key of one API key: the service prefix and the key's SHA-256 in hex."""
    return service_key("auth", digest.hex())


def encode(token: ProjectToken | None) -> bytes:
    """A token as compact JSON; an invalid key as `-`."""
    if token is None:
        return _INVALID
    limit = list(token.rate_limit) if token.rate_limit is not None else None
    fields = [token.org_id, token.project_id, token.key_id, token.product]
    return json.dumps([*fields, sorted(token.scopes), limit], separators=(",", ":")).encode()


def decode(raw: bytes) -> ProjectToken | None:
    """The token `encode` wrote (None for an invalid key); ValueError for anything else."""
    if raw == _INVALID:
        return None
    try:
        org_id, project_id, key_id, product, scopes, limit = json.loads(raw)
        rate_limit = RateLimit(int(limit[0]), int(limit[1])) if limit is not None else None
        token = ProjectToken(org_id, project_id, key_id, product, frozenset(scopes), rate_limit)
        return check_token(token)
    except (TypeError, IndexError, KeyError, MalformedToken) as error:
        raise ValueError("not a cached token") from error


def _found(raw: bytes | None, pttl: int) -> Cached | None:
    if raw is None or pttl <= 0:
        return None
    try:
        return decode(raw), pttl / 1000
    except ValueError:
        return None


def _skip(error: Exception) -> None:
    """Log that the cache is skipped: an outage by its error type only (connection messages
    may hold URLs), an error answer with the server's message, each on its own throttle."""
    if isinstance(error, ConfigurationError) or is_outage(error):
        throttle.warning(
            logger,
            "Redis %r unreachable (%s); asking the key authority directly",
            REDIS_NAME,
            type(error).__name__,
        )
        return
    command_errors.warning(
        logger,
        "Redis %r answered an error, entry not cached or read (%s)",
        REDIS_NAME,
        server_message(error),
    )


@traced("appkit.auth.cache")
async def fetch_async(digest: bytes) -> Cached | None:
    """The cached answer for `digest`, or None when absent or Redis fails."""
    try:
        async with get_async_redis_instance(REDIS_NAME).pipeline(transaction=False) as pipe:
            raw, pttl = await pipe.get(redis_key(digest)).pttl(redis_key(digest)).execute()
    except _FAILURES as error:
        _skip(error)
        return None
    return _found(raw, pttl)


@traced("appkit.auth.cache_store")
async def store_async(digest: bytes, token: ProjectToken | None, ttl: float) -> None:
    """Cache the answer for `ttl` seconds (nothing for ttl under a millisecond)."""
    if ttl < 0.001:
        return
    try:
        await get_async_redis_instance(REDIS_NAME).set(
            redis_key(digest), encode(token), px=int(ttl * 1000)
        )
    except _FAILURES as error:
        _skip(error)


def fetch_sync(digest: bytes) -> Cached | None:
    """`fetch_async` for threads (Django)."""
    try:
        with get_redis_instance(REDIS_NAME).pipeline(transaction=False) as pipe:
            raw, pttl = pipe.get(redis_key(digest)).pttl(redis_key(digest)).execute()
    except _FAILURES as error:
        _skip(error)
        return None
    return _found(raw, pttl)


def store_sync(digest: bytes, token: ProjectToken | None, ttl: float) -> None:
    """`store_async` for threads (Django)."""
    if ttl < 0.001:
        return
    try:
        get_redis_instance(REDIS_NAME).set(redis_key(digest), encode(token), px=int(ttl * 1000))
    except _FAILURES as error:
        _skip(error)
