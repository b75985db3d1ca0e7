"""The lookup order: in-process cache, then Redis `authentication_cache`, then the authority."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import threading

import pytest
import redis.asyncio as async_redis
from prometheus_client import REGISTRY

from appkit_runtime.auth import cache as cache_module
from appkit_runtime.auth.cache import LOCAL, TTLCache
from appkit_runtime.auth.flights import SyncFlights
from appkit_runtime.auth.resolve import resolve_sync
from appkit_runtime.errors import AuthorityBusy
from appkit_runtime.fastapi.authentication import AuthenticateKey
from appkit_runtime.settings import get_settings
from appkit_runtime.tokens import ProjectToken

TOKEN = ProjectToken("acme", "shop", key_id="k1")
GOOD = "good-key-0123456789"


def later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Move the in-process cache's clock forward (Redis keeps its own, real TTLs)."""
    start = cache_module.monotonic()
    monkeypatch.setattr(cache_module, "monotonic", lambda: start + seconds)


async def test_repeated_good_key_is_served_in_process(
    client_for, counting_auth, redis_lookups
) -> None:
    auth = counting_auth({GOOD: TOKEN})
    client = client_for(auth)
    assert (await client.get("/items", headers={"X-API-Key": GOOD})).status_code == 200
    assert auth.calls[GOOD] == 1
    redis_lookups.clear()

    for _ in range(5):
        assert (await client.get("/items", headers={"X-API-Key": GOOD})).status_code == 200

    assert auth.calls[GOOD] == 1
    assert redis_lookups == []


async def test_after_the_in_process_ttl_the_token_comes_from_redis(
    client_for, counting_auth, redis_lookups, monkeypatch
) -> None:
    auth = counting_auth({GOOD: TOKEN}, ttl=300.0)
    client = client_for(auth)
    assert (await client.get("/items", headers={"X-API-Key": GOOD})).status_code == 200

    # Redis holds the token under the key's digest, with the authority's TTL.
    prefix = get_settings().redis_prefix
    name = f"{prefix}:auth:{hashlib.sha256(GOOD.encode()).hexdigest()}"
    redis = async_redis.Redis.from_url(get_settings().redis_url)
    try:
        assert await redis.exists(name) == 1
        assert 0 < await redis.ttl(name) <= 300
        names = [key.decode() async for key in redis.scan_iter(match=f"{prefix}:*")]
        assert names == [name]
        assert GOOD.encode() not in await redis.get(name)
    finally:
        await redis.aclose()

    later(monkeypatch, get_settings().auth_cache_ttl + 1)
    redis_lookups.clear()
    response = await client.get("/items", headers={"X-API-Key": GOOD})

    assert response.status_code == 200
    assert response.json()["org_id"] == "acme"
    assert auth.calls[GOOD] == 1
    assert redis_lookups == ["authentication_cache"]


async def test_concurrent_misses_for_one_key_make_one_authority_call(
    client_for, counting_auth
) -> None:
    auth = counting_auth({GOOD: TOKEN})
    release = threading.Event()
    ask = auth.get_project_token

    def slow_authority(*args):
        release.wait(timeout=10)
        return ask(*args)

    auth.get_project_token = slow_authority
    client = client_for(auth)

    async def open_the_gate() -> None:
        await asyncio.sleep(0.2)  # let every request reach the lookup first
        release.set()

    requests = [client.get("/items", headers={"X-API-Key": GOOD}) for _ in range(200)]
    *responses, _ = await asyncio.gather(*requests, open_the_gate())

    assert [r.status_code for r in responses] == [200] * 200
    assert auth.calls[GOOD] == 1


async def test_each_bad_key_reaches_the_authority_once_within_the_negative_ttl(
    client_for, counting_auth, monkeypatch
) -> None:
    monkeypatch.setenv("APPKIT_AUTH_MAX_CONCURRENT", "100")  # the batches below, all at once
    get_settings.cache_clear()
    later(monkeypatch, 0)  # the cache's clock stands still: slow floods must not age entries
    auth = counting_auth({})
    client = client_for(auth)
    bad_keys = [f"bad-key-{n:04d}" for n in range(1000)]

    async def flood() -> list[int]:
        statuses = []
        for start in range(0, len(bad_keys), 100):
            batch = bad_keys[start : start + 100]
            answers = await asyncio.gather(
                *(client.get("/items", headers={"X-API-Key": key}) for key in batch)
            )
            statuses += [answer.status_code for answer in answers]
        return statuses

    assert await flood() == [401] * 1000
    assert await flood() == [401] * 1000  # in-process negative entries
    later(monkeypatch, get_settings().auth_negative_ttl - 0.5)
    assert await flood() == [401] * 1000

    assert len(auth.calls) == 1000
    assert set(auth.calls.values()) == {1}


async def test_invalid_keys_are_shared_through_redis(client_for, counting_auth, monkeypatch):
    auth = counting_auth({}, ttl=60.0)
    client = client_for(auth)
    assert (await client.get("/items", headers={"X-API-Key": "bad-one"})).status_code == 401
    later(monkeypatch, get_settings().auth_negative_ttl + 1)  # in-process entry gone
    assert (await client.get("/items", headers={"X-API-Key": "bad-one"})).status_code == 401
    assert auth.calls["bad-one"] == 1


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_unreachable_redis_still_authenticates(
    client_for, counting_auth, api_key, monkeypatch, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("APPKIT_REDIS_URL", f"redis://127.0.0.1:{closed_port()}/0")
    get_settings.cache_clear()
    client = client_for(counting_auth({GOOD: TOKEN}))

    assert (await client.get("/items", headers={"X-API-Key": GOOD})).status_code == 200
    assert (await client.get("/items", headers={"X-API-Key": "x" + GOOD})).status_code == 401
    assert (await client.get("/items", headers={"X-API-Key": "y" + GOOD})).status_code == 401

    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1  # once per interval, not once per request
    assert "authentication_cache" in warnings[0].getMessage()
    # Static keys never ask Redis: the same answers, and nothing more to warn about.
    key = api_key("acme", "shop")
    static = client_for(AuthenticateKey())
    assert (await static.get("/items", headers={"X-API-Key": key})).status_code == 200
    assert (await static.get("/items", headers={"X-API-Key": "x" + key})).status_code == 401
    assert [r for r in caplog.records if "unreachable" in r.getMessage()] == warnings
    assert all(GOOD not in record.getMessage() for record in caplog.records)
    assert all(key not in record.getMessage() for record in caplog.records)


def test_ttl_cache_forgets_expired_then_oldest_entries(monkeypatch) -> None:
    cache = TTLCache(max_entries=3)
    cache.put(b"a", TOKEN, 1.0)
    cache.put(b"b", TOKEN, 100.0)
    cache.put(b"c", None, 100.0)
    later(monkeypatch, 2.0)
    cache.put(b"d", TOKEN, 100.0)  # full: the expired `a` goes
    assert (cache.get(b"a"), len(cache)) == (None, 3)
    cache.put(b"e", TOKEN, 100.0)  # full, nothing expired: the oldest, `b`, goes
    assert cache.get(b"b") is None
    assert cache.get(b"c") is not None and cache.get(b"c")[0] is None
    cache.put(b"e", TOKEN, 0)  # a ttl of 0 keeps nothing
    assert cache.get(b"e") is None


def test_sync_flights_make_one_call_for_concurrent_threads() -> None:
    flights: SyncFlights[int] = SyncFlights()
    calls: list[int] = []
    release = threading.Event()
    started = threading.Barrier(21)

    def lookup() -> int:
        calls.append(1)
        release.wait(timeout=10)
        return 42

    results: list[int] = []

    def worker() -> None:
        started.wait()
        results.append(flights.run(b"digest", lookup))

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    started.wait()
    while not calls:
        threading.Event().wait(0.01)
    threading.Event().wait(0.2)  # let the others join the flight
    release.set()
    for thread in threads:
        thread.join()
    assert results == [42] * 20
    assert calls == [1]


def test_invalid_entries_expire_by_time_without_reaching_the_cap(monkeypatch) -> None:
    cache = TTLCache(max_entries=1000)
    for n in range(20):
        cache.put(b"bad-%d" % n, None, 1.0)
    later(monkeypatch, 2.0)
    for n in range(3):  # each write drops up to SWEEP_PER_PUT expired entries
        cache.put(b"new-%d" % n, None, 1.0)
    assert len(cache) == 3


def evictions(cache: str) -> float:
    return REGISTRY.get_sample_value("appkit_auth_cache_evictions_total", {"cache": cache}) or 0


async def test_unknown_keys_never_evict_valid_ones(client_for, counting_auth, monkeypatch) -> None:
    monkeypatch.setenv("APPKIT_AUTH_NEGATIVE_CACHE_MAX", "50")
    get_settings.cache_clear()
    auth = counting_auth({GOOD: TOKEN})
    client = client_for(auth)
    assert (await client.get("/items", headers={"X-API-Key": GOOD})).status_code == 200
    evicted_before = evictions("invalid"), evictions("valid")

    for n in range(80):
        response = await client.get("/items", headers={"X-API-Key": f"random-{n}"})
        assert response.status_code == 401

    assert (len(LOCAL.invalid), len(LOCAL.valid)) == (50, 1)
    assert (evictions("invalid"), evictions("valid")) == (evicted_before[0] + 30, evicted_before[1])
    assert (await client.get("/items", headers={"X-API-Key": GOOD})).status_code == 200
    assert auth.calls[GOOD] == 1  # still served from the in-process cache


async def test_beyond_the_bound_unknown_keys_get_503_and_cached_keys_do_not_wait(
    client_for, counting_auth, monkeypatch
) -> None:
    monkeypatch.setenv("APPKIT_AUTH_MAX_CONCURRENT", "2")
    get_settings.cache_clear()
    auth = counting_auth({GOOD: TOKEN})
    release = threading.Event()
    both_in = threading.Barrier(3)  # the two slow calls and the test
    ask = auth.get_project_token

    def slow_for_slow_keys(*args):
        if args[2].startswith("slow-"):
            both_in.wait(timeout=10)
            release.wait(timeout=10)
        return ask(*args)

    auth.get_project_token = slow_for_slow_keys
    client = client_for(auth)
    assert (await client.get("/items", headers={"X-API-Key": GOOD})).status_code == 200
    refused_before = REGISTRY.get_sample_value("appkit_auth_lookups_refused_total") or 0

    stuck = [
        asyncio.ensure_future(client.get("/items", headers={"X-API-Key": f"slow-{n}"}))
        for n in range(2)
    ]
    await asyncio.to_thread(both_in.wait, 10)  # both slow calls are in the authority
    over = await client.get("/items", headers={"X-API-Key": "one-too-many"})
    cached = await client.get("/items", headers={"X-API-Key": GOOD})
    in_flight_meanwhile = all(not request.done() for request in stuck)
    release.set()
    answers = await asyncio.gather(*stuck)

    assert (over.status_code, over.headers["Retry-After"]) == (503, "1")
    assert cached.status_code == 200 and in_flight_meanwhile
    assert [answer.status_code for answer in answers] == [401, 401]
    assert "one-too-many" not in auth.calls
    assert REGISTRY.get_sample_value("appkit_auth_lookups_refused_total") == refused_before + 1
    # The slots came back: the refused key is asked once the flood is over.
    assert (await client.get("/items", headers={"X-API-Key": "one-too-many"})).status_code == 401


def test_the_bound_holds_for_threads_too(monkeypatch) -> None:
    monkeypatch.setenv("APPKIT_AUTH_MAX_CONCURRENT", "1")
    get_settings.cache_clear()
    release = threading.Event()
    entered = threading.Event()

    def slow_ask() -> tuple[ProjectToken | None, float]:
        entered.set()
        release.wait(timeout=10)
        return None, 5.0

    first = threading.Thread(target=resolve_sync, args=(b"d" * 32, slow_ask))
    first.start()
    entered.wait(timeout=10)
    with pytest.raises(AuthorityBusy):
        resolve_sync(b"e" * 32, lambda: (TOKEN, 5.0))
    release.set()
    first.join()
    assert resolve_sync(b"e" * 32, lambda: (TOKEN, 5.0)) == TOKEN
