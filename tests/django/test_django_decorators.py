"""`authenticate_key()` on sync and async Django views: the real RequestFactory and clients."""

from __future__ import annotations

import hashlib
import inspect
import json
import socket
from collections import Counter
from collections.abc import Iterator

import pytest
from django.http import JsonResponse
from django.test import AsyncClient, AsyncRequestFactory, Client, RequestFactory, override_settings
from django.urls import path

from appkit_runtime.django.decorators import authenticate_key
from appkit_runtime.settings import RateLimit, get_redis_instance, get_settings
from appkit_runtime.tokens import ProjectToken
from tests.auth.authority_server import AuthService


# The reference's "Django Async Views" snippet, after the rename:
# Sync view - works normally
@authenticate_key()
def sync_view(request):
    return JsonResponse({"status": "ok"})


# Async view - decorator adapts automatically
@authenticate_key()
async def async_view(request):
    return JsonResponse({"status": "ok"})


@authenticate_key(product="search", scopes=["read"])
def sync_search(request):
    token = request.project_token
    return JsonResponse({"org_id": token.org_id, "project_id": token.project_id})


@authenticate_key(product="search", scopes=["read"])
async def async_search(request):
    token = request.project_token
    return JsonResponse({"org_id": token.org_id, "project_id": token.project_id})


urlpatterns = [
    path("sync/", sync_view),
    path("async/", async_view),
    path("sync/search/", sync_search),
    path("async/search/", async_search),
]


@pytest.fixture(autouse=True)
def _urls() -> Iterator[None]:
    with override_settings(ROOT_URLCONF=__name__):
        yield


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_denied(response, status: int, detail: str) -> None:
    assert response.status_code == status
    assert json.loads(response.content) == {"detail": detail}
    if status == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_the_decorator_keeps_sync_views_sync_and_async_views_async() -> None:
    assert not inspect.iscoroutinefunction(sync_view)
    assert inspect.iscoroutinefunction(async_view)
    assert sync_view.__name__ == "sync_view" and async_view.__name__ == "async_view"


def test_sync_view_with_request_factory(api_key) -> None:
    key = api_key("acme", "shop", product="search", scopes=["read"])
    factory = RequestFactory()

    assert_denied(sync_view(factory.get("/sync/")), 401, "Missing API key")
    assert_denied(
        sync_view(factory.get("/sync/", headers=bearer("x" + key))), 401, "Invalid API key"
    )
    request = factory.get("/sync/search/", headers={"X-API-Key": key})
    response = sync_search(request)
    assert json.loads(response.content) == {"org_id": "acme", "project_id": "shop"}
    assert request.project_token == ProjectToken(
        "acme", "shop", product="search", scopes=frozenset({"read"})
    )


async def test_async_view_with_async_request_factory(api_key) -> None:
    key = api_key("acme", "shop", product="search", scopes=["read"], rate_limit="5/60")
    factory = AsyncRequestFactory()

    assert_denied(await async_view(factory.get("/async/")), 401, "Missing API key")
    bad = factory.get("/async/", headers=bearer("x" + key))
    assert_denied(await async_view(bad), 401, "Invalid API key")
    request = factory.get("/async/search/", headers=bearer(key))
    response = await async_search(request)
    assert response.status_code == 200
    assert request.project_token.rate_limit == RateLimit(5, 60)


@pytest.mark.parametrize("where", ["sync", "async"])
async def test_403_for_wrong_product_or_missing_scope(api_key, where) -> None:
    wrong_product = api_key(product="billing", scopes=["read"])
    no_scope = api_key(product="search")
    client = AsyncClient()

    response = await client.get(f"/{where}/search/", headers=bearer(wrong_product))
    assert_denied(response, 403, "API key is not valid for this product")
    response = await client.get(f"/{where}/search/", headers={"X-API-Key": no_scope})
    assert_denied(response, 403, "API key lacks a required scope")


@pytest.mark.parametrize("where", ["sync", "async"])
async def test_async_client_401_and_200(api_key, where) -> None:
    key = api_key("acme", "shop", product="search", scopes=["read"])
    client = AsyncClient()

    assert_denied(await client.get(f"/{where}/"), 401, "Missing API key")
    assert_denied(
        await client.get(f"/{where}/", headers={"X-API-Key": "k" * 8192}), 401, "Invalid API key"
    )
    response = await client.get(f"/{where}/search/", headers=bearer(key))
    assert response.status_code == 200
    assert response.json() == {"org_id": "acme", "project_id": "shop"}


@pytest.fixture
def http_authority(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuthService]:
    """The `http` backend, answering from a real key authority on 127.0.0.1."""
    service = AuthService()
    monkeypatch.setenv("APPKIT_AUTH_BACKEND", "http")
    monkeypatch.setenv("APPKIT_AUTH_URL", service.url)
    get_settings.cache_clear()
    try:
        yield service
    finally:
        service.stop()


def test_sync_client_200_and_the_authority_token_cached_in_redis(http_authority) -> None:
    # The sync path shares the Redis cache (sync client) with the other processes; static
    # keys skip it (every process holds their table), so an authority answers here.
    key = "live-key-0123456789"
    http_authority.answers[key] = (200, {"org_id": "acme", "project_id": "shop", "ttl": 60})
    assert Client().get("/sync/", headers=bearer(key)).status_code == 200
    name = f"{get_settings().redis_prefix}:auth:{hashlib.sha256(key.encode()).hexdigest()}"
    assert get_redis_instance("authentication_cache").exists(name) == 1
    assert len(http_authority.received) == 1


@pytest.mark.parametrize("where", ["sync", "async"])
async def test_static_keys_known_or_not_make_no_redis_command(
    api_key, redis_commands, where
) -> None:
    key = api_key("acme", "shop", product="search", scopes=["read"])
    client = AsyncClient()

    for n in range(10):
        assert_denied(
            await client.get(f"/{where}/", headers=bearer(f"unknown-key-{n}")),
            401,
            "Invalid API key",
        )
    assert (await client.get(f"/{where}/search/", headers=bearer(key))).status_code == 200

    assert redis_commands() == Counter()


@pytest.mark.parametrize("where", ["sync", "async"])
async def test_authority_unavailable_is_503_with_retry_after(monkeypatch, where) -> None:
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("APPKIT_AUTH_BACKEND", "http")
    monkeypatch.setenv("APPKIT_AUTH_URL", f"http://127.0.0.1:{port}/resolve")
    get_settings.cache_clear()
    response = await AsyncClient().get(f"/{where}/", headers=bearer("some-key-123"))
    assert_denied(response, 503, "Key authority unavailable, retry later")
    assert response.headers["Retry-After"] == "1"
