"""Storage primitives over one Redis (or Redis Cluster) client, sync and async side by side.

This is the storage edge: every Redis call of the rate limiter goes through these classes,
and any client error leaves them as `StorageError`, so callers handle one exception type.
Scripts are registered once per client object (redis-py sends them by SHA and reloads them
on `NOSCRIPT`), never per request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisClusterException, RedisError

from appkit_runtime.errors import StorageCommandError, StorageError
from appkit_runtime.loop_cache import LoopCache
from appkit_runtime.ratelimit.scripts import (
    ORG_OVERRIDES_READ_LUA,
    OVERRIDE_DELETE_LUA,
    OVERRIDE_SET_LUA,
    PROJECT_RATE_LEASE_LUA,
    PROJECT_RATE_LIMITER_LUA,
)
from appkit_runtime.redis_errors import is_outage, server_message
from appkit_runtime.tracing import traced

if TYPE_CHECKING:
    from appkit_runtime.ratelimit.leases import LeaseTable

_BACKEND_ERRORS = (RedisError, RedisClusterException, OSError)


def storage_error(error: BaseException) -> StorageError:
    """The one translation of a Redis client error into the runtime's `StorageError`: an
    outage, or a `StorageCommandError` when Redis is up but refused the command."""
    if is_outage(error):
        return StorageError(f"Redis is unavailable: {type(error).__name__}: {error}")
    return StorageCommandError(f"Redis answered an error: {server_message(error)}")


# One organisation override as the read script returns it: `(member, [max, expiry, pttl])`.
IndexedOverride = tuple[str, list[Any]]


def _decoded(members: Any) -> list[str]:
    return sorted(m.decode() if isinstance(m, bytes) else m for m in members)


class RedisStorage:
    """Synchronous primitives: the limiter script, for sync views, and the org-override read."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._limiter = client.register_script(PROJECT_RATE_LIMITER_LUA)
        self._read_org = client.register_script(ORG_OVERRIDES_READ_LUA)

    def run_limiter(self, keys: Sequence[str], args: Sequence[int]) -> list[int]:
        try:
            return self._limiter(keys, args)
        except _BACKEND_ERRORS as error:
            raise storage_error(error) from error

    def read_indexed_overrides(
        self, index_key: str, key_of: Callable[[str], str]
    ) -> list[IndexedOverride]:
        """Every override listed in `index_key`: one SMEMBERS, then one script call."""
        try:
            members = _decoded(self._client.smembers(index_key))
            if not members:
                return []
            replies = self._read_org([index_key, *map(key_of, members)], members)
        except _BACKEND_ERRORS as error:
            raise storage_error(error) from error
        return list(zip(members, replies, strict=True))


class AsyncRedisStorage:
    """Asynchronous primitives: the limiter script and the override hashes with their index."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._limiter = client.register_script(PROJECT_RATE_LIMITER_LUA)
        self._lease = client.register_script(PROJECT_RATE_LEASE_LUA)
        self._set_override = client.register_script(OVERRIDE_SET_LUA)
        self._delete_overrides = client.register_script(OVERRIDE_DELETE_LUA)
        self._read_org = client.register_script(ORG_OVERRIDES_READ_LUA)
        # The quota leases held through this storage (made by `lease_table_for`): kept here,
        # where the hot path already is, instead of in a second per-loop map.
        self.lease_table: LeaseTable | None = None

    @traced("appkit.ratelimit.limit")
    async def run_limiter(self, keys: Sequence[str], args: Sequence[int]) -> list[int]:
        try:
            return await self._limiter(keys, args)
        except _BACKEND_ERRORS as error:
            raise storage_error(error) from error

    @traced("appkit.ratelimit.lease")
    async def run_lease(self, keys: Sequence[str], args: Sequence[int]) -> list[int]:
        """One call of the lease script (`PROJECT_RATE_LEASE_LUA`)."""
        try:
            return await self._lease(keys, args)
        except _BACKEND_ERRORS as error:
            raise storage_error(error) from error

    async def write_override(
        self,
        key: str,
        index_key: str,
        member: str,
        max_requests: int,
        expiry: int,
        ttl: int | None = None,
    ) -> None:
        """Store the override hash and index it in one atomic step; `ttl` lets it expire."""
        try:
            await self._set_override([key, index_key], [member, max_requests, expiry, ttl or 0])
        except _BACKEND_ERRORS as error:
            raise storage_error(error) from error

    async def read_overrides(self, keys: Sequence[str]) -> list[list[bytes | None]]:
        """`[max_requests, expiry]` of each override hash, in one pipeline."""
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hmget(key, "max_requests", "expiry")
                return await pipe.execute()
        except _BACKEND_ERRORS as error:
            raise storage_error(error) from error

    async def index_members(self, index_key: str) -> list[str]:
        """The routes listed in an override index, sorted."""
        try:
            members = await self._client.smembers(index_key)
        except _BACKEND_ERRORS as error:
            raise storage_error(error) from error
        return _decoded(members)

    @traced("appkit.ratelimit.override")
    async def read_indexed_overrides(
        self, index_key: str, key_of: Callable[[str], str]
    ) -> list[IndexedOverride]:
        """Every override listed in `index_key`: one SMEMBERS, then one script call."""
        try:
            members = _decoded(await self._client.smembers(index_key))
            if not members:
                return []
            replies = await self._read_org([index_key, *map(key_of, members)], members)
        except _BACKEND_ERRORS as error:
            raise storage_error(error) from error
        return list(zip(members, replies, strict=True))

    async def delete_overrides(
        self, index_key: str, keys: Sequence[str], paths: Sequence[str]
    ) -> int:
        """Delete override hashes and their index entries atomically; how many existed."""
        try:
            return int(await self._delete_overrides([index_key, *keys], list(paths)))
        except _BACKEND_ERRORS as error:
            raise storage_error(error) from error


# A registered script holds its client, so a weak map keyed by the client would keep it alive
# forever. Async storages are therefore kept per event loop, like the async clients they wrap,
# and go away with their loop; sync clients are process-wide and so are their storages.
_sync_storages: dict[Any, RedisStorage] = {}
_async_storages: LoopCache[AsyncRedisStorage] = LoopCache()


def storage_for(client: Any) -> RedisStorage:
    """The storage of a synchronous client, made (and its script registered) once."""
    storage = _sync_storages.get(client)
    if storage is None:
        storage = _sync_storages.setdefault(client, RedisStorage(client))
    return storage


def async_storage_for(client: Any) -> AsyncRedisStorage:
    """The storage of an async client on the running loop, made (scripts registered) once."""
    storages = _async_storages.current()
    storage = storages.get(client)
    if storage is None:
        storage = storages[client] = AsyncRedisStorage(client)
    return storage
