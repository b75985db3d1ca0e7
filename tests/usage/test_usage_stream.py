"""The usage stream producer: off by default, each flush batch appended once it is on, the
MAXLEN cap warning only when it drops entries no drain worker has acknowledged."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from appkit_runtime import usage, usage_stream
from appkit_runtime.redis_pools import close_redis_connections
from appkit_runtime.settings import get_settings
from appkit_runtime.tokens import ProjectToken
from appkit_runtime.usage_stream import parse_entry, shard_of, stream_key, stream_keys
from tests.conftest import RedisServer

Configure = Callable[..., None]


@pytest.fixture
def own_metrics_redis(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[redis.Redis]:
    """The `metrics` Redis on a redis-server of this test's own; a client to inspect it."""
    redis_server.start()
    monkeypatch.setenv("APPKIT_REDIS_URL_METRICS", redis_server.url)
    monkeypatch.setenv("APPKIT_METRICS_FLUSH_SECONDS", "3600")
    monkeypatch.setattr(usage, "usage_counts", usage.UsageCounts())
    get_settings.cache_clear()
    with redis.Redis.from_url(redis_server.url) as client:
        yield client
    get_settings.cache_clear()


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Configure:
    """`configure(APPKIT_X="...")`: set variables and re-read settings."""

    def set_variables(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    return set_variables


def count_jobs(projects: int, jobs_each: int = 1, org: str = "acme") -> list[ProjectToken]:
    tokens = [ProjectToken(org, f"project-{n}", product="geo") for n in range(projects)]
    for token in tokens:
        for _ in range(jobs_each):
            usage.count_job(token, None, "lookup", "/geo/{place}", "GET")
    return tokens


def command_calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}


async def test_off_by_default_a_flush_sends_only_the_hash_scripts(
    own_metrics_redis: redis.Redis,
) -> None:
    assert get_settings().usage_stream is False
    count_jobs(5, jobs_each=3)
    assert await usage.flush_usage() is True  # connects and loads the script
    own_metrics_redis.config_resetstat()
    count_jobs(5, jobs_each=3)
    assert await usage.flush_usage() is True
    await close_redis_connections()

    calls = command_calls(own_metrics_redis)
    assert calls.get("evalsha") == 5
    assert not any(name.startswith("x") for name in calls), calls
    assert own_metrics_redis.keys("*usage-stream*") == []


async def test_on_each_project_batch_is_appended_to_its_shard(
    own_metrics_redis: redis.Redis, configure: Configure
) -> None:
    configure(APPKIT_USAGE_STREAM="true", APPKIT_USAGE_STREAM_SHARDS="3")
    tokens = count_jobs(6, jobs_each=4)
    assert await usage.flush_usage() is True
    await close_redis_connections()

    entries = {}
    for shard, key in enumerate(stream_keys(3)):
        for _, fields in own_metrics_redis.xrange(key):
            entry = parse_entry(fields)
            assert shard_of(entry.org_id, entry.project_id, 3) == shard
            entries[entry.project_id] = entry
    assert sorted(entries) == sorted(t.project_id for t in tokens)
    today = datetime.now(UTC).date()
    process = usage.usage_counts.process_id
    for entry in entries.values():
        assert entry.flush_id.startswith(f"{process}:")
        assert [(c.product, c.kind, c.day, c.jobs) for c in entry.cells] == [
            ("geo", "lookup", today, 4)
        ]
    # One flush id per batch: the same sequence the hashes' idempotent script stores.
    assert len({entry.flush_id for entry in entries.values()}) == 6


async def test_with_the_stream_on_a_flush_adds_one_script_call_per_shard(
    own_metrics_redis: redis.Redis, configure: Configure
) -> None:
    configure(APPKIT_USAGE_STREAM="true", APPKIT_USAGE_STREAM_SHARDS="2")
    count_jobs(6)
    assert await usage.flush_usage() is True
    own_metrics_redis.config_resetstat()
    count_jobs(6)
    assert await usage.flush_usage() is True
    await close_redis_connections()

    calls = command_calls(own_metrics_redis)
    # 6 hash scripts and 2 appends (one per shard) holding the 6 entries.
    assert (calls["evalsha"], calls["xadd"]) == (6 + 2, 6)
    assert sum(own_metrics_redis.xlen(key) for key in stream_keys(2)) == 12


async def test_a_redis_that_lost_its_scripts_gets_both_reloaded(
    own_metrics_redis: redis.Redis, configure: Configure
) -> None:
    configure(APPKIT_USAGE_STREAM="true")
    count_jobs(2)
    assert await usage.flush_usage() is True
    own_metrics_redis.script_flush()
    count_jobs(2)
    assert await usage.flush_usage() is True
    await close_redis_connections()
    assert own_metrics_redis.xlen(stream_key(0)) == 4


def test_the_sync_flush_of_django_appends_too(
    own_metrics_redis: redis.Redis, configure: Configure
) -> None:
    configure(APPKIT_USAGE_STREAM="true")
    count_jobs(3, jobs_each=2)
    assert usage.flush_usage_sync() is True
    entries = [parse_entry(fields) for _, fields in own_metrics_redis.xrange(stream_key(0))]
    assert sorted((e.project_id, e.cells[0].jobs) for e in entries) == [
        ("project-0", 2),
        ("project-1", 2),
        ("project-2", 2),
    ]


def trimmed_total(service: str) -> float:
    from prometheus_client import REGISTRY

    sample = REGISTRY.get_sample_value(
        "appkit_usage_stream_trimmed_unread_total", {"service": service}
    )
    return sample or 0.0


@pytest.fixture
def small_stream_nodes(
    own_metrics_redis: redis.Redis, configure: Configure, monkeypatch: pytest.MonkeyPatch
) -> redis.Redis:
    """A stream capped at 4 entries on a server packing 2 entries a node, so `~` trims."""
    own_metrics_redis.config_set("stream-node-max-entries", 2)
    configure(APPKIT_USAGE_STREAM="true", APPKIT_USAGE_STREAM_MAXLEN="4")
    monkeypatch.setattr(usage_stream, "_trim_warned_at", -usage_stream.TRIM_WARNING_SECONDS)
    return own_metrics_redis


async def test_the_cap_dropping_unread_entries_warns(
    small_stream_nodes: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    service = get_settings().service_name
    before = trimmed_total(service)
    small_stream_nodes.xgroup_create(stream_key(0), "billing", id="0", mkstream=True)
    with caplog.at_level(logging.WARNING, logger="appkit_runtime.usage"):
        count_jobs(12)
        assert await usage.flush_usage() is True
    await close_redis_connections()

    assert small_stream_nodes.xlen(stream_key(0)) < 12
    assert trimmed_total(service) > before
    warnings = [r.getMessage() for r in caplog.records if "APPKIT_USAGE_STREAM_MAXLEN" in r.message]
    assert len(warnings) == 1, "one warning per minute, however many appends trimmed"


async def test_the_cap_dropping_only_acknowledged_entries_is_silent(
    small_stream_nodes: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    service = get_settings().service_name
    before = trimmed_total(service)
    key = stream_key(0)
    small_stream_nodes.xgroup_create(key, "billing", id="0", mkstream=True)
    with caplog.at_level(logging.WARNING, logger="appkit_runtime.usage"):
        for _ in range(6):
            count_jobs(2)
            assert await usage.flush_usage() is True
            # A drain worker keeps up: reads and acknowledges everything after each flush.
            read: Any = small_stream_nodes.xreadgroup("billing", "w", {key: ">"})
            ids = [entry_id for _, entries in read for entry_id, _ in entries]
            small_stream_nodes.xack(key, "billing", *ids)
    await close_redis_connections()

    assert small_stream_nodes.xlen(key) < 12
    assert trimmed_total(service) == before
    assert not [r for r in caplog.records if "APPKIT_USAGE_STREAM_MAXLEN" in r.getMessage()]


def test_shard_keys_are_stable_and_spread_over_slots() -> None:
    from redis.crc import key_slot

    slots = [key_slot(key.encode()) for key in stream_keys(4)]
    # Shards 0..3 sit near slots 0, 8192, 4096 and 12288: a quarter of the ring apart.
    assert [slot // 4096 for slot in slots] == [0, 2, 1, 3]
    assert stream_keys(2) == stream_keys(4)[:2]
