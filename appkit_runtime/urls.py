"""URL checks and parts for the Redis and database URLs the settings accept."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from redis.connection import parse_url

REDIS_SCHEMES = {"redis", "rediss", "unix", "memory", "redis+cluster", "rediss+cluster"}
DATABASE_SCHEMES = {"postgresql", "postgres", "postgresql+asyncpg", "sqlite", "sqlite+aiosqlite"}


def check_redis_url(url: str, *, cluster: bool = False) -> None:
    """Raise `ValueError` unless `url` is a Redis URL the runtime can connect to.

    redis-py reads `/abc` as database 0 without a word and stops a cluster client with a
    traceback for any database but 0: both are refused here, before a client is made.
    """
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        known = ", ".join(sorted(REDIS_SCHEMES))
        raise ValueError(f"unknown URL scheme {parts.scheme + '://'!r}; use one of {known}")
    _check_port(parts.netloc.rpartition("@")[2])
    if parts.scheme == "memory":
        return
    plain = parts.scheme.removesuffix("+cluster")
    if "," in parts.netloc.rpartition("@")[2]:
        raise ValueError("names several hosts; give one (a cluster client finds the other nodes)")
    if not (parts.path if plain == "unix" else parts.hostname):
        # redis-py would quietly connect to localhost:6379 (or fail on an empty socket path).
        raise ValueError("names no host" if plain != "unix" else "names no socket path")
    database = _database(parts.path if parts.scheme != "unix" else "", parts.query)
    if database and (cluster or parts.scheme.endswith("+cluster")) and int(database) != 0:
        raise ValueError(
            f"database {database} in a cluster URL; a Redis Cluster has only database 0"
        )
    # redis-py converts query options (`socket_timeout=abc`) only when the first client is
    # made, mid-start-up, with a traceback; its own parser says the same thing now.
    parse_url(urlunsplit(parts._replace(scheme=plain)))


def _database(path: str, query: str) -> str:
    """The database number a Redis URL names ('' for none); `ValueError` unless a number."""
    values = parse_qs(query).get("db")
    database = values[0] if values else unquote(path).strip("/")
    if database and not (database.isascii() and database.isdigit()):
        raise ValueError(f"database {database!r} is not a number")
    return database


def check_authority_url(url: str) -> None:
    """Raise `ValueError` unless `url` is an http(s) URL with a host and a valid port.

    httpx reads it only on the first key lookup: a typo would make every uncached key a 503
    (or, for a bad port, a 500) instead of a refusal at start-up.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise ValueError(f"unknown URL scheme {parts.scheme + '://'!r}; use http or https")
    _check_port(parts.netloc.rpartition("@")[2])
    if not parts.hostname:
        raise ValueError("names no host")


def check_database_url(url: str) -> None:
    """Raise `ValueError` unless `url` is a PostgreSQL or SQLite URL."""
    parts = urlsplit(url)
    if parts.scheme not in DATABASE_SCHEMES:
        known = ", ".join(sorted(DATABASE_SCHEMES))
        raise ValueError(f"unknown URL scheme {parts.scheme + '://'!r}; use one of {known}")
    _check_port(parts.netloc.rpartition("@")[2])


def _check_port(hostport: str) -> None:
    for host in hostport.split(","):
        if host.startswith("["):
            host = host.partition("]")[2]
        _, colon, port = host.partition(":")
        if colon and not port.isdigit():
            raise ValueError(f"port {port!r} is not a number")
        if colon and not 0 < int(port) < 65536:
            raise ValueError(f"port {port} is out of range")


@dataclass(frozen=True, slots=True)
class DatabaseURL:
    """A database URL split into the parts the reference reads, plus the async URL."""

    url: str
    async_url: str
    drivername: str
    user: str | None
    password: str | None
    host: str | None
    port: int | None
    name: str | None


def async_database_url(url: str) -> str:
    """The same URL with the async driver: asyncpg for PostgreSQL, aiosqlite for SQLite."""
    scheme, rest = url.split("://", 1)
    driver = {"postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}
    driver["sqlite"] = "sqlite+aiosqlite"
    return f"{driver.get(scheme, scheme)}://{rest}"
