"""A redis-server of the test's own: SCRIPT FLUSH, kill and restart, commands per request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI
from prometheus_client import REGISTRY

from appkit_runtime.ratelimit import failure
from appkit_runtime.settings import get_settings

AppFactory = Callable[..., FastAPI]
ClientFactory = Callable[[FastAPI], httpx.AsyncClient]


def fail_open_total() -> float:
    return REGISTRY.get_sample_value("appkit_ratelimit_fail_open_total") or 0.0


@pytest.fixture
def own_redis(redis_server: Any, ratelimit_redis: Callable[[str], None]) -> Any:
    """The `ratelimit` Redis dependency pointed at this test's own, started, redis-server."""
    redis_server.start()
    ratelimit_redis(redis_server.url)
    return redis_server


def admin(server: Any) -> redis.Redis:
    return redis.Redis.from_url(server.url)


async def test_script_flush_between_two_requests(
    own_redis: Any, app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    client = client_factory(app_factory(max_requests=5, expiry=60))

    first = await client.get("/items/1")
    with admin(own_redis) as server:
        server.script_flush()
    second = await client.get("/items/1")

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["ratelimit"].startswith('"default";r=4;')
    assert second.headers["ratelimit"].startswith('"default";r=3;')


async def test_a_request_sends_at_most_one_command_the_lease_script(
    own_redis: Any, app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    # With quota leases, a request costs a script call only when this process's lease runs
    # out (blocks of 1, 2, 4, ... permits), so 10 requests send from 1 to 10 EVALSHAs.
    client = client_factory(app_factory(max_requests=50, expiry=60))
    assert (await client.get("/items/1")).status_code == 200  # connects and loads the script
    with admin(own_redis) as server:
        server.config_resetstat()

        replies = [await client.get(f"/items/{n}") for n in range(10)]

        stats = server.info("commandstats")
    assert {reply.status_code for reply in replies} == {200}
    calls = {name.removeprefix("cmdstat_"): stat["calls"] for name, stat in stats.items()}
    sent = calls.pop("evalsha")
    assert 0 < sent < 10
    # Command stats also count what the script calls inside Redis: once each per call.
    inside = {name: n for name, n in calls.items() if name not in ("info", "config|resetstat")}
    assert set(inside) <= {"get", "hmget", "pttl", "time", "incrby", "pexpire"}
    assert set(inside.values()) == {sent}


async def test_redis_killed_fails_open_or_closed_never_500_and_recovers(
    monkeypatch: pytest.MonkeyPatch,
    own_redis: Any,
    app_factory: AppFactory,
    client_factory: ClientFactory,
) -> None:
    open_client = client_factory(app_factory(max_requests=1, expiry=60))
    closed_client = client_factory(app_factory(max_requests=1, expiry=60, fail_open=False))
    assert (await open_client.get("/items/1")).status_code == 200
    assert (await open_client.get("/items/1")).status_code == 429

    own_redis.stop()
    before = fail_open_total()
    failed_open = await open_client.get("/items/1")
    failed_closed = await closed_client.get("/items/1")

    assert failed_open.status_code == 200
    assert "ratelimit" not in failed_open.headers
    assert fail_open_total() == before + 1
    assert failed_closed.status_code == 503
    assert failed_closed.json() == {
        "detail": "Rate limiting is temporarily unavailable; retry later"
    }
    assert int(failed_closed.headers["retry-after"]) >= 1

    # Fail-closed from the environment, for limiters that did not choose.
    monkeypatch.setenv("APPKIT_RATELIMIT_FAIL_OPEN", "false")
    get_settings.cache_clear()
    assert (await open_client.get("/items/1")).status_code == 503

    # The same app, with no restart, limits again once Redis is back (empty, no scripts).
    own_redis.start()
    codes = [(await open_client.get("/items/1")).status_code for _ in range(2)]
    assert codes == [200, 429]


async def test_an_outage_is_logged_once_per_interval_and_every_request_counted(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    redis_server: Any,
    ratelimit_redis: Callable[[str], None],
    app_factory: AppFactory,
    client_factory: ClientFactory,
) -> None:
    monkeypatch.setattr(failure, "_last_logged", None)
    ratelimit_redis(redis_server.url)  # never started: nothing listens there
    client = client_factory(app_factory(max_requests=1, expiry=60))
    before = fail_open_total()

    codes = [(await client.get("/items/1")).status_code for _ in range(3)]

    assert codes == [200, 200, 200]
    assert fail_open_total() == before + 3
    warnings = [r for r in caplog.records if r.name == "appkit_runtime.ratelimit"]
    assert len(warnings) == 1
    assert "letting requests through" in warnings[0].getMessage()
