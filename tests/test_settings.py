from __future__ import annotations

import json

import pytest

from appkit_runtime.errors import ConfigurationError
from appkit_runtime.settings import get_database_url, load_settings, parse_rate_limit

BAD_SETTINGS = [
    (
        {"APPKIT_REDIS_URL": "http://cache:6379"},
        "APPKIT_REDIS_URL: unknown URL scheme 'http://'",
    ),
    ({"APPKIT_REDIS_URL": "redis://cache:sixty"}, "APPKIT_REDIS_URL: port 'sixty' is not a number"),
    (
        {"APPKIT_REDIS_URL_RATELIMIT": "redis://cache:x1"},
        "APPKIT_REDIS_URL_RATELIMIT: port 'x1' is not a number",
    ),
    (
        {"APPKIT_REDIS_URL": "redis+cluster://cache:7000/3"},
        "APPKIT_REDIS_URL: database 3 in a cluster URL; a Redis Cluster has only database 0",
    ),
    (
        {
            "APPKIT_REDIS_CLUSTER": "true",
            "APPKIT_REDIS_URL": "redis://cache",
            "APPKIT_REDIS_URL_RATELIMIT": "redis://cache/2",
        },
        "APPKIT_REDIS_URL_RATELIMIT: database 2 in a cluster URL",
    ),
    ({"APPKIT_REDIS_URL": "redis://cache:6379/abc"}, "APPKIT_REDIS_URL: database 'abc' is not a"),
    ({"APPKIT_REDIS_URL_CACHE": "rediss://cache/7x"}, "APPKIT_REDIS_URL_CACHE: database '7x' is"),
    ({"APPKIT_REDIS_URL": "unix:///run/redis.sock?db=x"}, "APPKIT_REDIS_URL: database 'x' is"),
    ({"APPKIT_REDIS_URL": "redis://"}, "APPKIT_REDIS_URL: names no host"),
    ({"APPKIT_REDIS_URL": "redis+cluster:///0"}, "APPKIT_REDIS_URL: names no host"),
    ({"APPKIT_REDIS_URL": "unix://"}, "APPKIT_REDIS_URL: names no socket path"),
    (
        {"APPKIT_REDIS_URL": "redis+cluster://node1:7000,node2:7001"},
        "APPKIT_REDIS_URL: names several hosts; give one (a cluster client finds the other nodes)",
    ),
    (
        {"APPKIT_REDIS_URL_CACHE": "redis://cache/0?max_connections=x"},
        "APPKIT_REDIS_URL_CACHE: Invalid value for 'max_connections' in connection URL.",
    ),
    (
        {"APPKIT_DATABASE_URL": "mysql://db/app"},
        "APPKIT_DATABASE_URL: unknown URL scheme 'mysql://'",
    ),
    (
        {"APPKIT_DATABASE_URL": "postgresql://u@db:port/app"},
        "APPKIT_DATABASE_URL: port 'port' is not a number",
    ),
    (
        {"APPKIT_ENV": "production", "APPKIT_REDIS_URL": "memory://"},
        "APPKIT_REDIS_URL: memory:// is an in-process emulation and is refused",
    ),
    (
        {
            "APPKIT_ENV": "production",
            "APPKIT_REDIS_URL": "redis://r",
            "APPKIT_REDIS_URL_CACHE": "memory://",
        },
        "APPKIT_REDIS_URL_CACHE: memory:// is an in-process emulation",
    ),
    (
        {"APPKIT_AUTH_BACKEND": "http"},
        "APPKIT_AUTH_URL: not set, and APPKIT_AUTH_BACKEND=http needs the authority's URL",
    ),
    (
        {"APPKIT_AUTH_BACKEND": "http", "APPKIT_AUTH_URL": "ftp://u:s3cret@auth/"},
        "APPKIT_AUTH_URL: unknown URL scheme 'ftp://'; use http or https",
    ),
    (
        {"APPKIT_AUTH_BACKEND": "http", "APPKIT_AUTH_URL": "auth.internal/resolve"},
        "APPKIT_AUTH_URL: unknown URL scheme '://'",
    ),
    (
        {"APPKIT_AUTH_BACKEND": "http", "APPKIT_AUTH_URL": "http://u:s3cret@auth:port/"},
        "APPKIT_AUTH_URL: port 'port' is not a number",
    ),
    ({"APPKIT_AUTH_BACKEND": "http", "APPKIT_AUTH_URL": "https://"}, "APPKIT_AUTH_URL: names no"),
    ({"APPKIT_RATELIMIT_DEFAULT": "ten"}, "APPKIT_RATELIMIT_DEFAULT: expected N/S"),
    ({"APPKIT_RATELIMIT_DEFAULT": "0/60"}, "APPKIT_RATELIMIT_DEFAULT: expected N/S"),
    # Python's int() takes other scripts' digits and stops at 4300 digits with its own message.
    ({"APPKIT_RATELIMIT_DEFAULT": "\u0665/60"}, "APPKIT_RATELIMIT_DEFAULT: expected N/S"),
    ({"APPKIT_RATELIMIT_DEFAULT": "1" + "0" * 5000 + "/60"}, "APPKIT_RATELIMIT_DEFAULT: expected"),
    # An infinite time-out or flush interval is never reached; NaN passes every bound.
    ({"APPKIT_AUTH_TIMEOUT": "inf"}, "APPKIT_AUTH_TIMEOUT: Input should be a finite number"),
    (
        {"APPKIT_METRICS_FLUSH_SECONDS": "inf"},
        "APPKIT_METRICS_FLUSH_SECONDS: Input should be a finite number",
    ),
    ({"APPKIT_AUTH_CACHE_TTL": "nan"}, "APPKIT_AUTH_CACHE_TTL: Input should be a finite number"),
    (
        {"APPKIT_DATABASE_POOL_SIZE": "0"},
        "APPKIT_DATABASE_POOL_SIZE: Input should be greater than or equal to 1",
    ),
    (
        {"APPKIT_DATABASE_MAX_OVERFLOW": "-1"},
        "APPKIT_DATABASE_MAX_OVERFLOW: Input should be greater than or equal to 0",
    ),
    (
        {"APPKIT_ENV": "staging"},
        "APPKIT_ENV: Input should be 'development', 'test' or 'production'",
    ),
    (
        {"APPKIT_API_KEYS": json.dumps([{"key": "k", "org_id": "a\nb", "project_id": "p"}])},
        "APPKIT_API_KEYS: must not contain control characters such as line breaks (at 0.org_id)",
    ),
    ({"APPKIT_API_KEYS": "[{"}, "APPKIT_API_KEYS: is not valid JSON"),
    ({"APPKIT_API_KEYS": "/no/such/file.json"}, "APPKIT_API_KEYS: is neither a JSON list"),
    (
        {"APPKIT_API_KEYS": json.dumps([{"org_id": "o", "project_id": "p"}])},
        "APPKIT_API_KEYS: Value error, each entry needs exactly one of key or key_sha256",
    ),
    *(
        (
            {"APPKIT_API_KEYS": json.dumps([{"key": key, "org_id": "o", "project_id": "p"}])},
            "APPKIT_API_KEYS: key must be 1 to 512 printable ASCII characters without spaces, "
            "as a presented key is (at 0.key)",
        )
        for key in ("has space", "café-key", "a\u0001b", "k" * 513)
    ),
]


@pytest.mark.parametrize(("environ", "message"), BAD_SETTINGS)
def test_bad_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], message: str
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    text = str(caught.value)
    assert "\n" not in text
    assert text.replace("Value error, ", "").startswith(message.replace("Value error, ", ""))


@pytest.mark.parametrize(
    "url",
    ["redis://cache", "redis://cache:6379/", "rediss://u:p@cache/15", "redis+cluster://c:7000/0"],
)
def test_good_redis_urls_pass(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("APPKIT_REDIS_URL", url)
    assert load_settings().redis_url == url


def test_secrets_are_not_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPKIT_DATABASE_URL", "postgresql://u:hunter2@db:nope/app")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)


def test_plain_keys_are_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPKIT_ENV", "production")
    monkeypatch.setenv("APPKIT_REDIS_URL", "redis://r:6379")
    keys = [{"key": "dev-key", "org_id": "o", "project_id": "p"}]
    monkeypatch.setenv("APPKIT_API_KEYS", json.dumps(keys))
    with pytest.raises(ConfigurationError, match="^APPKIT_API_KEYS: plain `key` entries"):
        load_settings()


def test_api_keys_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    path = tmp_path / "keys.json"
    entry = {"key_sha256": "ab" * 32, "org_id": "o", "project_id": "p", "rate_limit": "5/10"}
    path.write_text(json.dumps([entry]))
    monkeypatch.setenv("APPKIT_API_KEYS", str(path))
    ((digest, token),) = load_settings().api_keys.by_digest.items()
    assert (digest, token.org_id, token.rate_limit) == (bytes.fromhex("ab" * 32), "o", (5, 10))


def test_named_redis_url_overrides_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPKIT_REDIS_URL", "redis://main:6379/0")
    monkeypatch.setenv("APPKIT_REDIS_URL_RATELIMIT", "redis://limits:6380/1")
    settings = load_settings()
    assert settings.redis_url_for("ratelimit") == (
        "redis://limits:6380/1",
        "APPKIT_REDIS_URL_RATELIMIT",
    )
    assert settings.redis_url_for("cache") == ("redis://main:6379/0", "APPKIT_REDIS_URL")


def test_rate_limit_parsing() -> None:
    assert parse_rate_limit("100/60") == (100, 60)
    assert parse_rate_limit(" 5 / 1 ") == (5, 1)
    for bad in ("100", "a/b", "-1/60", "10/0", "1.5/2"):
        with pytest.raises(ValueError, match="expected N/S"):
            parse_rate_limit(bad)


def test_database_url_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    from appkit_runtime.settings import get_settings

    monkeypatch.delenv("APPKIT_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    assert get_database_url("default") is None
    monkeypatch.setenv(
        "APPKIT_DATABASE_URL_REPORTS", "postgresql://ann:s3cret@db.local:6543/reports"
    )
    get_settings.cache_clear()
    url = get_database_url("reports")
    assert url is not None
    assert (url.user, url.password, url.host, url.port, url.name) == (
        "ann",
        "s3cret",
        "db.local",
        6543,
        "reports",
    )
    assert url.async_url == "postgresql+asyncpg://ann:s3cret@db.local:6543/reports"
    assert get_database_url("default") is None
