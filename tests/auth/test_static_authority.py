"""The `static` authority: `APPKIT_API_KEYS` entries, held and compared as digests."""

from __future__ import annotations

import hashlib
import json

import pytest

from appkit_runtime.auth import get_project_token, register_static_key
from appkit_runtime.auth.static_keys import settings_table
from appkit_runtime.errors import ConfigurationError
from appkit_runtime.fastapi.authentication import AuthenticateKey
from appkit_runtime.settings import RateLimit, get_settings
from appkit_runtime.tokens import ProjectToken

PLAIN = "dev-key-plain-1234"
HASHED = "dev-key-hashed-5678"
ENTRIES = [
    {"key": PLAIN, "org_id": "acme", "project_id": "shop", "scopes": ["read"]},
    {
        "key_sha256": hashlib.sha256(HASHED.encode()).hexdigest().upper(),
        "org_id": "acme",
        "project_id": "blog",
        "key_id": "k2",
        "product": "search",
        "rate_limit": "10/60",
    },
]


def ask(key: str) -> tuple[ProjectToken | None, float]:
    return get_project_token(None, {}, key, None, "GET", None)


@pytest.fixture(params=["json", "file"])
def static_keys(request, monkeypatch, tmp_path) -> None:
    text = json.dumps(ENTRIES)
    if request.param == "file":
        path = tmp_path / "keys.json"
        path.write_text(text)
        text = str(path)
    monkeypatch.setenv("APPKIT_API_KEYS", text)
    get_settings.cache_clear()


def test_plain_and_hashed_entries_resolve(static_keys) -> None:
    settings = get_settings()
    assert ask(PLAIN) == (
        ProjectToken("acme", "shop", scopes=frozenset({"read"})),
        settings.auth_cache_ttl,
    )
    assert ask(HASHED) == (
        ProjectToken("acme", "blog", "k2", "search", frozenset(), RateLimit(10, 60)),
        settings.auth_cache_ttl,
    )
    assert ask("unknown") == (None, settings.auth_negative_ttl)


async def test_configured_keys_open_the_endpoint(static_keys, client_for) -> None:
    client = client_for(AuthenticateKey(product="search"))
    assert (await client.get("/items", headers={"X-API-Key": HASHED})).status_code == 200
    assert (await client.get("/items", headers={"X-API-Key": PLAIN})).status_code == 200
    assert (await client.get("/items", headers={"X-API-Key": PLAIN + "x"})).status_code == 401


def test_the_table_holds_digests_only_and_is_built_once_per_settings(static_keys) -> None:
    table = settings_table(get_settings())
    assert set(table) == {hashlib.sha256(k.encode()).digest() for k in (PLAIN, HASHED)}
    assert settings_table(get_settings()) is table
    get_settings.cache_clear()
    assert settings_table(get_settings()) is not table


def test_plain_keys_are_refused_in_production(monkeypatch) -> None:
    monkeypatch.setenv("APPKIT_ENV", "production")
    monkeypatch.setenv("APPKIT_REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("APPKIT_API_KEYS", json.dumps(ENTRIES))
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="^APPKIT_API_KEYS: plain `key` entries"):
        get_settings()


def test_registered_keys_resolve_until_removed() -> None:
    remove = register_static_key("reg-key-1", org_id="o", project_id="p", rate_limit="3/9")
    assert ask("reg-key-1")[0] == ProjectToken("o", "p", rate_limit=RateLimit(3, 9))
    remove()
    assert ask("reg-key-1")[0] is None


def test_api_key_fixture_registers_a_fresh_key(api_key) -> None:
    first = api_key("acme", "shop", key_id="k", product="p", scopes=["a"], rate_limit="7/70")
    second = api_key()
    assert first != second and first.startswith("ak_test_")
    assert ask(first)[0] == ProjectToken(
        "acme", "shop", "k", "p", frozenset({"a"}), RateLimit(7, 70)
    )
    assert ask(second)[0] == ProjectToken("org", "project")


def test_api_key_fixture_keys_live_for_one_test_only(request) -> None:
    keys: list[str] = []

    def gone_after_teardown() -> None:  # runs after the fixture's teardown (finalizers are LIFO)
        assert [ask(key)[0] for key in keys] == [None]

    request.addfinalizer(gone_after_teardown)
    keys.append(request.getfixturevalue("api_key")())
    assert ask(keys[0])[0] == ProjectToken("org", "project")
