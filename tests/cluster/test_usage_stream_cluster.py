"""The usage stream on a 3-node Redis Cluster with 4 shards: the shards land on more than one
node, and one drain worker moves every entry into PostgreSQL exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from appkit_runtime import usage, usage_sink
from appkit_runtime.redis_pools import close_redis_connections
from appkit_runtime.settings import get_async_redis_instance, get_settings
from appkit_runtime.tokens import ProjectToken
from appkit_runtime.usage_drain import DrainOptions, drain
from appkit_runtime.usage_stream import stream_keys
from tests.cluster.conftest import RedisCluster


@pytest.fixture
async def stream_on_cluster(
    redis_cluster: RedisCluster, monkeypatch: pytest.MonkeyPatch, postgres_database: str
) -> AsyncIterator[str]:
    """The `metrics` Redis on the cluster, the stream on in 4 shards; the sink's URL."""
    monkeypatch.setenv("APPKIT_REDIS_URL_METRICS", redis_cluster.url)
    monkeypatch.setenv("APPKIT_USAGE_STREAM", "true")
    monkeypatch.setenv("APPKIT_USAGE_STREAM_SHARDS", "4")
    monkeypatch.setattr(usage, "usage_counts", usage.UsageCounts())
    get_settings.cache_clear()
    connection = await usage_sink.connect(postgres_database)
    await usage_sink.create_tables(connection)
    await connection.close()
    yield postgres_database
    cluster = get_async_redis_instance("metrics")
    await cluster.delete(*stream_keys(4))
    await close_redis_connections()
    # Keep the plugin's key clean-up (a sync client) off the cluster, as on_cluster does.
    monkeypatch.delenv("APPKIT_REDIS_URL_METRICS")
    get_settings.cache_clear()


async def test_four_shards_spread_over_the_nodes_and_totals_are_exact(
    stream_on_cluster: str,
) -> None:
    expected: dict[str, int] = {}
    for _ in range(3):
        for n in range(20):
            token = ProjectToken("acme", f"project-{n}", product="geo")
            for _ in range(n + 1):
                usage.count_job(token, None, "lookup", "/geo/{place}", "GET")
            expected[token.project_id] = expected.get(token.project_id, 0) + n + 1
        assert await usage.flush_usage() is True

    cluster = get_async_redis_instance("metrics")
    keys = stream_keys(4)
    owners = {cluster.nodes_manager.get_node_from_slot(cluster.keyslot(k)).name for k in keys}
    assert len(owners) > 1, "the 4 shards should not all live on one node"
    lengths = [await cluster.xlen(key) for key in keys]
    assert sum(lengths) == 60 and all(lengths), lengths

    options = DrainOptions(stream_on_cluster, once=True, batch=16)
    counts = await drain(cluster, keys, options, asyncio.Event())
    assert (counts.read, counts.applied, counts.duplicates) == (60, 60, 0)
    for key in keys:
        assert (await cluster.xpending(key, "billing"))["pending"] == 0

    connection = await asyncpg.connect(stream_on_cluster)
    try:
        rows = await connection.fetch("SELECT project_id, day, jobs FROM appkit_usage_totals")
    finally:
        await connection.close()
    days = {datetime.now(UTC).date()}
    assert {row["day"] for row in rows} <= days | {min(days).fromordinal(min(days).toordinal() - 1)}
    totals: dict[str, int] = {}
    for row in rows:
        totals[row["project_id"]] = totals.get(row["project_id"], 0) + row["jobs"]
    assert totals == expected
