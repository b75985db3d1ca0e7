"""Every authority's answer is checked before anything is cached or counted under it.

A real key authority on 127.0.0.1 answers 200 with bodies that are not tokens; the full
protected chain (auth, rate limit, usage) must answer 503 and leave Redis untouched.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager

from appkit_runtime.auth import key_digest, redis_cache
from appkit_runtime.auth.token_validation import MalformedToken, checked_answer
from appkit_runtime.errors import ConfigurationError
from appkit_runtime.fastapi import protected
from appkit_runtime.fastapi.fastapi import get_fastapi_app
from appkit_runtime.redis_pools import close_sync_redis_connections
from appkit_runtime.settings import MAX_AUTH_TTL_SECONDS, get_redis_instance, get_settings
from appkit_runtime.tokens import ProjectToken
from tests.auth.authority_server import AuthService, malformed_answers

KEY = "live-key-5d1c08"
TOKEN_JSON = {"org_id": "acme", "project_id": "shop", "scopes": ["read"], "ttl": 120}
MALFORMED = malformed_answers(TOKEN_JSON)


@pytest.fixture
def authority(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuthService]:
    server = AuthService()
    monkeypatch.setenv("APPKIT_AUTH_BACKEND", "http")
    monkeypatch.setenv("APPKIT_AUTH_URL", server.url)
    get_settings.cache_clear()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture
async def client(authority: AuthService) -> AsyncIterator[httpx.AsyncClient]:
    """The whole protected chain: authentication, rate limiter and usage metrics."""
    app = get_fastapi_app("token-validation", databases=())

    @app.get("/items", dependencies=protected())
    async def items() -> dict[str, str]:
        return {"ok": "yes"}

    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


def stored_keys() -> list[bytes]:
    """Every Redis key this test wrote (the plugin gives each test its own prefix)."""
    redis = get_redis_instance("ratelimit")
    keys = sorted(redis.scan_iter(match=f"{get_settings().redis_prefix}:*", count=1000))
    close_sync_redis_connections()
    return keys


@pytest.mark.parametrize(("body", "field"), MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_200_that_is_not_a_token_is_503_and_writes_nothing(
    authority, client, body, field, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    authority.answers[KEY] = (200, body)
    for _ in range(2):  # the second request must not find anything cached either
        response = await client.get("/items", headers={"X-API-Key": KEY})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json() == {"detail": "Key authority unavailable, retry later"}
    assert len(authority.received) == 2
    assert stored_keys() == []
    (line,) = [r.getMessage() for r in caplog.records if "malformed token" in r.getMessage()]
    assert KEY not in line
    assert line.partition("malformed token: ")[2].startswith(f"{field} must be ")


async def test_the_log_line_names_the_field(authority, client, caplog) -> None:
    authority.answers[KEY] = (200, MALFORMED["null-ids"][0])
    await client.get("/items", headers={"X-API-Key": KEY})
    assert "org_id must be a non-empty string of at most 256 characters" in caplog.text
    assert "None" not in caplog.text and KEY not in caplog.text


@pytest.mark.parametrize("ttl", [1e300, 10**400], ids=["float", "integer-beyond-float"])
async def test_a_huge_ttl_is_clamped_and_the_key_cached_for_the_clamp(
    authority, client, ttl
) -> None:
    authority.answers[KEY] = (200, {**TOKEN_JSON, "ttl": ttl})
    assert (await client.get("/items", headers={"X-API-Key": KEY})).status_code == 200
    assert (await client.get("/items", headers={"X-API-Key": KEY})).status_code == 200
    pttl = get_redis_instance("authentication_cache").pttl(redis_cache.redis_key(key_digest(KEY)))
    close_sync_redis_connections()
    assert MAX_AUTH_TTL_SECONDS * 1000 - 60_000 < pttl <= MAX_AUTH_TTL_SECONDS * 1000
    assert len(authority.received) == 1
    assert any(b"{acme:shop}" in key for key in stored_keys())


async def test_a_good_token_still_passes(authority, client) -> None:
    authority.answers[KEY] = (200, TOKEN_JSON)
    assert (await client.get("/items", headers={"X-API-Key": KEY})).status_code == 200
    assert not any(b"None" in key for key in stored_keys())


@pytest.mark.parametrize(
    "answer",
    [
        (ProjectToken(None, None), 10),  # type: ignore[arg-type]
        (ProjectToken("acme", ""), 10),
        (ProjectToken("acme", "shop", scopes=["read"]), 10),  # type: ignore[arg-type]
        (ProjectToken("acme", "shop", rate_limit=(5, 60)), 10),  # type: ignore[arg-type]
        (ProjectToken("acme", "shop"), True),
        (ProjectToken("acme", "shop"), float("nan")),
        ProjectToken("acme", "shop"),
    ],
    ids=[
        "null-ids",
        "empty-project",
        "scopes-a-list",
        "rate-limit-a-tuple",
        "ttl-true",
        "nan",
        "no-ttl",
    ],
)
def test_answers_of_custom_authorities_are_checked_too(answer) -> None:
    with pytest.raises(MalformedToken):
        checked_answer(answer)


def test_a_good_answer_keeps_its_token_and_clamps_its_ttl() -> None:
    token = ProjectToken("acme", "shop", scopes=frozenset({"read"}))
    assert checked_answer((token, 30)) == (token, 30.0)
    assert checked_answer((None, 1e300)) == (None, MAX_AUTH_TTL_SECONDS)
    assert checked_answer((None, 10**400)) == (None, MAX_AUTH_TTL_SECONDS)


def test_a_malformed_entry_in_the_redis_cache_is_a_miss() -> None:
    with pytest.raises(ValueError):
        redis_cache.decode(b'["","shop",null,null,[],null]')
    assert redis_cache.decode(b'["acme","shop",null,null,["read"],[5,60]]').org_id == "acme"


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("APPKIT_AUTH_CACHE_TTL", "1e300", "APPKIT_AUTH_CACHE_TTL"),
        ("APPKIT_AUTH_NEGATIVE_TTL", "nan", "APPKIT_AUTH_NEGATIVE_TTL"),
        ("APPKIT_API_KEYS", '[{"key": "dev-key-1", "org_id": "", "project_id": "p"}]', "org_id"),
    ],
)
def test_settings_refuse_what_the_authority_check_would(
    monkeypatch, variable, value, named
) -> None:
    monkeypatch.setenv(variable, value)
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match=named):
        get_settings()


async def test_a_custom_authority_answering_null_ids_gets_503_not_a_project(
    counting_auth, client_for
) -> None:
    dependency = counting_auth({KEY: ProjectToken(None, None)})  # type: ignore[arg-type]
    response = await client_for(dependency).get("/items", headers={"X-API-Key": KEY})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert stored_keys() == []
