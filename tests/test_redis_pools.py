from __future__ import annotations

import asyncio
import logging

import pytest

from appkit_runtime.redis_pools import close_redis_connections
from appkit_runtime.settings import get_async_redis_instance, get_redis_instance, get_settings

pytestmark = pytest.mark.usefixtures("real_redis")


async def test_one_pool_per_name_reused_and_distinct() -> None:
    first = get_async_redis_instance("ratelimit")
    again = get_async_redis_instance("ratelimit")
    other = get_async_redis_instance("authentication_cache")
    assert first is again
    assert first.connection_pool is again.connection_pool
    assert other.connection_pool is not first.connection_pool
    assert await first.ping() and await other.ping()
    await close_redis_connections()


def test_pools_are_never_shared_across_event_loops() -> None:
    async def pool_and_ping() -> object:
        client = get_async_redis_instance("ratelimit")
        await client.set(f"{get_settings().redis_prefix}:loop", "1")
        pool = client.connection_pool
        await close_redis_connections()
        return pool

    # Each asyncio.run is a new loop, as pytest-asyncio gives each test.
    assert asyncio.run(pool_and_ping()) is not asyncio.run(pool_and_ping())


async def test_close_disconnects_and_the_next_call_makes_a_new_pool() -> None:
    client = get_async_redis_instance("ratelimit")
    await client.ping()
    pool = client.connection_pool
    (connection,) = pool._available_connections
    assert connection.is_connected
    await close_redis_connections()
    assert not connection.is_connected
    assert get_async_redis_instance("ratelimit") is not client
    await close_redis_connections()


def test_sync_client_is_cached_per_name() -> None:
    client = get_redis_instance("ratelimit")
    assert client is get_redis_instance("ratelimit")
    assert client.connection_pool is not get_redis_instance("metrics").connection_pool
    assert client.ping()


async def test_memory_redis_runs_lua_and_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import appkit_runtime.redis_pools as pools

    monkeypatch.setenv("APPKIT_REDIS_URL", "memory://")
    monkeypatch.setattr(pools, "_warned_memory", False)
    get_settings.cache_clear()
    with caplog.at_level(logging.WARNING, logger="appkit_runtime"):
        client = get_async_redis_instance("ratelimit")
        script = client.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        assert await script(["memory-counter"], [5]) == 5
        assert await script(["memory-counter"], [2]) == 7
        get_async_redis_instance("metrics")
    warnings = [r for r in caplog.records if "memory://" in r.getMessage()]
    assert len(warnings) == 1
    # Sync and async clients of the same URL see the same in-process data.
    assert get_redis_instance("ratelimit").get("memory-counter") == b"7"
    await close_redis_connections()


def test_memory_redis_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    from appkit_runtime.errors import ConfigurationError

    monkeypatch.setenv("APPKIT_ENV", "production")
    monkeypatch.setenv("APPKIT_REDIS_URL", "memory://")
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="memory:// .* refused"):
        get_async_redis_instance("ratelimit")
