"""Outages under the drain worker: a Redis with `appendonly yes` killed and restarted while
entries are pending, and PostgreSQL unreachable; the worker waits, resumes, totals are exact."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from appkit_runtime.redis_pools import close_redis_connections
from appkit_runtime.settings import get_async_redis_instance, get_settings
from tests.billing.conftest import (
    DrainProcess,
    applied_flushes,
    drained,
    sink_totals,
    wait_until_drained,
)
from tests.billing.test_drain import keys, produce
from tests.conftest import RedisServer
from tests.reliability.servers import TcpProxy


@pytest.fixture
def aof_redis(
    stream_on: None, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> RedisServer:
    """The `metrics` Redis on a server of the test's own that writes every command to its AOF."""
    redis_server.options = ["--appendonly", "yes", "--appendfsync", "always"]
    redis_server.start()
    monkeypatch.setenv("APPKIT_REDIS_URL_METRICS", redis_server.url)
    get_settings.cache_clear()
    return redis_server


async def test_pending_entries_survive_a_restart_from_the_aof(
    aof_redis: RedisServer, sink: str, start_drain: Callable[..., DrainProcess]
) -> None:
    expected = await produce(projects=10, rounds=4)
    args = ["--database-url", sink, "--batch", "6", "--consumer", "w1", "--claim-idle", "1"]
    # Batch 3 committed, not acknowledged: 6 entries pending, 22 not yet delivered.
    status, _, err = start_drain(*args, "--once", fault=("after-commit", 3)).wait()
    assert status == -9, err
    assert await applied_flushes(sink) == 18

    await close_redis_connections()
    aof_redis.stop()  # SIGKILL
    worker = start_drain(*args)  # starts while Redis is down, and waits for it
    await worker.logged("usage drain: Redis failed")
    aof_redis.start()

    await produce(projects=10, rounds=2, expected=expected)
    await wait_until_drained(get_async_redis_instance("metrics"), keys())
    status, out, err = worker.stop()
    assert status == 0, err
    assert "Redis failed" in err and "works again" in err
    summary = drained(out)
    assert (summary["duplicates"], summary["lost"]) == (6, 0)
    assert await sink_totals(sink) == expected
    assert await applied_flushes(sink) == 60


async def test_the_worker_rides_out_a_database_outage(
    stream_on: None, sink: str, start_drain: Callable[..., DrainProcess]
) -> None:
    target = urlsplit(sink)
    proxy = TcpProxy((target.hostname or "127.0.0.1", target.port or 5432))
    try:
        proxied = target._replace(netloc=f"{target.netloc.rsplit(':', 1)[0]}:{proxy.port}")
        worker = start_drain("--database-url", proxied.geturl(), "--batch", "4")
        expected = await produce(projects=10, rounds=2)
        await wait_until_drained(get_async_redis_instance("metrics"), keys())
        proxy.cut()  # PostgreSQL unreachable while more usage arrives
        await produce(projects=10, rounds=2, expected=expected)
        await worker.logged("usage drain: PostgreSQL failed")
        proxy.restore()
        await wait_until_drained(get_async_redis_instance("metrics"), keys())
        status, out, err = worker.stop()
    finally:
        proxy.cut()
    assert status == 0, err
    assert "PostgreSQL failed" in err and "works again" in err
    assert drained(out)["applied"] == 40
    assert await sink_totals(sink) == expected
