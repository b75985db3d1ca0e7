"""count_request: Django sync and async views counted through the same usage core."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as async_redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import path
from prometheus_client import REGISTRY

from appkit_runtime.django import metrics
from appkit_runtime.django.metrics import count_request
from appkit_runtime.errors import RouteOrderError
from appkit_runtime.redis_pools import close_sync_redis_connections
from appkit_runtime.settings import get_settings
from appkit_runtime.tokens import ProjectToken
from appkit_runtime.usage import get_project_usage

if not settings.configured:
    settings.configure(
        DEBUG=False, ALLOWED_HOSTS=["*"], SECRET_KEY="test", MIDDLEWARE=[], INSTALLED_APPS=[]
    )
    import django

    django.setup()

TOKEN = ProjectToken(org_id="dj-org:1", project_id="dj-prj}1", product="maps")


def authenticated(view: Callable[..., Any]) -> Callable[..., Any]:
    """A stand-in for authenticate_key(): stores the token, for sync and async views."""
    if inspect.iscoroutinefunction(view):

        async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            request.project_token = TOKEN  # type: ignore[attr-defined]
            return await view(request, *args, **kwargs)

        return async_view

    def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        request.project_token = TOKEN  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)

    return sync_view


@authenticated
@count_request("search", "geo")
def sync_item(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse({"id": pk})


@authenticated
@count_request()
async def async_item(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse({"id": pk})


@count_request()
def unauthenticated(request: HttpRequest) -> JsonResponse:
    return JsonResponse({})


urlpatterns = [
    path("sync/<int:pk>/", sync_item),
    path("async/<int:pk>/", async_item),
    path("open/", unauthenticated),
]


@pytest.fixture(autouse=True)
async def _urls(redis: async_redis.Redis) -> AsyncIterator[None]:
    """This module's URLs; afterwards the flush thread is stopped before the keys go."""
    with override_settings(ROOT_URLCONF=__name__):
        yield
    await sync_to_async(metrics.stop_usage_flush_thread)()
    close_sync_redis_connections()


async def test_sync_and_async_views_are_counted(redis: async_redis.Redis) -> None:
    client = AsyncClient()
    for pk in range(4):
        assert (await sync_to_async(Client().get)(f"/sync/{pk}/")).status_code == 200
    for pk in range(3):
        assert (await client.get(f"/async/{pk}/")).status_code == 200
    assert await sync_to_async(metrics.stop_usage_flush_thread)() is True
    read = await get_project_usage(redis, TOKEN.org_id, TOKEN.project_id)
    assert read == {"geo": {"search": 4}, "maps": {"default": 3}}


async def test_the_thread_flushes_periodically(
    redis: async_redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPKIT_METRICS_FLUSH_SECONDS", "0.05")
    get_settings.cache_clear()
    for pk in range(5):
        assert (await sync_to_async(Client().get)(f"/sync/{pk}/")).status_code == 200
    seen: dict[str, dict[str, int]] = {}
    for _ in range(400):
        seen = await get_project_usage(redis, TOKEN.org_id, TOKEN.project_id)
        if seen:
            break
        await asyncio.sleep(0.025)
    assert seen == {"geo": {"search": 5}}
    assert await sync_to_async(metrics.stop_usage_flush_thread)() is True


async def test_prometheus_labels_hold_the_url_pattern_not_ids(usage_env: dict[str, str]) -> None:
    assert (await AsyncClient().get("/async/7/")).status_code == 200
    samples = [
        sample
        for metric in REGISTRY.collect()
        if metric.name == "appkit_jobs"
        for sample in metric.samples
        if sample.name == "appkit_jobs_total" and sample.labels["service"] == usage_env["service"]
    ]
    assert [(s.labels, s.value) for s in samples] == [
        ({"service": usage_env["service"], "route": "/async/<int:pk>/", "method": "GET"}, 1.0)
    ]


async def test_a_view_without_a_token_names_the_route() -> None:
    client = Client(raise_request_exception=True)
    with pytest.raises(RouteOrderError, match="GET /open/.*authenticate_key"):
        await sync_to_async(client.get)("/open/")
