"""Django: `RateLimitExceeded` answered as 429, cost, monitor mode and org overrides."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.test import AsyncClient, Client, RequestFactory, override_settings
from django.urls import path

from appkit_runtime.django.decorators import authenticate_key
from appkit_runtime.django.ratelimit import (
    RateLimitExceeded,
    aapply_rate_limit,
    apply_rate_limit,
    rate_limit,
)
from appkit_runtime.ratelimit import WOULD_REJECT_TOTAL, rate_limit_keys
from appkit_runtime.settings import get_async_redis_instance, get_redis_instance, get_settings
from appkit_runtime.tokens import ProjectToken

if not settings.configured:
    settings.configure(
        DEBUG=False, ALLOWED_HOSTS=["*"], SECRET_KEY="test", MIDDLEWARE=[], INSTALLED_APPS=[]
    )
    import django

    django.setup()

API_KEY = "rl-django-exceeded-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MIDDLEWARE = ["appkit_runtime.django.ratelimit.RateLimitMiddleware"]


@authenticate_key()
def sync_batch(request: HttpRequest) -> JsonResponse:
    size = int(request.GET["size"])
    apply_rate_limit(request, count=size, max_requests=120, expiry=60)
    return JsonResponse({"accepted": size})


@authenticate_key()
async def async_batch(request: HttpRequest) -> JsonResponse:
    size = int(request.GET["size"])
    await aapply_rate_limit(request, count=size, max_requests=120, expiry=60)
    return JsonResponse({"accepted": size})


@authenticate_key()
@rate_limit(max_requests=120, expiry=60, cost=50)
def costly(request: HttpRequest) -> JsonResponse:
    return JsonResponse({})


@authenticate_key()
@rate_limit(max_requests=1, expiry=60, mode="monitor")
async def watched(request: HttpRequest) -> JsonResponse:
    return JsonResponse({})


@authenticate_key()
@rate_limit(max_requests=100, expiry=60)
def plain(request: HttpRequest) -> JsonResponse:
    return JsonResponse({})


urlpatterns = [
    path("sync/batch/", sync_batch),
    path("async/batch/", async_batch),
    path("costly/", costly),
    path("watched/", watched),
    path("plain/", plain),
]


@pytest.fixture(autouse=True)
def _urls_and_key(monkeypatch: pytest.MonkeyPatch, redis_prefix: str) -> Iterator[None]:
    entry = {"key": API_KEY, "org_id": "o-dj", "project_id": "p-dj"}
    monkeypatch.setenv("APPKIT_API_KEYS", json.dumps([entry]))
    monkeypatch.setenv("APPKIT_AUTH_BACKEND", "static")
    get_settings.cache_clear()
    with override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=MIDDLEWARE):
        yield


def counter(route: str) -> int:
    key, _ = rate_limit_keys("o-dj", "p-dj", route)
    return int(get_redis_instance("ratelimit").get(key) or 0)


def test_sync_view_raising_rate_limit_exceeded_is_answered_429() -> None:
    client = Client()

    replies = [client.get("/sync/batch/", {"size": 50}, headers=AUTH) for _ in range(3)]

    assert [reply.status_code for reply in replies] == [200, 200, 429]
    assert replies[2].json() == {"detail": "Rate limit exceeded"}
    assert replies[2].headers["RateLimit-Policy"] == '"default";q=120;w=60'
    assert 0 < int(replies[2].headers["Retry-After"]) <= 60
    assert counter("/sync/batch/") == 100


async def test_async_view_raising_rate_limit_exceeded_is_answered_429() -> None:
    client = AsyncClient()

    codes = [
        (await client.get("/async/batch/", {"size": size}, headers=AUTH)).status_code
        for size in (100, 50, 20)
    ]

    assert codes == [200, 429, 200]
    key, _ = rate_limit_keys("o-dj", "p-dj", "/async/batch/")
    assert int(await get_async_redis_instance("ratelimit").get(key)) == 120


def test_rate_limit_exceeded_carries_limit_remaining_and_reset() -> None:
    request = RequestFactory().get("/anything/")
    request.project_token = ProjectToken("o-dj", "p-dj")  # type: ignore[attr-defined]
    apply_rate_limit(request, count=3, max_requests=4, expiry=30)

    with pytest.raises(RateLimitExceeded) as refused:
        apply_rate_limit(request, count=2, max_requests=4, expiry=30)

    error = refused.value
    assert (error.limit, error.remaining, error.status_code) == (4, 1, 429)
    assert 0 < error.reset <= 30
    assert error.response().status_code == 429


def test_decorator_cost_counts_each_request_as_fifty() -> None:
    codes = [Client().get("/costly/", headers=AUTH).status_code for _ in range(3)]

    assert codes == [200, 200, 429]
    assert counter("/costly/") == 100


async def test_monitor_mode_lets_async_views_through_and_counts() -> None:
    before = WOULD_REJECT_TOTAL.labels(route="/watched/")._value.get()

    codes = [(await AsyncClient().get("/watched/", headers=AUTH)).status_code for _ in range(3)]

    assert codes == [200, 200, 200]
    assert WOULD_REJECT_TOTAL.labels(route="/watched/")._value.get() - before == 2


def test_org_override_reaches_sync_views() -> None:
    from asgiref.sync import async_to_sync

    from appkit_runtime.ratelimit import set_org_rate_limit_override

    async def set_override() -> None:
        await set_org_rate_limit_override(
            get_async_redis_instance("ratelimit"), "o-dj", "/plain/", 2, 9
        )

    async_to_sync(set_override)()  # made in this process: the copy is read again

    reply = Client().get("/plain/", headers=AUTH)

    assert reply.headers["RateLimit-Policy"] == '"default";q=2;w=9'
