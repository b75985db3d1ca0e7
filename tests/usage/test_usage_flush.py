"""The usage flush: periodic, retried after a failure, never counting a batch twice."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest
import redis.asyncio as async_redis
from prometheus_client import REGISTRY

from appkit_runtime import usage
from appkit_runtime.keys import project_key
from appkit_runtime.redis_pools import close_redis_connections
from appkit_runtime.settings import get_settings
from appkit_runtime.tokens import ProjectToken
from appkit_runtime.usage import USAGE_FLUSH_LUA, flush_usage, get_project_usage, usage_flusher


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def flush_failures(service: str) -> float:
    value = REGISTRY.get_sample_value("appkit_usage_flush_failures_total", {"service": service})
    return value or 0.0


async def test_a_failed_flush_loses_nothing_and_counts_nothing_twice(
    redis: async_redis.Redis,
    jobs_client: httpx.AsyncClient,
    token: ProjectToken,
    usage_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The metrics Redis is unreachable: the flush fails and keeps its counts.
    monkeypatch.setenv("APPKIT_REDIS_URL_METRICS", f"redis://127.0.0.1:{closed_port()}/0")
    get_settings.cache_clear()
    for i in range(10):
        assert (await jobs_client.get(f"/items/{i}")).status_code == 200
    assert await flush_usage() is False
    assert flush_failures(usage_env["service"]) == 1.0
    assert usage.usage_counts.total() == 10
    assert await get_project_usage(redis, token.org_id, token.project_id) == {}

    # Back on the real server, with more requests in the meantime.
    monkeypatch.delenv("APPKIT_REDIS_URL_METRICS")
    get_settings.cache_clear()
    await close_redis_connections()
    for i in range(5):
        assert (await jobs_client.get(f"/items/{i}")).status_code == 200
    assert await flush_usage() is True
    assert await get_project_usage(redis, token.org_id, token.project_id) == {"geo": {"search": 15}}

    # Further flushes, and the shutdown flush, add nothing.
    assert await flush_usage() is True
    async with usage_flusher():
        pass
    assert await get_project_usage(redis, token.org_id, token.project_id) == {"geo": {"search": 15}}
    assert flush_failures(usage_env["service"]) == 1.0


class LostReplies:
    """A client whose pipelines run on Redis, after which the reply is lost."""

    def __init__(self, client: async_redis.Redis) -> None:
        self.client = client

    def pipeline(self, **options: Any) -> LostReplyPipeline:
        return LostReplyPipeline(self.client.pipeline(**options))


class LostReplyPipeline:
    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    async def __aenter__(self) -> LostReplyPipeline:
        await self.pipe.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.pipe.__aexit__(*exc_info)

    def evalsha(self, *args: Any) -> None:
        self.pipe.evalsha(*args)

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        await self.pipe.execute(raise_on_error=raise_on_error)
        raise async_redis.ConnectionError("connection lost before the reply")


async def test_a_flush_whose_reply_was_lost_is_retried_without_counting_twice(
    redis: async_redis.Redis, jobs_client: httpx.AsyncClient, token: ProjectToken
) -> None:
    await redis.script_load(USAGE_FLUSH_LUA)
    for i in range(7):
        assert (await jobs_client.get(f"/items/{i}")).status_code == 200
    assert await flush_usage(LostReplies(redis)) is False
    # Redis applied the batch, but the flusher cannot know and keeps it.
    assert await get_project_usage(redis, token.org_id, token.project_id) == {"geo": {"search": 7}}
    assert usage.usage_counts.total() == 7

    for i in range(2):
        assert (await jobs_client.get(f"/items/{i}")).status_code == 200
    assert await flush_usage() is True
    assert await get_project_usage(redis, token.org_id, token.project_id) == {"geo": {"search": 9}}
    assert usage.usage_counts.total() == 0


async def test_the_flusher_flushes_periodically_without_shutdown(
    redis: async_redis.Redis,
    jobs_client: httpx.AsyncClient,
    token: ProjectToken,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APPKIT_METRICS_FLUSH_SECONDS", "0.05")
    get_settings.cache_clear()
    async with usage_flusher():
        for i in range(12):
            assert (await jobs_client.get(f"/items/{i}")).status_code == 200
        seen = await _wait_for_usage(redis, token, {"geo": {"search": 12}})
        assert seen == {"geo": {"search": 12}}
        assert usage.usage_counts.total() == 0


DAY = 86_400
LAST_SECOND_OF_2023_11_14 = 1_700_006_399.5


@pytest.fixture
def keep_days(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """`keep_days(n)` sets `APPKIT_USAGE_DAYS_KEPT` for this test."""

    def keep(days: int) -> None:
        monkeypatch.setenv("APPKIT_USAGE_DAYS_KEPT", str(days))
        get_settings.cache_clear()

    return keep


def count_search_at(monkeypatch: pytest.MonkeyPatch, org_id: str, at: float) -> None:
    """Count one `geo`/`search` job for project `p` of `org_id`, with the clock at `at`."""
    monkeypatch.setattr(usage.time, "time", lambda: at)
    usage.count_job(ProjectToken(org_id=org_id, project_id="p"), "geo", "search", "/r", "GET")


async def test_counts_go_to_the_utc_day_they_were_counted_in(
    redis: async_redis.Redis, monkeypatch: pytest.MonkeyPatch, keep_days: Callable[[int], None]
) -> None:
    keep_days(0)  # 2023's days are past the default 400
    token = ProjectToken(org_id="o-days", project_id="p-days")
    clock = {"now": LAST_SECOND_OF_2023_11_14}
    monkeypatch.setattr(usage.time, "time", lambda: clock["now"])
    usage.count_job(token, "geo", "search", "/r", "GET")
    clock["now"] += 1.0
    usage.count_job(token, "geo", "search", "/r", "GET")
    usage.count_job(token, "geo", "route", "/r", "GET")
    assert await flush_usage() is True
    read = await get_project_usage(redis, "o-days", "p-days", day=date(2023, 11, 14))
    assert read == {"geo": {"search": 1}}
    read = await get_project_usage(redis, "o-days", "p-days", day="2023-11-15")
    assert read == {"geo": {"search": 1, "route": 1}}
    assert await get_project_usage(redis, "o-days", "p-days") == {"geo": {"search": 2, "route": 1}}


async def test_a_day_hash_expires_days_kept_after_its_day_and_the_total_never(
    redis: async_redis.Redis, monkeypatch: pytest.MonkeyPatch, keep_days: Callable[[int], None]
) -> None:
    keep_days(30)
    today = int(time.time() // DAY)
    count_search_at(monkeypatch, "o-kept", today * DAY + 1.0)
    assert await flush_usage() is True

    day = datetime.fromtimestamp(today * DAY, UTC).date().isoformat()
    assert await redis.expiretime(project_key("usage", "o-kept", "p", "day", day)) == (
        (today + 1 + 30) * DAY
    )
    assert await redis.expiretime(project_key("usage", "o-kept", "p")) == -1


async def test_days_kept_zero_keeps_every_day(
    redis: async_redis.Redis, monkeypatch: pytest.MonkeyPatch, keep_days: Callable[[int], None]
) -> None:
    keep_days(0)
    count_search_at(monkeypatch, "o-forever", LAST_SECOND_OF_2023_11_14)
    assert await flush_usage() is True

    day_key = project_key("usage", "o-forever", "p", "day", "2023-11-14")
    assert await redis.expiretime(day_key) == -1
    read = await get_project_usage(redis, "o-forever", "p", day="2023-11-14")
    assert read == {"geo": {"search": 1}}


async def test_counts_for_a_day_past_keeping_still_reach_the_total(
    redis: async_redis.Redis, monkeypatch: pytest.MonkeyPatch, keep_days: Callable[[int], None]
) -> None:
    # A process that could not flush for a long while: its old day is gone, the total is right.
    keep_days(30)
    count_search_at(monkeypatch, "o-late", LAST_SECOND_OF_2023_11_14)
    assert await flush_usage() is True

    assert await get_project_usage(redis, "o-late", "p", day="2023-11-14") == {}
    assert await get_project_usage(redis, "o-late", "p") == {"geo": {"search": 1}}


async def test_counting_from_many_threads_loses_nothing(redis: async_redis.Redis) -> None:
    token = ProjectToken(org_id="o-threads", project_id="p-threads")

    def count() -> None:
        for _ in range(5_000):
            usage.count_job(token, "geo", None, "/r", "POST")

    threads = [threading.Thread(target=count) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert await flush_usage() is True
    assert await get_project_usage(redis, "o-threads", "p-threads") == {"geo": {"default": 40_000}}


async def test_the_embedded_redis_loads_the_script_on_first_use(
    usage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # memory:// (fakeredis) starts without the script: the NOSCRIPT path must recover.
    monkeypatch.setenv("APPKIT_REDIS_URL_METRICS", f"memory://usage-{uuid4().hex}")
    get_settings.cache_clear()
    token = ProjectToken(org_id="o-mem", project_id="p-mem")
    for _ in range(3):
        usage.count_job(token, "geo", "search", "/r", "GET")
    assert await flush_usage() is True
    client = usage.get_async_redis_instance("metrics")
    assert await get_project_usage(client, "o-mem", "p-mem") == {"geo": {"search": 3}}
    await close_redis_connections()


async def _wait_for_usage(
    redis: async_redis.Redis, token: ProjectToken, expected: dict[str, dict[str, int]]
) -> dict[str, dict[str, int]]:
    """Poll until the flusher has written `expected` (or give up after a generous while)."""
    seen: dict[str, dict[str, int]] = {}
    for _ in range(400):
        seen = await get_project_usage(redis, token.org_id, token.project_id)
        if seen == expected:
            break
        await asyncio.sleep(0.025)
    return seen


class CountedPipelines:
    """A real client that counts the pipelines made through it."""

    def __init__(self, client: async_redis.Redis) -> None:
        self.client = client
        self.pipelines = 0

    def pipeline(self, **options: Any) -> Any:
        self.pipelines += 1
        return self.client.pipeline(**options)

    async def script_load(self, script: str) -> Any:
        return await self.client.script_load(script)


async def test_every_project_goes_out_in_one_pipeline(redis: async_redis.Redis) -> None:
    await redis.script_load(USAGE_FLUSH_LUA)
    tokens = [ProjectToken(org_id="o-one", project_id=f"p-{i}") for i in range(20)]
    for token in tokens:
        for kind in ("a", "b"):
            usage.count_job(token, "geo", kind, "/r", "GET")
    counted = CountedPipelines(redis)
    assert await flush_usage(counted) is True
    assert counted.pipelines == 1
    for token in tokens:
        read = await get_project_usage(redis, "o-one", token.project_id)
        assert read == {"geo": {"a": 1, "b": 1}}


class CancelSwallowingReplies:
    """A real client whose pipelines take a while and swallow a cancel meanwhile, as a client
    library's own timeout handling can; `started` is set once a pipeline is in flight."""

    def __init__(self, client: async_redis.Redis) -> None:
        self.client = client
        self.started = asyncio.Event()

    def pipeline(self, **options: Any) -> Any:
        return CancelSwallowingPipeline(self, self.client.pipeline(**options))

    async def script_load(self, script: str) -> Any:
        return await self.client.script_load(script)


class CancelSwallowingPipeline(LostReplyPipeline):
    def __init__(self, owner: CancelSwallowingReplies, pipe: Any) -> None:
        super().__init__(pipe)
        self.owner = owner

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        self.owner.started.set()
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            pass
        return list(await self.pipe.execute(raise_on_error=raise_on_error))


async def test_shutdown_during_a_flush_waits_for_it_and_loses_nothing(
    redis: async_redis.Redis,
    jobs_client: httpx.AsyncClient,
    token: ProjectToken,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await redis.script_load(USAGE_FLUSH_LUA)
    monkeypatch.setenv("APPKIT_METRICS_FLUSH_SECONDS", "0.01")
    get_settings.cache_clear()
    slow = CancelSwallowingReplies(redis)
    monkeypatch.setattr(usage, "get_async_redis_instance", lambda name: slow)
    for i in range(5):
        assert (await jobs_client.get(f"/items/{i}")).status_code == 200
    async with asyncio.timeout(5):  # a flusher waiting on its cancel would hang here
        async with usage_flusher():
            await slow.started.wait()
    assert await get_project_usage(redis, token.org_id, token.project_id) == {"geo": {"search": 5}}
    assert usage.usage_counts.total() == 0
