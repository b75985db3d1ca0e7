"""A command Redis refuses while up is logged as that, apart from the outage warning."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI

from appkit_runtime.auth.log_throttle import LogThrottle
from appkit_runtime.ratelimit import failure, rate_limit_keys

AppFactory = Callable[..., FastAPI]
ClientFactory = Callable[[FastAPI], httpx.AsyncClient]


async def test_a_refused_command_is_logged_as_such_and_an_outage_still_shows(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    real_redis: str,
    redis_server: Any,
    ratelimit_redis: Callable[[str], None],
    app_factory: AppFactory,
    client_factory: ClientFactory,
) -> None:
    monkeypatch.setattr(failure, "_last_logged", None)
    monkeypatch.setattr(failure, "_command_errors", LogThrottle(60.0))
    caplog.set_level(logging.WARNING, logger="appkit_runtime.ratelimit")
    counter, _ = rate_limit_keys("org-1", "project-1", "/items/{item_id}")
    with redis.Redis.from_url(real_redis) as shared:
        shared.hset(counter, "not", "a counter")  # the script's INCRBY: WRONGTYPE, Redis up
    client = client_factory(app_factory(max_requests=5, expiry=60))

    refused = [(await client.get("/items/1")).status_code for _ in range(2)]
    ratelimit_redis(redis_server.url)  # never started: nothing listens there
    down = (await client.get("/items/1")).status_code

    assert refused == [200, 200] and down == 200  # both fail open, the default
    lines = [r.getMessage() for r in caplog.records if r.name == "appkit_runtime.ratelimit"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("rate limit not applied, letting requests through: Redis answered")
    assert "WRONGTYPE" in lines[0] and counter not in lines[0]
    assert lines[1].startswith("rate limiting unavailable, letting requests through")
