"""The appkit pytest plugin: settings, Redis, database and app fixtures for services' tests.

Each test gets `APPKIT_ENV=test` and its own `APPKIT_REDIS_PREFIX`; afterwards only the keys
under that prefix are deleted, so a shared Redis is never flushed.
"""

from __future__ import annotations

import importlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio

from appkit_runtime.settings import Settings, get_settings
from appkit_runtime.testing.keys import api_key, reset_auth_caches

__all__ = ["api_key", "app", "app_client", "appkit_settings", "db_session", "redis"]

logger = logging.getLogger("appkit_runtime.testing")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("appkit", "appkit services")
    help_text = "the app the `app` fixture returns, as module:attribute (acme.main:app)"
    group.addoption("--appkit-app", dest="appkit_app", default=None, help=help_text)
    parser.addini("appkit_app", help=help_text, default=None)


def _clear_runtime_caches() -> None:
    get_settings.cache_clear()
    reset_auth_caches()


@pytest.fixture(autouse=True)
def _appkit_isolation(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh key prefix and fresh runtime caches for every test."""
    prefix = f"appkit-test:{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("APPKIT_ENV", "test")
    monkeypatch.setenv("APPKIT_REDIS_PREFIX", prefix)
    _clear_runtime_caches()
    yield prefix
    _delete_prefixed_keys(prefix)
    _clear_runtime_caches()


def _delete_prefixed_keys(prefix: str) -> None:
    """Delete what the test wrote under its prefix, on each Redis the runtime uses."""
    from appkit_runtime.fastapi.health import RUNTIME_REDIS_NAMES
    from appkit_runtime.redis_pools import close_sync_redis_connections, sync_client

    try:
        settings = get_settings()
    except ValueError:
        return
    seen: set[str] = set()
    for name in RUNTIME_REDIS_NAMES:
        url, _ = settings.redis_url_for(name)
        if url in seen:
            continue
        seen.add(url)
        try:
            client = sync_client(name)
            doomed = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for key in doomed:
                client.delete(key)
        except Exception as error:  # the test may have pointed Redis at a closed port
            logger.debug("could not clean %s keys: %s", name, type(error).__name__)
    close_sync_redis_connections()


@pytest.fixture
def appkit_settings(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """`appkit_settings(ratelimit_default="5/60", ...)` sets `APPKIT_*` for this test only."""

    def configure(**fields: Any) -> Settings:
        for field, value in fields.items():
            variable = f"APPKIT_{field.upper()}"
            if value is None:
                monkeypatch.delenv(variable, raising=False)
            elif isinstance(value, str):
                monkeypatch.setenv(variable, value)
            else:
                monkeypatch.setenv(variable, json.dumps(value))
        get_settings.cache_clear()
        return get_settings()

    return configure


@pytest.fixture
def app(request: pytest.FixtureRequest) -> Any:
    """The service's app, named by `--appkit-app` or the `appkit_app` ini option."""
    target = request.config.getoption("appkit_app") or request.config.getini("appkit_app")
    if not target:
        raise pytest.UsageError(
            'appkit: set `appkit_app = "package.main:app"` in [tool.pytest.ini_options] '
            "or define an `app` fixture in conftest.py"
        )
    module_name, _, attribute = str(target).partition(":")
    return getattr(importlib.import_module(module_name), attribute or "app")


@pytest_asyncio.fixture
async def app_client(app: Any) -> AsyncIterator[Any]:
    """An httpx `AsyncClient` over ASGI, with the app's lifespan run around the test."""
    import httpx
    from asgi_lifespan import LifespanManager

    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest_asyncio.fixture
async def redis() -> AsyncIterator[Any]:
    """The async client the rate limiter uses: real Redis if `APPKIT_REDIS_URL` is set."""
    from appkit_runtime.redis_pools import close_redis_connections
    from appkit_runtime.settings import get_async_redis_instance

    yield get_async_redis_instance("ratelimit")
    await close_redis_connections()


@pytest_asyncio.fixture
async def db_session() -> AsyncIterator[Any]:
    """An `AsyncSession` inside a transaction that is rolled back after the test."""
    from sqlalchemy.ext.asyncio import AsyncSession

    from appkit_runtime.db import dispose_engines, get_engine

    async with get_engine().connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()
    await dispose_engines()
