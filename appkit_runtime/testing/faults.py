"""Faults and time for one test: Redis, the database or the key authority gone, and a
rate-limit window ended at once, so outage and window tests need neither servers nor sleep."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import pytest

from appkit_runtime.settings import get_settings

RateLimitReset = Callable[[str, str, str], Awaitable[bool]]
RateLimitSpend = Callable[[str, str, str, str, int], Awaitable[int]]


def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def appkit_redis_down(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every Redis of the service refuses connections for this test; returns the dead URL."""
    url = f"redis://127.0.0.1:{closed_port()}/0"
    for variable in get_settings().redis_url_variables():
        monkeypatch.setenv(variable, url)
    get_settings.cache_clear()
    return url


@pytest.fixture
def appkit_database_down(monkeypatch: pytest.MonkeyPatch) -> str:
    """The default database refuses connections for this test (no shared transaction)."""
    url = f"postgresql://appkit@127.0.0.1:{closed_port()}/down"
    monkeypatch.setenv("APPKIT_DATABASE_URL", url)
    get_settings.cache_clear()
    return url


@pytest.fixture
def appkit_auth_down(monkeypatch: pytest.MonkeyPatch) -> str:
    """The key authority (http backend) refuses connections: uncached keys get 503."""
    url = f"http://127.0.0.1:{closed_port()}/keys"
    monkeypatch.setenv("APPKIT_AUTH_BACKEND", "http")
    monkeypatch.setenv("APPKIT_AUTH_URL", url)
    get_settings.cache_clear()
    return url


@pytest.fixture
def ratelimit_reset() -> RateLimitReset:
    """`await ratelimit_reset(org_id, project_id, "/items")`: end that window now.

    Deletes the project's counter on that route template (its override stays) and makes this
    process's leases renew; returns whether a window was running.
    """
    from appkit_runtime.ratelimit import rate_limit_keys
    from appkit_runtime.ratelimit.leases import invalidate_leases
    from appkit_runtime.settings import get_async_redis_instance

    async def reset(org_id: str, project_id: str, path: str) -> bool:
        counter, _override = rate_limit_keys(org_id, project_id, path)
        invalidate_leases()
        return bool(await get_async_redis_instance("ratelimit").delete(counter))

    return reset


@pytest.fixture
def ratelimit_spend() -> RateLimitSpend:
    """`await ratelimit_spend(org_id, project_id, "/items", "1000/60", 999)`: count 999
    requests of the project on that route template now, against the route's limit.

    The limiter's own script counts them (an override still wins), so a test reaches a large
    limit in two requests rather than a thousand; returns the permits left in the window.
    """
    from appkit_runtime.ratelimit.leases import invalidate_leases
    from appkit_runtime.ratelimit.limiter import hit
    from appkit_runtime.settings import get_async_redis_instance, parse_rate_limit

    async def spend(org_id: str, project_id: str, path: str, limit: str, count: int) -> int:
        client = get_async_redis_instance("ratelimit")
        result = await hit(client, org_id, project_id, path, parse_rate_limit(limit), count)
        invalidate_leases()
        return result.remaining

    return spend
