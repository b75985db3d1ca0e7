"""Is the database at the migrations' head? Alembic's revisions, compared for `/readyz`.

A service deployed without `alembic upgrade head` answers requests with 500s (no table); its
readiness says so instead. The migrations' heads are read once, at start-up, from the
`alembic.ini` in the working directory (where `alembic upgrade head` runs too); the database's
revision is read again at most every `CACHE_SECONDS`, so an upgrade shows without a restart.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Connection

from appkit_runtime.db import get_engine

logger = logging.getLogger("appkit_runtime")

ALEMBIC_CONFIG = Path("alembic.ini")
CACHE_SECONDS = 2.0


def migration_heads(config_path: Path = ALEMBIC_CONFIG) -> tuple[str, ...]:
    """The head revisions of the service's migrations; none without alembic or `alembic.ini`."""
    if not config_path.is_file():
        return ()
    plugins = logging.getLogger("alembic.runtime.plugins")
    if plugins.level == logging.NOTSET:
        # Alembic announces each of its built-in plugins at INFO when first imported: start-up
        # noise in every worker, so quieten it before the import.
        plugins.setLevel(logging.WARNING)
    try:
        from alembic.config import Config
        from alembic.script import ScriptDirectory
    except ImportError:
        return ()
    script = ScriptDirectory.from_config(Config(str(config_path)))
    return tuple(sorted(script.get_heads()))


def _current_heads(connection: Connection) -> tuple[str, ...]:
    from alembic.runtime.migration import MigrationContext

    return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))


async def database_revisions(name: str = "default") -> tuple[str, ...]:
    """The revisions database `name` is at (none before its first migration)."""
    async with get_engine(name).connect() as connection:
        return await connection.run_sync(_current_heads)


def _shown(revisions: tuple[str, ...]) -> str:
    return ", ".join(revisions) or "base"


@dataclass
class SchemaCheck:
    """`"ok"`, or `"schema behind: <current> != <head>"`, for one database, cached briefly."""

    heads: tuple[str, ...]
    database: str = "default"
    _result: str = field(default="", init=False)
    _checked_at: float = field(default=float("-inf"), init=False)

    async def __call__(self) -> str:
        now = time.monotonic()
        if now - self._checked_at >= CACHE_SECONDS:
            current = await database_revisions(self.database)
            self._result = "ok"
            if current != self.heads:
                self._result = f"schema behind: {_shown(current)} != {_shown(self.heads)}"
            self._checked_at = now
        return self._result


def schema_check(databases: tuple[str, ...], env: str) -> SchemaCheck | None:
    """The check for the default database, or `None`: no migrations, no database, or tests
    (which build their tables from the models, with no revision to compare)."""
    if env == "test" or "default" not in databases:
        return None
    try:
        heads = migration_heads()
    except Exception as error:  # a broken migration must not stop the service from starting
        logger.error("cannot read the migrations in alembic.ini, /readyz skips them: %r", error)
        return None
    return SchemaCheck(heads) if heads else None
