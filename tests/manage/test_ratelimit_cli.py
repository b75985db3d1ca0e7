"""`python -m appkit_runtime.manage ratelimit ...`: each command round-trips with the async
functions a service uses, on the real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from appkit_runtime.ratelimit import (
    RateLimitOverride,
    get_org_rate_limit_override,
    get_rate_limit_override,
    list_org_rate_limit_overrides,
    list_rate_limit_overrides,
    make_org_override_key,
    make_override_key,
    set_org_rate_limit_override,
    set_rate_limit_override,
)
from appkit_runtime.settings import get_async_redis_instance

from .conftest import Ran

Cli = Callable[..., Ran]
PROJECT = ("--org-id", "1", "--project-id", "2")
ORG = ("--org-id", "1")
SEARCH = ("--endpoint", "/api/v1/search")
LIMIT = ("--max-requests", "500", "--expiry", "60")


async def test_set_get_list_delete_clear_round_trip(cli: Cli) -> None:
    redis = get_async_redis_instance("ratelimit")

    made = cli("ratelimit", "set", *PROJECT, *SEARCH, *LIMIT, "--json")
    seen = await get_rate_limit_override(redis, "1", "2", "/api/v1/search")
    await set_rate_limit_override(redis, "1", "2", "/items/{item_id}", 7, 9)
    got = cli("ratelimit", "get", *PROJECT, "--endpoint", "/items/{item_id}", "--json")
    listed = cli("ratelimit", "list", *PROJECT, "--json")
    deleted = cli("ratelimit", "delete", *PROJECT, *SEARCH, "--json")
    after_delete = await list_rate_limit_overrides(redis, "1", "2")
    cleared = cli("ratelimit", "clear", *PROJECT, "--json")

    assert made.status == 0
    assert made.json == {
        "endpoint": "/api/v1/search",
        "max_requests": 500,
        "expiry": 60,
        "ttl": None,
    }
    assert seen == RateLimitOverride("/api/v1/search", 500, 60)
    assert (got.status, got.json) == (
        0,
        {"endpoint": "/items/{item_id}", "max_requests": 7, "expiry": 9},
    )
    assert listed.json == [
        {"endpoint": "/api/v1/search", "max_requests": 500, "expiry": 60},
        {"endpoint": "/items/{item_id}", "max_requests": 7, "expiry": 9},
    ]
    assert deleted.json == {"deleted": True}
    assert after_delete == [RateLimitOverride("/items/{item_id}", 7, 9)]
    assert cleared.json == {"removed": 1}
    assert await list_rate_limit_overrides(redis, "1", "2") == []


async def test_org_commands_round_trip(cli: Cli) -> None:
    redis = get_async_redis_instance("ratelimit")

    made = cli("ratelimit", "set-org", *ORG, *SEARCH, "--max-requests", "1000", "--expiry", "60")
    seen = await get_org_rate_limit_override(redis, "1", "/api/v1/search")
    await set_org_rate_limit_override(redis, "1", "/other", 3, 4)
    got = cli("ratelimit", "get-org", *ORG, "--endpoint", "/other", "--json")
    listed = cli("ratelimit", "list-org", *ORG)
    deleted = cli("ratelimit", "delete-org", *ORG, *SEARCH)
    again = cli("ratelimit", "delete-org", *ORG, *SEARCH, "--json")

    assert (made.status, made.out) == (
        0,
        "set for organisation 1 /api/v1/search: 1000 requests per 60 s\n",
    )
    assert seen == RateLimitOverride("/api/v1/search", 1000, 60)
    assert got.json == {"endpoint": "/other", "max_requests": 3, "expiry": 4}
    assert listed.out == "/api/v1/search: 1000 requests per 60 s\n/other: 3 requests per 4 s\n"
    assert (deleted.status, deleted.out) == (
        0,
        "deleted for organisation 1 /api/v1/search\n",
    )
    assert (again.status, again.json) == (0, {"deleted": False})
    assert await list_org_rate_limit_overrides(redis, "1") == [RateLimitOverride("/other", 3, 4)]


async def test_get_of_nothing_prints_null_and_exits_1(cli: Cli) -> None:
    as_json = cli("ratelimit", "get", *PROJECT, *SEARCH, "--json")
    as_text = cli("ratelimit", "get-org", *ORG, *SEARCH)

    assert (as_json.status, as_json.out) == (1, "null\n")
    assert (as_text.status, as_text.out) == (1, "no override for organisation 1\n")


@pytest.mark.parametrize("command", ["set", "set-org"])
async def test_a_ttl_override_removes_itself(cli: Cli, command: str) -> None:
    scope = PROJECT if command == "set" else ORG
    made = cli("ratelimit", command, *scope, *SEARCH, *LIMIT, "--ttl", "1", "--json")
    key = (
        make_override_key("/api/v1/search", "1", "2")
        if command == "set"
        else make_org_override_key("/api/v1/search", "1")
    )
    redis = get_async_redis_instance("ratelimit")
    assert made.json["ttl"] == 1
    ttl = await redis.pttl(key)
    # On a loaded machine the CLI can take longer to exit than the second it set: the key is
    # then already gone (-2), which passes; a key without a TTL (-1) does not.
    assert ttl == -2 or 0 < ttl <= 1000

    # Wait on Redis's own clock: until it reports the key gone.
    for _ in range(20):
        ttl = await redis.pttl(key)
        if ttl <= 0:
            break
        await asyncio.sleep(ttl / 1000)

    get = "get" if command == "set" else "get-org"
    assert cli("ratelimit", get, *scope, *SEARCH, "--json").status == 1
    listing = "list" if command == "set" else "list-org"
    assert cli("ratelimit", listing, *scope, "--json").json == []


BAD_INPUT = {
    "no command": (),
    "unknown action": ("ratelimit", "bogus"),
    "missing org": ("ratelimit", "list-org"),
    "zero requests": (
        "ratelimit",
        "set",
        *PROJECT,
        *SEARCH,
        "--max-requests",
        "0",
        "--expiry",
        "1",
    ),
    "text expiry": ("ratelimit", "set-org", *ORG, *SEARCH, "--max-requests", "1", "--expiry", "x"),
    "negative ttl": ("ratelimit", "set", *PROJECT, *SEARCH, *LIMIT, "--ttl", "-1"),
    "endpoint without slash": ("ratelimit", "get-org", *ORG, "--endpoint", "api"),
    "empty project": ("ratelimit", "list", "--org-id", "1", "--project-id", " "),
    "line break in org": ("ratelimit", "list-org", "--org-id", "a\nb"),
    "ttl on get": ("ratelimit", "get", *PROJECT, *SEARCH, "--ttl", "5"),
}


@pytest.mark.parametrize("args", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_one_line_and_exit_2(cli: Cli, args: tuple[str, ...]) -> None:
    ran = cli(*args)

    assert ran.status == 2
    assert ran.out == ""
    assert ran.err.count("\n") == 1
    assert ran.err.startswith("python -m appkit_runtime.manage: error: ")


def test_an_id_no_token_can_carry_is_refused_naming_the_bound(cli: Cli) -> None:
    ran = cli("ratelimit", "set-org", "--org-id", "o" * 257, *SEARCH, *LIMIT)

    assert (ran.status, ran.out, ran.err.count("\n")) == (2, "", 1)
    assert "argument --org-id: at most 256 characters (got 257)" in ran.err
    assert cli("ratelimit", "list-org", "--org-id", "o" * 256).status == 0


def test_a_limit_too_big_for_redis_names_the_bound(cli: Cli) -> None:
    too_big = ("--max-requests", "2147483648", "--expiry", "60")
    ran = cli("ratelimit", "set-org", *ORG, *SEARCH, *too_big)

    assert (ran.status, ran.out) == (2, "")
    assert ran.err == (
        "python -m appkit_runtime.manage: error: argument --max-requests: "
        "expected a whole number from 1 to 2147483647, got '2147483648'\n"
    )


async def test_production_changes_need_yes(cli: Cli) -> None:
    production = {"APPKIT_ENV": "production"}

    refused = cli("ratelimit", "set-org", *ORG, *SEARCH, *LIMIT, env=production)
    read = cli("ratelimit", "list-org", *ORG, "--json", env=production)
    done = cli("ratelimit", "set-org", *ORG, *SEARCH, *LIMIT, "--yes", env=production)

    assert (refused.status, refused.err) == (
        2,
        "python -m appkit_runtime.manage: error: APPKIT_ENV=production: "
        "add --yes to run `ratelimit set-org`\n",
    )
    assert (read.status, read.json) == (0, [])
    assert done.status == 0
    redis = get_async_redis_instance("ratelimit")
    assert await get_org_rate_limit_override(redis, "1", "/api/v1/search") is not None


def test_bad_settings_and_embedded_redis_are_one_line_exit_2(cli: Cli) -> None:
    bad = cli("ratelimit", "list-org", *ORG, env={"APPKIT_RATELIMIT_DEFAULT": "lots"})
    embedded = cli("ratelimit", "list-org", *ORG, env={"APPKIT_REDIS_URL": "memory://"})

    assert (bad.status, bad.err.count("\n")) == (2, 1)
    assert "APPKIT_RATELIMIT_DEFAULT" in bad.err
    assert (embedded.status, embedded.err.count("\n")) == (2, 1)
    assert "APPKIT_REDIS_URL is memory://" in embedded.err


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+cluster://127.0.0.1:6379/3", "database 3 in a cluster URL"),
        ("redis://127.0.0.1:6379/abc", "database 'abc' is not a number"),
        ("http://127.0.0.1:6379/0", "unknown URL scheme 'http://'"),
        ("redis://", "names no host"),
        ("redis://127.0.0.1:6379/0?socket_timeout=abc", "Invalid value for 'socket_timeout'"),
    ],
)
def test_a_bad_redis_url_is_one_line_exit_2(cli: Cli, url: str, problem: str) -> None:
    ran = cli("ratelimit", "list-org", *ORG, env={"APPKIT_REDIS_URL": url})

    assert (ran.status, ran.out, ran.err.count("\n")) == (2, "", 1)
    assert ran.err.startswith(
        f"python -m appkit_runtime.manage: error: APPKIT_REDIS_URL: {problem}"
    )


def test_redis_down_is_one_line_exit_3(cli: Cli) -> None:
    ran = cli("ratelimit", "list-org", *ORG, env={"APPKIT_REDIS_URL": "redis://127.0.0.1:1/0"})

    assert (ran.status, ran.out, ran.err.count("\n")) == (3, "", 1)
    assert "Redis is unavailable" in ran.err
