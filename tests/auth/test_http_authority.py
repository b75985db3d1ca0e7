"""The `http` authority against a real HTTP server on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from appkit_runtime.auth import get_project_token
from appkit_runtime.auth.http_authority import environment_proxy
from appkit_runtime.errors import AuthorityUnavailable
from appkit_runtime.fastapi.authentication import AuthenticateKey
from appkit_runtime.settings import RateLimit, get_settings
from appkit_runtime.tokens import ProjectToken
from tests.auth.authority_server import AuthService

GOOD = "live-key-4f9a2c"
OTHER = "live-key-77b1e0"
TOKEN_JSON = {
    "org_id": "acme",
    "project_id": "shop",
    "key_id": "k1",
    "product": "search",
    "scopes": ["read"],
    "rate_limit": "100/60",
    "ttl": 120,
}


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuthService]:
    server = AuthService()
    server.answers[GOOD] = (200, TOKEN_JSON)
    server.answers[OTHER] = (200, {**TOKEN_JSON, "key_id": "k2"})
    monkeypatch.setenv("APPKIT_AUTH_BACKEND", "http")
    monkeypatch.setenv("APPKIT_AUTH_URL", server.url)
    monkeypatch.setenv("APPKIT_AUTH_TIMEOUT", "0.5")
    get_settings.cache_clear()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Whatever happens in these tests, no log record holds key material."""
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        message = record.getMessage()
        assert GOOD not in message and OTHER not in message and "live-key" not in message


async def test_a_running_authority_answers_200_with_its_token(service, client_for) -> None:
    response = await client_for(AuthenticateKey()).get(
        "/items", headers={"Authorization": f"Bearer {GOOD}", "Cookie": "session=1"}
    )
    assert response.status_code == 200
    assert response.json()["org_id"] == "acme"

    (request,) = service.received
    assert request["body"]["key"] == GOOD
    assert request["body"]["method"] == "GET"
    assert request["body"]["product"] is None
    forwarded = request["body"]["headers"]
    assert "authorization" not in forwarded and "cookie" not in forwarded
    assert forwarded["host"] == "test"


def test_the_token_carries_every_field(service) -> None:
    token, ttl = get_project_token("search", {}, GOOD, "job", "POST", 443)
    assert token == ProjectToken(
        "acme", "shop", "k1", "search", frozenset({"read"}), RateLimit(100, 60)
    )
    assert ttl == 120
    assert service.received[0]["body"] | {"headers": {}} == {
        "key": GOOD,
        "product": "search",
        "kind": "job",
        "method": "POST",
        "port": 443,
        "headers": {},
    }


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_refusals_are_invalid_keys(service, client_for, status) -> None:
    service.answers["refused-key"] = (status, {"detail": "no"})
    response = await client_for(AuthenticateKey()).get(
        "/items", headers={"X-API-Key": "refused-key"}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "answer",
    [
        (500, {"detail": "boom"}),
        (429, {}),
        (200, b"not json"),
        (200, {"org_id": "acme"}),
        (200, {**TOKEN_JSON, "ttl": -1}),
        (200, {**TOKEN_JSON, "scopes": "read"}),
    ],
    ids=["500", "429", "garbage", "no-project", "negative-ttl", "scopes-not-a-list"],
)
async def test_failures_are_503_with_retry_after(service, client_for, answer) -> None:
    service.answers["odd-key"] = answer
    response = await client_for(AuthenticateKey()).get("/items", headers={"X-API-Key": "odd-key"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json() == {"detail": "Key authority unavailable, retry later"}


async def test_a_slow_authority_times_out_into_503(service, client_for) -> None:
    service.delay = 1.5
    response = await client_for(AuthenticateKey()).get("/items", headers={"X-API-Key": GOOD})
    assert response.status_code == 503
    assert "retry-after" in response.headers


async def test_stopped_authority_is_503_unless_the_key_is_cached(service, client_for) -> None:
    client = client_for(AuthenticateKey())
    assert (await client.get("/items", headers={"X-API-Key": GOOD})).status_code == 200

    service.stop()
    cached = await client.get("/items", headers={"X-API-Key": GOOD})
    uncached = await client.get("/items", headers={"X-API-Key": OTHER})

    assert cached.status_code == 200
    assert uncached.status_code == 503
    assert uncached.headers["retry-after"] == "1"
    assert OTHER not in uncached.text


def test_a_refused_connection_raises_authority_unavailable(service) -> None:
    service.stop()
    with pytest.raises(AuthorityUnavailable, match="unreachable"):
        get_project_token(None, {}, GOOD, None, "GET", None)


async def test_fastapi_asks_on_the_event_loop_not_in_a_thread(service, client_for) -> None:
    # A call in a thread made the loop wait for the GIL (up to 5 ms a switch) under a flood.
    callers: list[str] = []
    real_handle = service.RequestHandlerClass.do_POST

    def recording(handler) -> None:
        callers.append(handler.headers.get("User-Agent", ""))
        real_handle(handler)

    service.RequestHandlerClass.do_POST = recording
    try:
        client = client_for(AuthenticateKey())
        assert (await client.get("/items", headers={"X-API-Key": GOOD})).status_code == 200
        # Django's path and threads keep the blocking client.
        assert get_project_token(None, {}, OTHER, None, "GET", None)[0] is not None
    finally:
        service.RequestHandlerClass.do_POST = real_handle
    assert callers[0].startswith("Python/") and "aiohttp" in callers[0], callers
    assert callers[1].startswith("python-httpx/"), callers


def test_the_proxy_comes_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "auth.local")
    assert environment_proxy("http://auth.example:8080/resolve") == "http://proxy.internal:3128"
    assert environment_proxy("http://auth.local/resolve") is None
    assert environment_proxy("https://auth.example/resolve") is None  # no HTTPS_PROXY
    monkeypatch.delenv("HTTP_PROXY")
    assert environment_proxy("http://auth.example:8080/resolve") is None
    monkeypatch.setenv("ALL_PROXY", "http://every.internal:3128")
    assert environment_proxy("https://auth.example/resolve") == "http://every.internal:3128"


async def test_an_answer_too_large_for_a_token_is_503(service, client_for) -> None:
    # A well-formed token, then whitespace JSON allows: only its size is wrong.
    service.answers["huge-key"] = (200, json.dumps(TOKEN_JSON).encode() + b" " * 200_000)
    response = await client_for(AuthenticateKey()).get("/items", headers={"X-API-Key": "huge-key"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


async def test_a_socks_proxy_makes_the_authority_unavailable_not_an_error(
    service, client_for, monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpx refuses a SOCKS proxy without its extra when its client is made: FastAPI never
    # makes it, and the event loop's session answers 503 when the proxy cannot be used.
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:9")
    response = await client_for(AuthenticateKey()).get("/items", headers={"X-API-Key": GOOD})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
