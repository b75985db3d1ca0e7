"""The appkit pytest plugin: settings, Redis, database and app fixtures for services' tests.

A service's suite names its app (`appkit_app = "pkg.main:app"`). The run then gets a test
database of its own (never the one `APPKIT_DATABASE_URL` names), built from the migrations,
and each test one transaction shared with the app, rolled back after it. Every test runs under
its own `APPKIT_REDIS_PREFIX`; the keys under it are deleted afterwards.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio

from appkit_runtime.settings import Settings, get_settings
from appkit_runtime.testing import database, startup
from appkit_runtime.testing.faults import (
    appkit_auth_down,
    appkit_database_down,
    appkit_redis_down,
    ratelimit_reset,
    ratelimit_spend,
)
from appkit_runtime.testing.keys import api_key, reset_auth_caches
from appkit_runtime.testing.redis_keys import delete_prefixed_keys, redis_key
from appkit_runtime.testing.service import ServiceFixtures, appkit_transactional_db

__all__ = [
    "api_key",
    "app",
    "appkit_auth_down",
    "appkit_database_down",
    "appkit_redis_down",
    "app_client",
    "appkit_prefix",
    "appkit_settings",
    "appkit_transactional_db",
    "db_session",
    "ratelimit_reset",
    "ratelimit_spend",
    "redis",
    "redis_key",
]

TEST_DATABASE = pytest.StashKey[database.TestDatabase]()
SERVICE_APP = pytest.StashKey[Any]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("appkit", "appkit services")
    help_text = "the app the `app` fixture returns, as module:attribute (acme.main:app)"
    group.addoption("--appkit-app", dest="appkit_app", default=None, help=help_text)
    parser.addini("appkit_app", help=help_text, default=None)
    group.addoption(
        "--appkit-reuse-db",
        action="store_true",
        help="keep the test database between runs (migrations still run to head)",
    )
    group.addoption(
        "--appkit-create-db",
        action="store_true",
        help="rebuild the test database even with --appkit-reuse-db",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "appkit_settings(**fields): APPKIT_* values for this test, as the appkit_settings "
        'fixture sets them (ratelimit_default="3/60")',
    )


def _app_target(config: pytest.Config) -> str | None:
    target = config.getoption("appkit_app") or config.getini("appkit_app")
    return str(target) if target else None


def _is_xdist_controller(config: pytest.Config) -> bool:
    return config.pluginmanager.hasplugin("dsession")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """For a service: check settings, app and servers, then build this process's test database."""
    config = session.config
    target = _app_target(config)
    if target is None:
        return
    os.environ["APPKIT_ENV"] = "test"
    app = startup.import_app(target)
    settings = startup.check_settings()
    startup.check_redis()
    configured = settings.database_url_for("default")[0] or settings.embedded_database_url
    worker = getattr(config, "workerinput", {}).get("workerid")
    test_database = database.derive_test_database(
        configured, worker, config.rootpath, config.getoption("appkit_reuse_db")
    )
    if _is_xdist_controller(config):
        if not test_database.is_sqlite:
            database.check_postgres(test_database.url)
        return
    database.create_test_database(test_database, recreate=config.getoption("appkit_create_db"))
    # From here on everything in this process, the migrations included, uses the test database.
    os.environ["APPKIT_DATABASE_URL"] = test_database.text
    get_settings.cache_clear()
    try:
        database.build_schema(config.rootpath)
    except pytest.UsageError:
        database.drop_test_database(test_database)  # no session finish follows a failed start
        raise
    config.stash[TEST_DATABASE] = test_database
    config.stash[SERVICE_APP] = app
    config.pluginmanager.register(ServiceFixtures(app), "appkit-service")


def pytest_sessionfinish(session: pytest.Session) -> None:
    test_database = session.config.stash.get(TEST_DATABASE, None)
    if test_database is not None:
        database.drop_test_database(test_database)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without `appkit_app`, a test that needs the plugin's `app` stops the run with one line."""
    if _app_target(config) is not None:
        return
    for item in items:
        definitions = getattr(item, "_fixtureinfo", None)
        chain = definitions.name2fixturedefs.get("app", ()) if definitions else ()
        if chain and getattr(chain[-1].func, "__module__", None) == __name__:
            raise pytest.UsageError(
                f"appkit: {item.nodeid} needs the app: set `appkit_app = "
                '"package.main:app"` in [tool.pytest.ini_options] or define an `app` fixture'
            )


@pytest.fixture(autouse=True)
def _appkit_isolation(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh key prefix, the `appkit_settings` marks' values and fresh runtime caches."""
    prefix = f"appkit-test:{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("APPKIT_ENV", "test")
    monkeypatch.setenv("APPKIT_REDIS_PREFIX", prefix)
    # The closest mark last, so a test's own values win over its module's or class's.
    for mark in reversed(list(request.node.iter_markers("appkit_settings"))):
        _set_appkit_environ(monkeypatch, mark.kwargs)
    get_settings.cache_clear()
    reset_auth_caches()
    yield prefix
    delete_prefixed_keys(prefix)
    get_settings.cache_clear()
    reset_auth_caches()


def _set_appkit_environ(monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any]) -> None:
    """`APPKIT_<FIELD>` for each field: strings as they are, None unsets, others as JSON."""
    for field, value in fields.items():
        variable = f"APPKIT_{field.upper()}"
        if value is None:
            monkeypatch.delenv(variable, raising=False)
        elif isinstance(value, str):
            monkeypatch.setenv(variable, value)
        else:
            monkeypatch.setenv(variable, json.dumps(value))


@pytest.fixture
def appkit_prefix(_appkit_isolation: str) -> str:
    """This test's `APPKIT_REDIS_PREFIX`: keys under `<prefix>:` are deleted after the test."""
    return _appkit_isolation


@pytest.fixture
def appkit_settings(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """`appkit_settings(ratelimit_default="5/60", ...)` sets `APPKIT_*` for this test only."""

    def configure(**fields: Any) -> Settings:
        _set_appkit_environ(monkeypatch, fields)
        get_settings.cache_clear()
        return get_settings()

    return configure


@pytest.fixture
def app(request: pytest.FixtureRequest) -> Any:
    """The service's app, named by `--appkit-app` or the `appkit_app` ini option."""
    found = request.config.stash.get(SERVICE_APP, None)
    if found is not None:
        return found
    target = _app_target(request.config)
    if target is None:
        raise pytest.UsageError("appkit: set `appkit_app` or define an `app` fixture")
    return startup.import_app(target)


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
    """The rate limiter's async client (real Redis when `APPKIT_REDIS_URL` is set).

    Write under `redis_key(...)` / `appkit_prefix`: those keys are deleted after the test.
    """
    from appkit_runtime.redis_pools import close_redis_connections
    from appkit_runtime.settings import get_async_redis_instance

    yield get_async_redis_instance("ratelimit")
    await close_redis_connections()


@pytest_asyncio.fixture
async def db_session(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """An `AsyncSession` in the test's transaction, which the app's sessions share.

    Its commits are savepoints: the app sees its rows, and the rollback after the test
    removes them. With `appkit_transactional_db` it commits for real.
    """
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.pool import NullPool

    from appkit_runtime.db import database_url, get_sessionmaker, make_engine
    from appkit_runtime.testing.transaction import shared_transaction

    if TEST_DATABASE not in request.config.stash:
        # Outside a service's suite: a transaction of its own on the configured database.
        async with shared_transaction(), get_sessionmaker()() as session:
            yield session
    elif "appkit_transactional_db" in request.fixturenames:
        # Its own engine: the app's lifespan disposes the shared ones while this one may be out.
        engine = make_engine(database_url(), poolclass=NullPool)
        async with AsyncSession(engine, expire_on_commit=False) as session:
            yield session
        await engine.dispose()
    else:
        async with get_sessionmaker()() as session:
            yield session
