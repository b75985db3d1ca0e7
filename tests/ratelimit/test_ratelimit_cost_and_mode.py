"""Cost (several elements per request) and monitor mode, on the shared Redis."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from fastapi import Depends, FastAPI, Request, Response

from appkit_runtime.fastapi.ratelimit import ProjectRateLimiter, apply_rate_limit
from appkit_runtime.ratelimit import WOULD_REJECT_TOTAL, rate_limit_keys
from appkit_runtime.settings import get_async_redis_instance, get_settings
from tests.ratelimit.conftest import stand_in_authentication

AppFactory = Callable[..., FastAPI]
ClientFactory = Callable[[FastAPI], httpx.AsyncClient]
ROUTE = "/items/{item_id}"


def would_reject(route: str = ROUTE) -> float:
    return WOULD_REJECT_TOTAL.labels(route=route)._value.get()


async def counter(project: str = "project-1", route: str = ROUTE) -> int:
    key, _ = rate_limit_keys("org-1", project, route)
    return int(await get_async_redis_instance("ratelimit").get(key) or 0)


async def test_cost_50_against_120_allows_two_and_keeps_the_counter_at_100(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    client = client_factory(app_factory(max_requests=120, expiry=60, cost=50))

    replies = [await client.get("/items/1") for _ in range(3)]

    assert [reply.status_code for reply in replies] == [200, 200, 429]
    assert replies[1].headers["ratelimit"].startswith('"default";r=20;')
    assert await counter() == 100


async def test_apply_rate_limit_counts_a_batch_from_the_handler(
    client_factory: ClientFactory,
) -> None:
    app = FastAPI()

    @app.post("/batch", dependencies=[Depends(stand_in_authentication)])
    async def batch(request: Request, response: Response, size: int) -> dict[str, int]:
        await apply_rate_limit(request, count=size, response=response, max_requests=120, expiry=60)
        return {"accepted": size}

    client = client_factory(app)
    replies = [await client.post("/batch", params={"size": 50}) for _ in range(3)]
    small = await client.post("/batch", params={"size": 20})

    assert [reply.status_code for reply in replies] == [200, 200, 429]
    assert replies[0].headers["ratelimit-policy"] == '"default";q=120;w=60'
    assert replies[2].json() == {"detail": "Rate limit exceeded"}
    assert "retry-after" in replies[2].headers
    assert small.status_code == 200  # the refused 50 used no quota: 100 + 20 fits
    assert await counter(route="/batch") == 120


async def test_count_must_be_positive() -> None:
    app = FastAPI()

    @app.get("/bad", dependencies=[Depends(stand_in_authentication)])
    async def bad(request: Request) -> None:
        await apply_rate_limit(request, count=0)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        with pytest.raises(ValueError, match="count must be an integer from 1 to 2147483647"):
            await client.get("/bad")


def test_limiter_options_are_checked_at_construction() -> None:
    with pytest.raises(ValueError, match="cost"):
        ProjectRateLimiter(cost=0)
    with pytest.raises(ValueError, match="mode must be 'enforce' or 'monitor'"):
        ProjectRateLimiter(mode="off")  # type: ignore[arg-type]


async def test_monitor_lets_everything_through_and_counts_what_enforce_refuses(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    enforce = client_factory(app_factory(max_requests=7, expiry=60))
    monitor = client_factory(app_factory(max_requests=7, expiry=60, mode="monitor"))
    before = would_reject()

    enforced, monitored = await asyncio.gather(
        asyncio.gather(*(enforce.get("/items/1", headers={"x-project": "e"}) for _ in range(40))),
        asyncio.gather(*(monitor.get("/items/1", headers={"x-project": "m"}) for _ in range(40))),
    )

    refused = Counter(reply.status_code for reply in enforced)[429]
    assert Counter(reply.status_code for reply in monitored) == {200: 40}
    assert refused == 33
    assert would_reject() - before == refused
    # Monitor counts exactly as enforce does and still tells the client where it stands.
    assert await counter("m") == await counter("e") == 7
    assert all(reply.headers["ratelimit"].startswith('"default";r=') for reply in monitored)
    # Replies reach the limiter in no fixed order: the ones past the limit all say r=0.
    remaining = Counter(reply.headers["ratelimit"].split(";")[1] for reply in monitored)
    assert remaining["r=0"] == 40 - 7 + 1


async def test_appkit_ratelimit_mode_monitor_is_the_default_a_limiter_can_override(
    monkeypatch: pytest.MonkeyPatch, app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    monkeypatch.setenv("APPKIT_RATELIMIT_MODE", "monitor")
    get_settings.cache_clear()
    by_setting = client_factory(app_factory(max_requests=1, expiry=60))
    enforcing = client_factory(app_factory(max_requests=1, expiry=60, mode="enforce"))
    before = would_reject()

    monitored = [(await by_setting.get("/items/1")).status_code for _ in range(3)]
    enforced = [
        (await enforcing.get("/items/1", headers={"x-project": "p2"})).status_code for _ in range(3)
    ]

    assert (monitored, enforced) == ([200, 200, 200], [200, 429, 429])
    assert would_reject() - before == 2
