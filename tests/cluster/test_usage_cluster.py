"""Usage counts flushed to a Redis Cluster: one pipeline over every master, nothing lost."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from appkit_runtime import usage
from appkit_runtime.keys import project_key
from appkit_runtime.redis_pools import close_redis_connections
from appkit_runtime.settings import get_async_redis_instance, get_settings
from appkit_runtime.tokens import ProjectToken
from tests.cluster.conftest import RedisCluster


@pytest.fixture
async def metrics_on_cluster(
    redis_cluster: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[None]:
    monkeypatch.setenv("APPKIT_REDIS_URL_METRICS", redis_cluster.url)
    get_settings.cache_clear()
    yield
    await close_redis_connections()
    # Keep the plugin's key clean-up (a sync client) off the cluster, as on_cluster does.
    monkeypatch.delenv("APPKIT_REDIS_URL_METRICS")
    get_settings.cache_clear()


@pytest.mark.usefixtures("metrics_on_cluster")
async def test_usage_of_projects_on_every_master_flushes_and_reads_back() -> None:
    projects = [ProjectToken("acme", f"project-{n}", product="geo") for n in range(12)]
    for n, token in enumerate(projects):
        for _ in range(n + 1):
            usage.count_job(token, None, "lookup", "/geo/{place}", "GET")
    assert await usage.flush_usage() is True

    cluster = get_async_redis_instance("metrics")
    slots = {cluster.keyslot(project_key("usage", t.org_id, t.project_id)) for t in projects}
    owners = {cluster.nodes_manager.get_node_from_slot(slot).name for slot in slots}
    assert len(owners) == 3, "the projects should land on all three masters"
    for n, token in enumerate(projects):
        read = await usage.get_project_usage(cluster, token.org_id, token.project_id)
        assert read == {"geo": {"lookup": n + 1}}
    # A second flush has nothing new to send and counts nothing twice.
    assert await usage.flush_usage() is True
    again = await usage.get_project_usage(cluster, "acme", "project-11")
    assert again == {"geo": {"lookup": 12}}
    for token in projects:
        await cluster.delete(project_key("usage", token.org_id, token.project_id))


@pytest.mark.usefixtures("metrics_on_cluster")
async def test_the_sync_flush_of_django_reaches_the_cluster_too() -> None:
    from appkit_runtime.settings import get_redis_instance

    tokens = [ProjectToken("globex", f"p{n}") for n in range(6)]
    for token in tokens:
        usage.count_job(token, "maps", "tile", "/tiles/{z}", "GET")
    assert usage.flush_usage_sync() is True
    cluster = get_redis_instance("metrics")
    for token in tokens:
        key = project_key("usage", token.org_id, token.project_id)
        assert cluster.hgetall(key) == {b"maps|tile": b"1"}
        cluster.delete(key)
