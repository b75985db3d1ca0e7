from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Integer, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from appkit_runtime.db import dispose_engines, get_engine, get_session, get_sessionmaker
from appkit_runtime.settings import get_settings
from tests.conftest import POSTGRES_URL


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "appkit_test_notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(String(50))


@pytest.fixture
async def notes_table(database_url: str):
    await _create_notes_table()
    yield
    async with get_engine().begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
    await dispose_engines()


async def _texts() -> list[str]:
    async with get_sessionmaker()() as session:
        return list((await session.scalars(select(Note.text).order_by(Note.id))).all())


async def test_driver_follows_the_url(database_url: str) -> None:
    expected = "aiosqlite" if database_url.startswith("sqlite") else "asyncpg"
    assert get_engine().dialect.driver == expected
    await dispose_engines()


@pytest.mark.usefixtures("notes_table")
async def test_session_commits_when_the_endpoint_succeeds() -> None:
    dependency = get_session()
    session: AsyncSession = await anext(dependency)
    session.add(Note(text="kept"))
    with pytest.raises(StopAsyncIteration):
        await anext(dependency)
    assert await _texts() == ["kept"]


@pytest.mark.usefixtures("notes_table")
async def test_session_rolls_back_when_the_endpoint_raises() -> None:
    dependency = get_session()
    session: AsyncSession = await anext(dependency)
    session.add(Note(text="lost"))
    await session.flush()
    with pytest.raises(RuntimeError, match="endpoint failed"):
        await dependency.athrow(RuntimeError("endpoint failed"))
    assert await _texts() == []


def test_db_session_fixture_rolls_back_after_the_test(
    database_url: str, pytester: pytest.Pytester
) -> None:
    asyncio.run(_create_notes_table())
    pytester.makepyfile(
        """
        from sqlalchemy import text

        async def test_writes(db_session):
            await db_session.execute(text("INSERT INTO appkit_test_notes (text) VALUES ('t')"))
            await db_session.commit()
            count = await db_session.scalar(text("SELECT count(*) FROM appkit_test_notes"))
            assert count == 1
        """
    )
    pytester.runpytest(
        "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function"
    ).assert_outcomes(passed=1)
    assert asyncio.run(_texts_and_dispose()) == []


async def _create_notes_table() -> None:
    async with get_engine().begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.run_sync(Base.metadata.create_all)
    await dispose_engines()


async def _texts_and_dispose() -> list[str]:
    texts = await _texts()
    await dispose_engines()
    return texts


@pytest.mark.postgres
async def test_the_postgresql_pool_opens_no_more_than_the_settings_allow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APPKIT_DATABASE_URL", POSTGRES_URL)
    monkeypatch.setenv("APPKIT_DATABASE_POOL_SIZE", "2")
    monkeypatch.setenv("APPKIT_DATABASE_MAX_OVERFLOW", "1")
    get_settings.cache_clear()
    engine = get_engine()
    held = [await engine.connect() for _ in range(3)]  # the pool's 2 and 1 overflow
    try:
        with pytest.raises(TimeoutError):  # a fourth waits for one of them
            await asyncio.wait_for(engine.connect(), 0.5)
        await held.pop().close()
        fourth = await asyncio.wait_for(engine.connect(), 5)
        await fourth.close()
    finally:
        for connection in held:
            await connection.close()
        await dispose_engines()
        get_settings.cache_clear()
