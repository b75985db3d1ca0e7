"""One transaction per test, shared by the app's sessions and `db_session`, rolled back after.

The app's session dependency joins it through savepoints, so its commits are seen by the test
and vanish with the rollback. SQLite takes no second writer lock: there is one connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker
from sqlalchemy.pool import NullPool

from appkit_runtime.db import bind_sessions, database_url, dispose_engines, get_engine, make_engine

# Alembic's bookkeeping survives a truncation: the schema is still at head.
KEPT_TABLES = frozenset({"alembic_version"})


@asynccontextmanager
async def shared_transaction(name: str = "default") -> AsyncIterator[AsyncConnection]:
    """A connection in a transaction that every session on database `name` joins, then undone."""
    # A pool of its own that closes the connection at once: the app's lifespan disposes the
    # cached engines while this connection is still out.
    engine = make_engine(database_url(name), poolclass=NullPool)
    async with engine.connect() as connection:
        transaction = await connection.begin()
        maker = async_sessionmaker(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        bind_sessions(name, maker)
        try:
            yield connection
        finally:
            bind_sessions(name, None)
            if transaction.is_active:
                await transaction.rollback()
    await engine.dispose()
    await dispose_engines()


async def truncate_tables(name: str = "default") -> None:
    """Empty every table but Alembic's, after a test that committed for real."""
    engine = get_engine(name)
    async with engine.begin() as connection:
        tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        doomed = [table for table in tables if table not in KEPT_TABLES]
        if doomed and engine.dialect.name == "postgresql":
            quoted = ", ".join(f'"{table}"' for table in doomed)
            await connection.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
        elif doomed:
            for table in doomed:
                await connection.execute(text(f'DELETE FROM "{table}"'))
    await dispose_engines()
