"""AddJobToMetrics: counted per project in memory, flushed on exit, labels without ids."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import redis.asyncio as async_redis
from fastapi import FastAPI
from prometheus_client import REGISTRY

from appkit_runtime import usage
from appkit_runtime.errors import RouteOrderError
from appkit_runtime.fastapi.metrics import AddJobToMetrics
from appkit_runtime.tokens import ProjectToken
from appkit_runtime.usage import get_project_usage, usage_flusher


def jobs_samples(service: str) -> list[tuple[dict[str, str], float]]:
    """The `appkit_jobs_total` samples of one service, as (labels, value)."""
    return [
        (sample.labels, sample.value)
        for metric in REGISTRY.collect()
        if metric.name == "appkit_jobs"
        for sample in metric.samples
        if sample.name == "appkit_jobs_total" and sample.labels.get("service") == service
    ]


async def test_n_requests_read_back_after_the_flusher_exits(
    redis: async_redis.Redis, jobs_client: httpx.AsyncClient, token: ProjectToken
) -> None:
    day = _today()
    async with usage_flusher():
        for i in range(37):
            assert (await jobs_client.get(f"/items/{i}")).status_code == 200
        # Counting made no Redis call: nothing is there before the flush.
        assert await get_project_usage(redis, token.org_id, token.project_id) == {}
    assert await get_project_usage(redis, token.org_id, token.project_id) == {"geo": {"search": 37}}
    if _today() == day:  # else the requests straddled midnight UTC
        by_day = await get_project_usage(redis, token.org_id, token.project_id, day=day)
        assert by_day == {"geo": {"search": 37}}
    assert usage.usage_counts.total() == 0


async def test_projects_are_counted_apart(
    redis: async_redis.Redis, app_factory: Callable[..., FastAPI], token: ProjectToken
) -> None:
    # The other project's ids differ only around the characters that keys escape.
    other = ProjectToken(org_id=token.org_id.rstrip("}"), project_id=token.project_id + "}")
    apps = [app_factory(AddJobToMetrics("geo", "search"), token=t) for t in (token, other)]
    async with usage_flusher():
        for app, n in zip(apps, (3, 5), strict=True):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                for _ in range(n):
                    assert (await client.get("/items/x")).status_code == 200
    assert await get_project_usage(redis, token.org_id, token.project_id) == {"geo": {"search": 3}}
    assert await get_project_usage(redis, other.org_id, other.project_id) == {"geo": {"search": 5}}


async def test_no_arguments_counts_under_the_token_product(
    redis: async_redis.Redis, app_factory: Callable[..., FastAPI]
) -> None:
    token = ProjectToken(org_id="o-noargs", project_id="p-noargs", product="maps")
    app = app_factory(AddJobToMetrics(), token=token)
    async with usage_flusher():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for _ in range(4):
                assert (await client.get("/items/1")).status_code == 200
    assert await get_project_usage(redis, "o-noargs", "p-noargs") == {"maps": {"default": 4}}


async def test_prometheus_counts_by_route_template_without_ids(
    usage_env: dict[str, str], jobs_client: httpx.AsyncClient, token: ProjectToken
) -> None:
    for i in range(6):
        assert (await jobs_client.get(f"/items/{i}")).status_code == 200
    samples = jobs_samples(usage_env["service"])
    assert samples == [
        ({"service": usage_env["service"], "route": "/items/{item_id}", "method": "GET"}, 6.0)
    ]
    for labels, _ in samples:
        for value in labels.values():
            assert token.org_id not in value and token.project_id not in value


def test_jobs_counted_from_many_threads_are_all_in_the_counter() -> None:
    import threading

    from appkit_runtime.job_counts import JobCounts

    counts = JobCounts()

    def count() -> None:
        for _ in range(2_000):
            counts.add(("svc", "/items/{item_id}", "GET"))

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (family,) = counts.collect()
    (sample,) = [s for s in family.samples if s.name == "appkit_jobs_total"]
    assert sample.value == 8_000
    assert sample.labels == {"service": "svc", "route": "/items/{item_id}", "method": "GET"}


async def test_without_a_project_token_it_names_the_route(
    usage_env: dict[str, str], app_factory: Callable[..., FastAPI]
) -> None:
    app = app_factory(AddJobToMetrics("geo"), token=None)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with pytest.raises(RouteOrderError, match=r"GET /items/\{item_id\}.*AuthenticateKey"):
            await client.get("/items/1")
    assert usage.usage_counts.total() == 0


def _today() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).date().isoformat()
