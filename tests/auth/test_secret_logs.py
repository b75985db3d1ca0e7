"""No log line holds the authority URL's password or an API key, even with DEBUG everywhere."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from appkit_runtime.auth.http_authority import http_authority
from appkit_runtime.fastapi.authentication import AuthenticateKey
from appkit_runtime.log_redaction import redact_url
from appkit_runtime.settings import get_settings
from tests.auth.authority_server import AuthService

PASSWORD = "s3cretpw-7a1f"
GOOD, UNKNOWN, ODD, FAILING = "live-key-a91c", "live-key-b02d", "live-key-c13e", "live-key-d24f"
LATE = "live-key-e35a"
KEYS = (GOOD, UNKNOWN, ODD, FAILING)


@pytest.fixture
def authority(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuthService]:
    """A key authority whose URL carries credentials, as APPKIT_AUTH_URL may."""
    server = AuthService()
    server.answers[GOOD] = (200, {"org_id": "acme", "project_id": "shop"})
    server.answers[ODD] = (200, {"org_id": None, "project_id": "shop"})
    server.answers[FAILING] = (500, {"detail": "boom"})
    url = server.url.replace("http://", f"http://authuser:{PASSWORD}@") + f"?code={PASSWORD}"
    monkeypatch.setenv("APPKIT_AUTH_BACKEND", "http")
    monkeypatch.setenv("APPKIT_AUTH_URL", url)
    get_settings.cache_clear()
    try:
        yield server
    finally:
        server.stop()


def assert_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    assert caplog.records, "nothing was logged: the test would prove nothing"
    for record in caplog.records:
        text = record.getMessage() + (caplog.text if record.exc_info else "")
        assert PASSWORD not in text
        assert not any(key in text for key in (*KEYS, LATE))


async def test_root_logger_at_debug_shows_no_password_and_no_key(
    authority, client_for, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    client = client_for(AuthenticateKey())
    statuses = [
        (await client.get("/items", headers={"X-API-Key": key})).status_code for key in KEYS
    ]
    authority.stop()
    statuses.append(
        (await client.get("/items", headers={"X-API-Key": "live-key-e35a"})).status_code
    )

    assert statuses == [200, 401, 503, 503, 503]
    assert len(authority.received) == 4
    assert_no_secret(caplog)
    assert "malformed token: org_id" in caplog.text


def test_httpx_at_info_by_choice_still_logs_no_password(authority, caplog) -> None:
    # httpx is the blocking client (Django, threads); FastAPI's aiohttp logs no requests.
    httpx_logger = logging.getLogger("httpx")
    before = httpx_logger.level
    httpx_logger.setLevel(logging.INFO)
    try:
        caplog.set_level(logging.DEBUG)
        token, _ = http_authority().get_project_token(None, {}, GOOD, None, "GET", 80)
    finally:
        httpx_logger.setLevel(before)
    assert token is not None
    assert "HTTP Request: POST http://***@127.0.0.1:" in caplog.text
    assert "/v1/keys/resolve?code=*** " in caplog.text
    assert_no_secret(caplog)


def test_the_django_decorator_logs_no_password_either(authority, caplog) -> None:
    from django.test import RequestFactory

    from tests.django.conftest import configure_django

    configure_django()
    from appkit_runtime.django.decorators import authenticate_key

    @authenticate_key()
    def view(request):
        from django.http import JsonResponse

        return JsonResponse({"ok": True})

    caplog.set_level(logging.DEBUG)
    statuses = [
        view(RequestFactory().get("/", headers={"X-API-Key": key})).status_code for key in KEYS
    ]
    assert statuses == [200, 401, 503, 503]
    assert_no_secret(caplog)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://user:pw@auth.example.com:8443/v1?x=1",
            "https://***@auth.example.com:8443/v1?x=***",
        ),
        (
            "https://auth.example.com/api/resolve?code=s3cret&flag&v=2",
            "https://auth.example.com/api/resolve?code=***&flag=***&v=***",
        ),
        ("https://token@auth.example.com/", "https://***@auth.example.com/"),
        ("http://127.0.0.1:9000/resolve", "http://127.0.0.1:9000/resolve"),
    ],
)
def test_redact_url(url, shown) -> None:
    assert redact_url(url) == shown
