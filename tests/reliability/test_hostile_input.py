"""Hostile input on the wire: malformed keys, crafted ids, oversized headers, bad overrides;
and what must never hold key material: bodies, /metrics and Redis key names."""

from __future__ import annotations

import json
import secrets

import pytest
import redis
import redis.asyncio as async_redis

from appkit_runtime.fastapi.ratelimit import ProjectRateLimiter, set_rate_limit_override
from appkit_runtime.settings import get_settings, parse_rate_limit
from tests.reliability.conftest import ServiceFactory
from tests.reliability.material import leaks, new_key, remember, static_keys
from tests.reliability.wire import Connection, Reply

# Keys sent as `Authorization: Bearer <key>` and as `X-API-Key: <key>`.
HOSTILE_KEYS = [
    "",
    "   ",
    remember("k" + secrets.token_hex(4096)),  # 8 KB
    remember("clé-ünïcødé-" + secrets.token_hex(8)),
    "{",
    "}",
    "*",
    '"',
    "'",
    remember("{ak}*" + secrets.token_hex(8) + "\"'"),
    remember("ak_" + secrets.token_hex(8) + "\r\nX-Injected: 1"),  # a second header line
]
# Bytes the HTTP parser itself refuses (bare CR, NUL): 400 from the server, never 500.
UNPARSEABLE_KEYS = [b"ak\rinjected", b"ak\x00nul"]
# Pairs of (org, project) ids crafted so that naive key building would collide.
COLLIDING = [
    ("acme", "x:y"),
    ("acme:x", "y"),
    ("a}", "{b"),
    ("a", "}{b"),
    ("o", "p%3Ay"),
    ("o", "p:y"),
    ("*", "*"),
    ("acme", "x"),
]


def raw_get(path: str, header: str, value: bytes) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n{header}: ".encode() + value + b"\r\n\r\n"


@pytest.fixture
def hostile_service(start_service: ServiceFactory) -> tuple[object, dict[tuple[str, str], str]]:
    keys = {ids: new_key() for ids in COLLIDING}
    entries = [(key, org, project, "3/600") for (org, project), key in keys.items()]
    return start_service(APPKIT_API_KEYS=static_keys(*entries)), keys


async def test_malformed_keys_get_401_never_500(hostile_service: tuple) -> None:
    service, _ = hostile_service
    replies: list[tuple[str, Reply | None]] = []
    async with Connection(service.port) as connection:
        for key in HOSTILE_KEYS:
            value = key.encode("utf-8")
            for header, prefix in (("Authorization", b"Bearer "), ("X-API-Key", b"")):
                reply = await connection.send(raw_get("/items/1", header, prefix + value))
                replies.append((header, reply))

    assert all(reply is not None for _, reply in replies)
    assert [reply.status for _, reply in replies if reply] == [401] * len(replies)
    assert {reply.headers["www-authenticate"] for _, reply in replies if reply} == {"Bearer"}
    details = {json.loads(reply.body)["detail"] for _, reply in replies if reply}
    assert details == {"Invalid API key"}
    assert leaks(reply.body.decode() for _, reply in replies if reply) == []


async def test_unparseable_and_oversized_headers_are_refused_and_the_server_goes_on(
    hostile_service: tuple,
) -> None:
    service, keys = hostile_service
    statuses = []
    for value in [*UNPARSEABLE_KEYS, b"k" * 100_000]:
        async with Connection(service.port) as connection:
            reply = await connection.send(raw_get("/items/1", "X-API-Key", value))
            statuses.append(reply.status if reply else None)
    for count in (200, 2000):  # many small headers
        fields = b"".join(b"X-Pad-%d: %s\r\n" % (n, b"p" * 50) for n in range(count))
        request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + fields + b"\r\n"
        async with Connection(service.port) as connection:
            reply = await connection.send(request)
            statuses.append(reply.status if reply else None)

    # A 100 KB field is refused by h11 (400) or read and refused as a key by httptools (401).
    assert statuses[:2] == [400, 400]
    assert statuses[2] in (400, 401)
    # 200 small headers (12 KB) are served; 2,000 (124 KB) pass h11's 16 KB limit on an
    # unfinished head only when they arrive in one read, so either answer is right.
    assert statuses[3] == 200
    assert statuses[4] in (200, 400)
    async with Connection(service.port) as connection:
        reply = await connection.get("/items/1", keys[COLLIDING[0]])
    assert reply is not None and reply.status == 200


async def test_crafted_ids_never_share_counters_overrides_or_usage(hostile_service: tuple) -> None:
    service, keys = hostile_service
    client = async_redis.Redis.from_url(get_settings().redis_url)
    # An override on the first project only; its look-alike keeps the key's own 3/600.
    await set_rate_limit_override(client, "acme", "x:y", "/items/{item_id}", 1, 600)
    await client.aclose()

    seen = {}
    async with Connection(service.port) as connection:
        for ids in COLLIDING:
            replies = [await connection.get("/items/5", keys[ids]) for _ in range(4)]
            seen[ids] = [reply.status if reply else None for reply in replies]

    expected = {ids: [200, 200, 200, 429] for ids in COLLIDING}
    expected[("acme", "x:y")] = [200, 429, 429, 429]
    assert seen == expected


async def test_no_key_material_in_metrics_bodies_or_redis_key_names(
    hostile_service: tuple,
) -> None:
    service, keys = hostile_service
    bodies = []
    async with Connection(service.port) as connection:
        # Valid keys, unknown keys and malformed ones (never looked up).
        unknown = [new_key(), new_key()]
        for key in [*keys.values(), *unknown, *HOSTILE_KEYS[2:4]]:
            reply = await connection.get("/items/9", key)
            assert reply is not None
            bodies.append(reply.body.decode())
        metrics = await connection.get("/metrics")
    assert metrics is not None and metrics.status == 200

    prefix = get_settings().redis_prefix
    with redis.Redis.from_url(get_settings().redis_url) as admin:
        names = [name.decode() for name in admin.scan_iter(match=f"{prefix}:*", count=1000)]
    # Static keys are answered from the service's own table: none reaches the Redis cache
    # (whose names, digests only, tests/auth/test_caches.py checks with an authority).
    assert [name for name in names if name.startswith(f"{prefix}:auth:")] == []
    assert names  # the rate limiter's counters, checked for leaks below
    assert leaks([*bodies, metrics.body.decode(), *names]) == []


@pytest.mark.parametrize("value", [0, -1, -(2**63), 2**31, 2**63, 10**30, "10", 1.5, True])
async def test_limit_values_out_of_range_raise_value_error(value: object) -> None:
    client = async_redis.Redis.from_url(get_settings().redis_url)
    try:
        with pytest.raises(ValueError):
            await set_rate_limit_override(client, "o", "p", "/items", value, 60)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await set_rate_limit_override(client, "o", "p", "/items", 10, value)  # type: ignore[arg-type]
    finally:
        await client.aclose()
    with pytest.raises(ValueError):
        ProjectRateLimiter(max_requests=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ProjectRateLimiter(expiry=value)  # type: ignore[arg-type]
    if isinstance(value, int):  # the same bounds for "N/S" texts (keys, tokens, defaults)
        with pytest.raises(ValueError):
            parse_rate_limit(f"{value}/60")
        with pytest.raises(ValueError):
            parse_rate_limit(f"10/{value}")
