"""The reference's "Async Redis", "Connection Pooling", "FastAPI Lifespan Management" and
"SQLAlchemy Async" snippets, as written, with `application_kit` renamed `appkit_runtime`."""

from __future__ import annotations

import pytest
from sqlalchemy import Integer
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from appkit_runtime.redis_pools import close_redis_connections
from tests.conftest import POSTGRES_URL


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "appkit_reference_items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


@pytest.mark.usefixtures("real_redis")
async def test_async_redis() -> None:
    from appkit_runtime.settings import get_async_redis_instance

    redis = get_async_redis_instance("ratelimit")
    value = await redis.get("my_key")
    await redis.set("my_key", "value")

    assert await redis.get("my_key") == b"value"
    await redis.delete("my_key")
    assert value in (None, b"value")
    await close_redis_connections()


@pytest.mark.usefixtures("real_redis")
async def test_connection_pooling() -> None:
    from appkit_runtime.settings import get_async_redis_instance

    # First call - creates connection pool
    redis1 = get_async_redis_instance("ratelimit")

    # Second call - reuses connection pool
    redis2 = get_async_redis_instance("ratelimit")

    # Different dependency - new pool
    redis3 = get_async_redis_instance("authentication_cache")

    assert redis1.connection_pool is redis2.connection_pool
    assert redis3.connection_pool is not redis1.connection_pool


@pytest.mark.usefixtures("real_redis")
async def test_fastapi_lifespan_management(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("APPKIT_DATABASE_URL", f"sqlite:///{tmp_path}/db.sqlite")
    from contextlib import asynccontextmanager
    from typing import AsyncGenerator  # noqa: UP035 (the reference's own import)

    from fastapi import FastAPI

    from appkit_runtime.fastapi.fastapi import get_fastapi_app
    from appkit_runtime.settings import get_async_redis_instance

    started = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncGenerator[None, None]:
        # Startup: initialize connections
        redis = get_async_redis_instance("cache")
        await redis.ping()  # Verify connection
        started.append(True)

        yield  # Application runs

        # Shutdown: cleanup (Redis pools managed by appkit_runtime)

    app = get_fastapi_app("myservice", lifespan=lifespan)

    from asgi_lifespan import LifespanManager

    async with LifespanManager(app):
        assert started == [True]


@pytest.mark.postgres
async def test_sqlalchemy_async(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPKIT_DATABASE_URL", POSTGRES_URL.replace("postgres@", "postgres:pw@"))
    from fastapi import APIRouter, Depends
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

    from appkit_runtime.settings import get_database_url

    router = APIRouter()

    def get_async_engine():
        db_url = get_database_url("default")
        if db_url is None:
            raise RuntimeError("Database not configured")
        # Use asyncpg driver for async PostgreSQL
        async_url = f"postgresql+asyncpg://{db_url.user}:{db_url.password}@{db_url.host}:{db_url.port}/{db_url.name}"
        return create_async_engine(async_url, pool_pre_ping=True)

    engine = get_async_engine()
    AsyncSessionLocal = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)

    async def get_session():
        async with AsyncSessionLocal() as session:
            yield session

    @router.get("/items")
    async def list_items(session: AsyncSession = Depends(get_session)):
        result = await session.execute(select(Item))
        return result.scalars().all()

    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.run_sync(Base.metadata.create_all)
        await connection.execute(Item.__table__.insert(), [{"id": 1}, {"id": 2}])
    try:
        session_source = get_session()
        session = await anext(session_source)
        assert [item.id for item in await list_items(session)] == [1, 2]
        await session_source.aclose()
    finally:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.drop_all)
        await engine.dispose()
