"""Redis stopped and restarted under load, and its script cache flushed, with no app restart."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from tests.reliability.conftest import ServiceFactory
from tests.reliability.load import Load
from tests.reliability.material import new_key, static_keys
from tests.reliability.servers import ServiceProcess
from tests.reliability.wire import Connection

pytestmark = pytest.mark.redis_server


@pytest.fixture
def own_redis(redis_server: Any) -> Any:
    """A started redis-server of this test's own: every Redis dependency of the service."""
    redis_server.start()
    return redis_server


async def exact_window(service: ServiceProcess, path: str, key: str, n: int) -> list[int]:
    """The statuses of `n` sequential requests."""
    async with Connection(service.port) as connection:
        replies = [await connection.get(path, key) for _ in range(n)]
    return [reply.status if reply else 0 for reply in replies]


async def metric(service: ServiceProcess, name: str) -> float:
    async with Connection(service.port) as connection:
        reply = await connection.get("/metrics")
    assert reply is not None
    for line in reply.body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_redis_killed_and_restarted_under_load(
    own_redis: Any, start_service: ServiceFactory
) -> None:
    busy, limited = new_key(), new_key()
    service = start_service(
        APPKIT_REDIS_URL=own_redis.url,
        APPKIT_API_KEYS=static_keys(
            (busy, "org", "busy", "1000000/600"), (limited, "org", "limited", "5/600")
        ),
    )
    load = Load(service.port, [("/items/1", busy), ("/closed/1", busy)], workers=20)
    async with load:
        await load.until(100)  # connections open, key cached
        load.phase = "up"
        await load.until(200, "up")

        own_redis.stop()
        load.phase = "down"
        await load.until(300, "down")
        # While Redis is down, fail-open lets a limited project past its limit.
        assert await exact_window(service, "/items/2", limited, 7) == [200] * 7

        own_redis.start()
        load.phase = "back"
        await load.until(300, "back")

    # Fail-open never answered anything but 200; fail-closed answered 503 while Redis was down.
    assert set(load.statuses("/items/1")) == {200}
    assert set(load.statuses("/closed/1")) <= {200, 503}
    assert load.statuses("/closed/1", "down")[503] > 0
    assert set(load.statuses("/closed/1", "up")) == {200}  # answered before the kill
    refusals = load.with_status(503)
    assert {r.headers.get("retry-after") for r in refusals} == {"5"}
    assert {json.loads(r.body)["detail"] for r in refusals} == {
        "Rate limiting is temporarily unavailable; retry later"
    }
    # The same process limits again: exactly 5 in the new window, on both routes.
    assert await exact_window(service, "/items/2", limited, 7) == [200] * 5 + [429] * 2
    assert await exact_window(service, "/closed/2", limited, 6) == [200] * 5 + [429]
    # Counted in /metrics and logged once, not once per request.
    assert await metric(service, "appkit_ratelimit_fail_open_total") > 0
    outages = [line for line in service.log().splitlines() if "rate limiting unavailable" in line]
    assert len(outages) == 1  # fail-open and fail-closed routes share one throttle


async def test_script_flush_under_load_is_reloaded_and_counts_stay_exact(
    own_redis: Any, start_service: ServiceFactory
) -> None:
    key = new_key()
    service = start_service(
        APPKIT_REDIS_URL=own_redis.url,
        APPKIT_API_KEYS=static_keys((key, "org", "flushed", "150/600")),
    )
    admin = redis.Redis.from_url(own_redis.url)
    load = Load(service.port, [("/items/7", key)], workers=10)
    async with load:
        for _ in range(5):
            await load.until(load.count() + 40)
            admin.script_flush()
        await load.until(300)
    admin.close()

    statuses = load.statuses("/items/7")
    assert set(statuses) == {200, 429}
    assert statuses[200] == 150
