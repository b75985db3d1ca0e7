"""The `static` authority: `APPKIT_API_KEYS` entries, held and compared as digests."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import Depends

from appkit_runtime import settings as settings_module
from appkit_runtime.auth import get_project_token, register_static_key, resolve
from appkit_runtime.auth import static_keys as static_keys_module
from appkit_runtime.auth.cache import LOCAL
from appkit_runtime.auth.static_keys import settings_table
from appkit_runtime.errors import ConfigurationError
from appkit_runtime.fastapi.authentication import AuthenticateKey
from appkit_runtime.fastapi.fastapi import get_fastapi_app
from appkit_runtime.settings import RateLimit, StaticKeys, get_settings, load_settings
from appkit_runtime.tokens import ProjectToken
from tests.conftest import REDIS_URL

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


AUTHENTICATE = AuthenticateKey()


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
    get_settings.cache_clear()  # read again from the same APPKIT_API_KEYS: the same table
    assert settings_table(get_settings()) is table


def test_plain_keys_are_refused_in_production(monkeypatch) -> None:
    monkeypatch.setenv("APPKIT_ENV", "production")
    monkeypatch.setenv("APPKIT_REDIS_URL", REDIS_URL)  # production refuses memory://
    monkeypatch.setenv("APPKIT_API_KEYS", json.dumps(ENTRIES))
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="^APPKIT_API_KEYS: plain `key` entries"):
        get_settings()


@pytest.mark.parametrize("spelling", ["key_sha256", "key"])
def test_one_key_for_two_projects_is_refused_naming_the_entry(monkeypatch, spelling) -> None:
    second = {"key": HASHED} if spelling == "key" else {"key_sha256": ENTRIES[1]["key_sha256"]}
    entries = [*ENTRIES, {**second, "org_id": "other", "project_id": "bill"}]
    monkeypatch.setenv("APPKIT_API_KEYS", json.dumps(entries))
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError) as refused:
        get_settings()
    assert str(refused.value) == (
        "APPKIT_API_KEYS: the same key as an earlier entry, for another token (at 2)"
    )
    assert HASHED not in str(refused.value)


def test_a_key_listed_twice_for_the_same_token_is_accepted(monkeypatch) -> None:
    monkeypatch.setenv("APPKIT_API_KEYS", json.dumps([*ENTRIES, ENTRIES[0]]))
    get_settings.cache_clear()
    assert ask(PLAIN)[0] == ProjectToken("acme", "shop", scopes=frozenset({"read"}))


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


class DigestOnly(Mapping[bytes, ProjectToken]):
    """A table that answers lookups by digest and fails the test if anything walks it."""

    def __init__(self, table: Mapping[bytes, ProjectToken]) -> None:
        self.table = dict(table)
        self.asked: list[bytes] = []

    def __getitem__(self, digest: bytes) -> ProjectToken:
        self.asked.append(digest)
        return self.table[digest]

    def get(self, digest: bytes, default: Any = None) -> Any:  # type: ignore[override]
        self.asked.append(digest)
        return self.table.get(digest, default)

    def __iter__(self) -> Iterator[bytes]:
        raise AssertionError("the key table was walked instead of looked up")

    def __len__(self) -> int:
        return len(self.table)


def test_lookup_is_one_dict_lookup_by_digest(static_keys) -> None:
    keys = get_settings().api_keys
    table = keys.by_digest = DigestOnly(keys.by_digest)

    assert ask(HASHED)[0] == ProjectToken("acme", "blog", "k2", "search", frozenset(), (10, 60))
    assert ask("unknown")[0] is None
    assert table.asked == [hashlib.sha256(k.encode()).digest() for k in (HASHED, "unknown")]


def _sha_entries(count: int) -> list[dict[str, str]]:
    return [
        {
            "key_sha256": hashlib.sha256(f"bulk-{n}".encode()).hexdigest(),
            "org_id": "o",
            "project_id": f"p{n}",
        }
        for n in range(count)
    ]


@pytest.fixture
def counted_builds(monkeypatch, tmp_path) -> list[int]:
    """A file of 2,000 hashed keys in APPKIT_API_KEYS; each table build appends to the list
    and takes 0.2 s longer, so that concurrent first callers would overlap if they could."""
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(_sha_entries(2000)))
    monkeypatch.setenv("APPKIT_API_KEYS", str(path))
    get_settings.cache_clear()
    builds: list[int] = []
    real = static_keys_module.build_table

    def counting(entries: Any) -> StaticKeys:
        builds.append(len(entries))
        time.sleep(0.2)
        return real(entries)

    monkeypatch.setattr(static_keys_module, "build_table", counting)
    return builds


def test_settings_read_again_from_the_same_file_reuse_its_table(counted_builds, tmp_path) -> None:
    # The production entry point checks the settings, then its worker loads them again.
    first = load_settings().api_keys
    assert load_settings().api_keys is first
    assert counted_builds == [2000]
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(_sha_entries(3)))  # a changed file is read again
    assert len(load_settings().api_keys) == 3
    assert counted_builds == [2000, 3]
    # Rewritten in place, same size, its modification time put back (`cp -p`): read again.
    before = path.stat()
    time.sleep(0.01)
    path.write_text(path.read_text().replace('"p0"', '"q0"'))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    assert load_settings().api_keys is not None
    assert counted_builds == [2000, 3, 3]


def test_concurrent_first_lookups_build_one_table(counted_builds) -> None:
    start = threading.Barrier(32)
    found: list[ProjectToken | None] = []

    def first_lookup(n: int) -> None:
        start.wait()
        found.append(ask(f"bulk-{n}")[0])

    threads = [threading.Thread(target=first_lookup, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert counted_builds == [2000]
    assert sorted(token.project_id for token in found) == sorted(f"p{n}" for n in range(32))


async def test_the_lifespan_builds_the_table_before_the_first_requests(
    counted_builds, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = get_fastapi_app("keys-at-start")
    # As a fresh worker process: nothing loaded yet, no table built.
    get_settings.cache_clear()
    monkeypatch.setattr(settings_module, "_last_table", None)
    counted_builds.clear()

    @app.get("/items")
    async def items(token: ProjectToken = Depends(AUTHENTICATE)) -> dict[str, str]:
        return {"project_id": token.project_id}

    async with LifespanManager(app):
        assert counted_builds == [2000]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answers = await asyncio.gather(
                *(client.get("/items", headers={"X-API-Key": f"bulk-{n}"}) for n in range(32))
            )
    assert [a.json() for a in answers] == [{"project_id": f"p{n}"} for n in range(32)]
    assert counted_builds == [2000]


async def test_static_misses_make_no_redis_command_and_leave_nothing_behind(
    api_key, client_for, counting_auth, redis_commands
) -> None:
    key = api_key("acme", "shop")
    client = client_for(AuthenticateKey())

    unknown = [
        await client.get("/items", headers={"X-API-Key": f"unknown-key-{n}"}) for n in range(20)
    ]
    known = await client.get("/items", headers={"X-API-Key": key})

    assert [answer.status_code for answer in unknown] == [401] * 20
    assert unknown[0].json() == {"detail": "Invalid API key"}
    assert unknown[0].headers["WWW-Authenticate"] == "Bearer"
    assert known.status_code == 200 and known.json()["org_id"] == "acme"
    assert redis_commands() == Counter()  # not the auth cache, not even a connection
    assert (len(LOCAL.invalid), len(LOCAL.valid)) == (0, 1)  # no negative entries either
    # The count is live: an authority of the service's own goes through the Redis cache.
    other = client_for(counting_auth({}))
    assert (await other.get("/items", headers={"X-API-Key": "unknown-key-0"})).status_code == 401
    counted = redis_commands()
    assert (counted["get"], counted["pttl"], counted["set"]) == (1, 1, 1)  # and a handshake


async def test_static_misses_never_wait_for_or_take_an_authority_slot(
    client_for, monkeypatch
) -> None:
    monkeypatch.setenv("APPKIT_AUTH_MAX_CONCURRENT", "1")
    get_settings.cache_clear()
    assert resolve._authority_slots.try_take(1)  # the one slot, held by a slow authority call
    try:
        response = await client_for(AuthenticateKey()).get(
            "/items", headers={"X-API-Key": "unknown-key-1"}
        )
    finally:
        resolve._authority_slots.give_back()
    assert response.status_code == 401
