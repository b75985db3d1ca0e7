"""`rate_limit()` on Django sync and async views, stacked under the real `authenticate_key()`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.test import AsyncClient, Client, RequestFactory, override_settings
from django.urls import path

from appkit_runtime.django.decorators import authenticate_key
from appkit_runtime.django.ratelimit import rate_limit
from appkit_runtime.errors import ConfigurationError, RouteOrderError
from appkit_runtime.ratelimit import rate_limit_keys
from appkit_runtime.settings import get_redis_instance, get_settings

if not settings.configured:
    settings.configure(
        DEBUG=False, ALLOWED_HOSTS=["*"], SECRET_KEY="test", MIDDLEWARE=[], INSTALLED_APPS=[]
    )
    import django

    django.setup()

API_KEY = "rl-django-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@authenticate_key()
@rate_limit(max_requests=2, expiry=30)
def sync_item(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse({"id": pk})


@authenticate_key()
@rate_limit(max_requests=2, expiry=30)
async def async_item(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse({"id": pk})


@authenticate_key()
@rate_limit(max_requests=1, expiry=30, fail_open=False)
def closed_item(request: HttpRequest) -> JsonResponse:
    return JsonResponse({})


@rate_limit()
def unauthenticated(request: HttpRequest) -> JsonResponse:
    return JsonResponse({})


urlpatterns = [
    path("sync/items/<int:pk>/", sync_item),
    path("async/items/<int:pk>/", async_item),
    path("closed/", closed_item),
]


@pytest.fixture(autouse=True)
def _urls_and_key(monkeypatch: pytest.MonkeyPatch, redis_prefix: str) -> Iterator[None]:
    """This module's URLs, and one static key for the `o-dj`/`p-dj` project."""
    entry = {"key": API_KEY, "org_id": "o-dj", "project_id": "p-dj"}
    monkeypatch.setenv("APPKIT_API_KEYS", json.dumps([entry]))
    monkeypatch.setenv("APPKIT_AUTH_BACKEND", "static")
    get_settings.cache_clear()
    with override_settings(ROOT_URLCONF=__name__):
        yield


def test_sync_view_is_limited_by_url_pattern() -> None:
    client = Client()

    replies = [client.get(f"/sync/items/{pk}/", headers=AUTH) for pk in (1, 2, 3)]

    assert [reply.status_code for reply in replies] == [200, 200, 429]
    assert replies[0].headers["RateLimit-Policy"] == '"default";q=2;w=30'
    assert replies[0].headers["RateLimit"].startswith('"default";r=1;t=')
    assert replies[2].json() == {"detail": "Rate limit exceeded"}
    assert 0 < int(replies[2].headers["Retry-After"]) <= 30
    key, _ = rate_limit_keys("o-dj", "p-dj", "/sync/items/<int:pk>/")
    assert get_redis_instance("ratelimit").get(key) == b"2"


async def test_async_view_is_limited() -> None:
    client = AsyncClient()

    replies = [await client.get(f"/async/items/{pk}/", headers=AUTH) for pk in (1, 2, 3)]

    assert [reply.status_code for reply in replies] == [200, 200, 429]
    assert replies[1].headers["RateLimit"].startswith('"default";r=0;t=')
    assert int(replies[2].headers["Retry-After"]) <= 30


def test_authentication_runs_first() -> None:
    assert Client().get("/sync/items/1/").status_code == 401


def test_fail_closed_view_answers_503_when_redis_is_down(
    redis_server: Any, ratelimit_redis: Callable[[str], None]
) -> None:
    ratelimit_redis(redis_server.url)  # a server that was never started: nothing listens

    reply = Client().get("/closed/", headers=AUTH)

    assert reply.status_code == 503
    assert reply.headers["Retry-After"] == "5"


async def test_fail_open_async_view_answers_200_when_redis_is_down(
    redis_server: Any, ratelimit_redis: Callable[[str], None]
) -> None:
    ratelimit_redis(redis_server.url)

    reply = await AsyncClient().get("/async/items/1/", headers=AUTH)

    assert reply.status_code == 200
    assert "RateLimit" not in reply.headers


def test_missing_token_is_a_route_order_error() -> None:
    with pytest.raises(RouteOrderError, match="put @authenticate_key"):
        unauthenticated(RequestFactory().get("/open/"))


@pytest.mark.parametrize("options", [{"max_requests": 0}, {"expiry": "60"}])
def test_bad_arguments_fail_when_decorating(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be an integer from 1 to 2147483647"):
        rate_limit(**options)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+cluster://127.0.0.1:7000/3", "database 3 in a cluster URL"),
        ("redis://127.0.0.1:6379/abc", "database 'abc' is not a number"),
        ("tcp://127.0.0.1:6379", "unknown URL scheme 'tcp://'"),
    ],
)
def test_a_bad_redis_url_fails_when_decorating(
    ratelimit_redis: Callable[[str], None], url: str, problem: str
) -> None:
    ratelimit_redis(url)
    with pytest.raises(ConfigurationError) as caught:
        rate_limit()
    assert str(caught.value).startswith(f"APPKIT_REDIS_URL_RATELIMIT: {problem}")
    assert "\n" not in str(caught.value)
