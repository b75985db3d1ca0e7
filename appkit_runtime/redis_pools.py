"""Redis clients cached per dependency name, and for async clients per running event loop.

An asyncio connection belongs to the loop that opened it, and pytest-asyncio gives every
test a new loop, so a pool is never handed from one loop to another.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis as sync_redis
import redis.asyncio as async_redis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from appkit_runtime.loop_cache import LoopCache
from appkit_runtime.settings import Settings, get_settings

logger = logging.getLogger("appkit_runtime")

_async_clients: LoopCache[Any] = LoopCache()
# Per name: the settings object last seen, its client key and URL (the limiter asks each request).
_client_keys: dict[str, tuple[Settings, str, str]] = {}
_sync_clients: dict[str, Any] = {}
_fake_servers: dict[str, Any] = {}
_sync_lock = threading.Lock()
_warned_memory = False


def async_client(name: str, settings: Settings | None = None) -> async_redis.Redis:
    """The cached async client of `name` for the running loop, made on first use; `settings`
    are the current ones, when the caller has read them already."""
    if settings is None:
        settings = get_settings()
    known = _client_keys.get(name)
    if known is None or known[0] is not settings:
        # Keyed by URL too, so a test that changes settings never gets a stale server's client.
        url, _ = settings.redis_url_for(name)
        known = _client_keys[name] = (settings, f"{name}\n{url}", url)
    clients = _async_clients.current()
    client = clients.get(known[1])
    if client is None:
        client = clients[known[1]] = _make_client(known[2], asynchronous=True)
    return client


def async_client_entry(name: str, settings: Settings) -> tuple[Any, dict[Any, Any], str]:
    """`async_client` for a caller that keeps the client: the client, the running loop's
    map of clients and its key there. The kept client is still the one `async_client` gives
    (on that loop, with those settings) while `clients.get(key) is client`: closing the
    loop's pools empties the map."""
    client = async_client(name, settings)
    return client, _async_clients.current(), _client_keys[name][1]


def sync_client(name: str) -> sync_redis.Redis:
    """The cached synchronous client of `name`, shared by all threads."""
    url, _ = get_settings().redis_url_for(name)
    key = f"{name}\n{url}"
    client = _sync_clients.get(key)
    if client is None:
        with _sync_lock:
            client = _sync_clients.get(key)
            if client is None:
                client = _sync_clients[key] = _make_client(url, asynchronous=False)
    return client


async def close_redis_connections() -> None:
    """Close the running loop's async pools and every sync pool; later calls make new ones."""
    for client in _async_clients.pop_current().values():
        await client.aclose()
        pool = getattr(client, "connection_pool", None)
        if pool is not None:
            await pool.disconnect()
    close_sync_redis_connections()


def close_sync_redis_connections() -> None:
    """Close every synchronous pool; later calls make new ones."""
    with _sync_lock:
        clients = list(_sync_clients.values())
        _sync_clients.clear()
    for client in clients:
        client.close()
        # A client given its own pool does not close it: disconnect the sockets here.
        pool = getattr(client, "connection_pool", None)
        if pool is not None:
            pool.disconnect()


def _make_client(url: str, *, asynchronous: bool) -> Any:
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return _fake_client(url, asynchronous=asynchronous)
    if scheme.endswith("+cluster") or get_settings().redis_cluster:
        plain = urlunsplit(urlsplit(url)._replace(scheme=scheme.removesuffix("+cluster")))
        cluster = async_redis.RedisCluster if asynchronous else sync_redis.RedisCluster
        return cluster.from_url(plain)
    if asynchronous:
        pool = async_redis.BlockingConnectionPool.from_url(
            url, **_pool_options(url), retry=AsyncRetry(NoBackoff(), 1)
        )
        return async_redis.Redis(connection_pool=pool)
    pool = sync_redis.BlockingConnectionPool.from_url(
        url, **_pool_options(url), retry=Retry(NoBackoff(), 1)
    )
    return sync_redis.Redis(connection_pool=pool)


def _pool_options(url: str) -> dict[str, Any]:
    """Pool defaults for serving traffic; options in the URL's query still win.

    A hung Redis must not hold a request for redis-py's 5 s socket default or its retries
    (fail-open depends on failing fast), and a burst beyond the pool waits for a connection
    instead of failing: redis-py's plain pool raises at once when all are in use.
    """
    query = urlsplit(url).query
    options: dict[str, Any] = {
        "socket_timeout": 1.0,
        "socket_connect_timeout": 1.0,
        "max_connections": 50,
        "timeout": 2.0,
    }
    # One retry, no backoff, added by the caller: redis-py 8 wants the asyncio `Retry` class
    # for an asyncio pool (it converts a sync one with a warning).
    return {name: value for name, value in options.items() if f"{name}=" not in query}


def _fake_client(url: str, *, asynchronous: bool) -> Any:
    """An in-process Redis (fakeredis with Lua): one server per URL, shared by every client."""
    global _warned_memory
    try:
        import fakeredis
    except ImportError:
        from appkit_runtime.errors import ConfigurationError

        raise ConfigurationError(
            "APPKIT_REDIS_URL: memory:// needs the embedded extra: "
            "pip install 'appkit-runtime[embedded]'"
        ) from None
    server = _fake_servers.get(url)
    if server is None:
        server = _fake_servers[url] = fakeredis.FakeServer()
    if not _warned_memory:
        _warned_memory = True
        logger.warning(
            "Redis is memory:// (in-process, not shared between processes, lost on restart); "
            "set APPKIT_REDIS_URL for anything but development"
        )
    if asynchronous:
        return fakeredis.FakeAsyncRedis(server=server)
    return fakeredis.FakeRedis(server=server)
