"""Async SQLAlchemy engines and sessions, one per database name and per running event loop.

`postgresql://` URLs get asyncpg and `sqlite://` URLs aiosqlite; the "default" database falls
back to the embedded `sqlite+aiosqlite:///./<service>.db` when `APPKIT_DATABASE_URL` is unset.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from appkit_runtime.errors import AppkitError, ConfigurationError, DatabaseUnavailable
from appkit_runtime.loop_cache import LoopCache
from appkit_runtime.settings import async_database_url, get_settings

_engines: LoopCache[AsyncEngine] = LoopCache()
_sessionmakers: LoopCache[async_sessionmaker[AsyncSession]] = LoopCache()
# Set by the pytest plugin: the app's sessions join the test's own transaction.
_bound_sessionmakers: dict[str, async_sessionmaker[AsyncSession]] = {}


def database_url(name: str = "default") -> str:
    """The async URL of database `name`; only "default" has an embedded fallback."""
    settings = get_settings()
    url, variable = settings.database_url_for(name)
    if url is None:
        if name != "default":
            raise ConfigurationError(f"{variable}: not set, and database {name!r} is used")
        url = settings.embedded_database_url
    return async_database_url(url)


def make_engine(url: str, **options: Any) -> AsyncEngine:
    """A new engine for `url` (outside the per-loop cache), SQLite set up for savepoints."""
    if not url.startswith("sqlite"):
        return create_async_engine(url, pool_pre_ping=True, **options)
    # SQLite serialises writers: wait for the lock instead of failing at once.
    engine = create_async_engine(url, connect_args={"timeout": 30}, **options)
    # pysqlite's own transaction handling breaks SAVEPOINT (which rolled-back test sessions
    # rely on): let SQLAlchemy emit BEGIN itself, as its SQLite documentation recommends.
    event.listen(engine.sync_engine, "connect", _sqlite_autocommit_driver)
    event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def _sqlite_autocommit_driver(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")


def get_engine(name: str = "default") -> AsyncEngine:
    """The engine of database `name` for the running loop, made on first use; a PostgreSQL
    pool sized by `APPKIT_DATABASE_POOL_SIZE` and `APPKIT_DATABASE_MAX_OVERFLOW`."""
    url = database_url(name)
    return _engines.get(f"{name}\n{url}", lambda: make_engine(url, **_pool_options(url)))


def _pool_options(url: str) -> dict[str, int]:
    # SQLite's pools (one file, or one connection for :memory:) take no size.
    if url.startswith("sqlite"):
        return {}
    settings = get_settings()
    return {
        "pool_size": settings.database_pool_size,
        "max_overflow": settings.database_max_overflow,
    }


def get_sessionmaker(name: str = "default") -> async_sessionmaker[AsyncSession]:
    """The `async_sessionmaker` bound to `get_engine(name)` (or the one `bind_sessions` set)."""
    bound = _bound_sessionmakers.get(name)
    if bound is not None:
        return bound
    url = database_url(name)
    return _sessionmakers.get(
        f"{name}\n{url}", lambda: async_sessionmaker(get_engine(name), expire_on_commit=False)
    )


def bind_sessions(name: str, maker: async_sessionmaker[AsyncSession] | None) -> None:
    """Make `get_sessionmaker(name)` return `maker` until called again with None.

    Tests bind the app's sessions to one connection whose transaction they roll back.
    """
    if maker is None:
        _bound_sessionmakers.pop(name, None)
    else:
        _bound_sessionmakers[name] = maker


def session_dependency(name: str = "default") -> Callable[[], AsyncIterator[AsyncSession]]:
    """A FastAPI dependency yielding a session on `name`: commit on success, else roll back."""

    async def dependency() -> AsyncIterator[AsyncSession]:
        async with get_sessionmaker(name)() as session:
            try:
                yield session
            except BaseException as error:
                await _rollback_quietly(session)
                if _is_unreachable(error):
                    raise DatabaseUnavailable(
                        f"database {name!r}: {type(error).__name__}"
                    ) from error
                raise
            try:
                await session.commit()
            except (ConnectionError, TimeoutError, socket.gaierror) as error:
                raise DatabaseUnavailable(f"database {name!r}: {type(error).__name__}") from error

    dependency.__name__ = f"get_session_{name}"
    dependency.__doc__ = f"A session on database {name!r}, committed after the endpoint."
    return dependency


def _is_unreachable(error: BaseException) -> bool:
    """A connection failure of the database driver, as opposed to the endpoint's own error.

    asyncpg raises a refused connection or a time-out as a bare builtin, unwrapped by
    SQLAlchemy; the runtime's own errors (a Redis `StorageError`) are not the database's.
    """
    unreachable = isinstance(error, ConnectionError | TimeoutError | socket.gaierror)
    return unreachable and not isinstance(error, AppkitError)


def _unavailable(name: str, error: BaseException) -> DatabaseUnavailable:
    return DatabaseUnavailable(f"database {name!r} unavailable: {type(error).__name__}")


async def _rollback_quietly(session: AsyncSession) -> None:
    """Roll back; a database that is gone cannot roll back, and that must not hide why."""
    try:
        await session.rollback()
    except (ConnectionError, TimeoutError, OSError):
        pass


get_session = session_dependency("default")
"""The FastAPI dependency for a session on the `default` database, committed after the endpoint."""
get_session.__name__ = "get_session"


async def ping_database(name: str = "default") -> None:
    """Run `SELECT 1` on database `name`; raises when it does not answer."""
    async with get_engine(name).connect() as connection:
        await connection.execute(text("SELECT 1"))


async def dispose_engines() -> None:
    """Close every engine of the running loop; later calls make new ones."""
    _sessionmakers.pop_current()
    for engine in _engines.pop_current().values():
        await engine.dispose()
