"""The `http` key authority down, slow (past the time-out) or answering garbage."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.reliability.conftest import ServiceFactory
from tests.reliability.material import new_key
from tests.reliability.servers import KeyAuthority, ServiceProcess
from tests.reliability.wire import Connection, Reply

UNAVAILABLE = {"detail": "Key authority unavailable, retry later"}


def token(project: str) -> dict[str, object]:
    return {"org_id": "auth-org", "project_id": project, "rate_limit": "1000/600", "ttl": 300}


def http_authority_service(
    start_service: ServiceFactory, authority: KeyAuthority, timeout: str, **env: str
) -> ServiceProcess:
    return start_service(
        APPKIT_AUTH_BACKEND="http",
        APPKIT_AUTH_URL=authority.url,
        APPKIT_AUTH_TIMEOUT=timeout,
        APPKIT_AUTH_CACHE_TTL="300",
        **env,
    )


async def get(service: ServiceProcess, path: str, key: str | None = None) -> Reply:
    async with Connection(service.port) as connection:
        reply = await connection.get(path, key)
    assert reply is not None
    return reply


@pytest.mark.parametrize("fault", ["down", "slow", "garbage", "html", "error"])
async def test_uncached_keys_get_503_cached_keys_keep_working(
    fault: str, key_authority: KeyAuthority, start_service: ServiceFactory
) -> None:
    cached, uncached = new_key(), new_key()
    key_authority.tokens.update({cached: token("cached"), uncached: token("uncached")})
    service = http_authority_service(start_service, key_authority, timeout="0.5")
    assert (await get(service, "/items/1", cached)).status == 200

    if fault == "down":
        port = key_authority.port
        key_authority.down()
    else:
        key_authority.mode = fault
    refused = await get(service, "/items/1", uncached)
    still_served = await get(service, "/items/1", cached)

    assert refused.status == 503
    assert refused.headers["retry-after"] == "1"
    assert json.loads(refused.body) == UNAVAILABLE
    assert still_served.status == 200
    # The authority answers again: the same key works at once (failures are not cached).
    if fault == "down":
        back = KeyAuthority(port)
        back.tokens.update(key_authority.tokens)
        try:
            assert (await get(service, "/items/1", uncached)).status == 200
        finally:
            back.down()
    else:
        key_authority.release()
        key_authority.mode = "ok"
        assert (await get(service, "/items/1", uncached)).status == 200
    assert "Key authority unavailable" in service.log()


async def test_a_hanging_authority_does_not_starve_other_endpoints(
    key_authority: KeyAuthority, start_service: ServiceFactory
) -> None:
    cached = new_key()
    key_authority.tokens[cached] = token("cached")
    # A bound on authority calls above the pool's size, so that every call below is let through.
    service = http_authority_service(
        start_service, key_authority, timeout="2", APPKIT_AUTH_MAX_CONCURRENT="64"
    )
    assert (await get(service, "/items/1", cached)).status == 200
    key_authority.mode = "slow"

    # More distinct unknown keys at once than the shared pool has worker threads (40).
    hanging = [asyncio.create_task(get(service, "/items/1", new_key())) for _ in range(48)]
    assert await asyncio.to_thread(key_authority.wait_held, 10)
    others = [
        await get(service, "/items/2", cached),
        await get(service, "/work"),
        await get(service, "/healthz"),
    ]
    # The other endpoints answered while every authority call was still hanging.
    assert not any(task.done() for task in hanging)
    assert [reply.status for reply in others] == [200, 200, 200]

    refused = await asyncio.gather(*hanging)
    assert {(reply.status, reply.headers["retry-after"]) for reply in refused} == {(503, "1")}
