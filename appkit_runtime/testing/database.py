"""The test database: derived from the configured one, built from the migrations, dropped after.

The database `APPKIT_DATABASE_URL` names is never opened. PostgreSQL gets `<name>_test`
(`<name>_test_gw0`… per xdist worker) on the same server, created and dropped here; SQLite a
file per worker in a temporary folder. The schema comes from the service's Alembic migrations,
or `create_all` of its models when it has none.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL, make_url


@dataclass(frozen=True)
class TestDatabase:
    """Where this test process's database lives, and how the run treats it."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    url: URL
    reuse: bool

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @property
    def text(self) -> str:
        return self.url.render_as_string(hide_password=False)


def derive_test_database(
    configured: str, worker: str | None, root: Path, reuse: bool
) -> TestDatabase:
    """The test database of `configured` for this worker: `<name>_test[_<worker>]`."""
    url = make_url(configured)
    suffix = f"_test_{worker}" if worker else "_test"
    if url.get_backend_name() == "sqlite":
        stem = Path(url.database).stem if url.database and url.database != ":memory:" else "memory"
        # One folder per project, the same every run, so --appkit-reuse-db finds the file again.
        digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
        folder = Path(tempfile.gettempdir()) / f"appkit-tests-{digest}"
        folder.mkdir(parents=True, exist_ok=True)
        return TestDatabase(url.set(database=str(folder / f"{stem}{suffix}.db")), reuse)
    return TestDatabase(url.set(database=f"{url.database or 'postgres'}{suffix}"), reuse)


def create_test_database(database: TestDatabase, recreate: bool) -> bool:
    """Make the database exist, empty unless reused; True when it was (re)made."""
    if database.is_sqlite:
        path = Path(str(database.url.database))
        if path.exists() and database.reuse and not recreate:
            return False
        _remove_sqlite(path)
        # WAL: a test's open read transaction never blocks the app's commit (transactional tests).
        with contextlib.closing(sqlite3.connect(path)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
        return True
    return asyncio.run(_create_postgres(database, recreate))


def drop_test_database(database: TestDatabase) -> None:
    """Remove the database the run made (kept with `--appkit-reuse-db`)."""
    if database.reuse:
        return
    if database.is_sqlite:
        _remove_sqlite(Path(str(database.url.database)))
        return
    asyncio.run(_drop_postgres(database))


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


async def _create_postgres(database: TestDatabase, recreate: bool) -> bool:
    name = str(database.url.database)
    connection = await admin_connection(database.url)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists and database.reuse and not recreate:
            return False
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    except Exception as error:
        raise pytest.UsageError(
            f"appkit: cannot create the test database {name!r}: {_line(error)}"
        ) from None
    finally:
        await connection.close()
    return True


async def _drop_postgres(database: TestDatabase) -> None:
    connection = await admin_connection(database.url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{database.url.database}" WITH (FORCE)')
    finally:
        await connection.close()


def check_postgres(url: URL) -> None:
    """The server answers and lets this user in (one line otherwise)."""

    async def connect_and_close() -> None:
        await (await admin_connection(url)).close()

    asyncio.run(connect_and_close())


async def admin_connection(url: URL) -> Any:
    """An asyncpg connection to the server's `postgres` database (else `template1`).

    Raises `pytest.UsageError` with one line when the server does not answer or refuses.
    """
    import asyncpg

    where = f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432}"
    for name in ("postgres", "template1"):
        dsn = url.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
        try:
            return await asyncpg.connect(dsn, timeout=5)
        except asyncpg.InvalidCatalogNameError:
            continue
        except (OSError, TimeoutError) as error:
            raise pytest.UsageError(f"appkit: {where} does not answer: {_line(error)}") from None
        except Exception as error:
            raise pytest.UsageError(
                f"appkit: {where} refuses the connection: {_line(error)}"
            ) from None
    raise pytest.UsageError(f"appkit: {where} has neither a `postgres` nor a `template1` database")


def _line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def build_schema(root: Path) -> None:
    """Run the service's migrations to head (`alembic.ini` at `root`), else `create_all`."""
    ini = root / "alembic.ini"
    try:
        if ini.exists():
            _upgrade_to_head(ini)
        else:
            asyncio.run(_create_all())
    except pytest.UsageError:
        raise
    except Exception as error:
        how = "alembic upgrade head" if ini.exists() else "create_all"
        raise pytest.UsageError(
            f"appkit: building the test database ({how}) failed: {_line(error)}"
        ) from None


def _upgrade_to_head(ini: Path) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(ini))
    _ = config.file_config  # read the file now (paths resolve against it) …
    config.config_file_name = None  # … and keep env.py from reconfiguring pytest's logging
    command.upgrade(config, "head")


async def _create_all() -> None:
    from sqlalchemy.orm import DeclarativeBase

    from appkit_runtime.db import dispose_engines, get_engine

    try:
        async with get_engine().begin() as connection:
            for base in DeclarativeBase.__subclasses__():
                await connection.run_sync(base.metadata.create_all)
    finally:
        await dispose_engines()
