"""The schema check behind `/readyz`: the migrations' heads against the database's revision."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from appkit_runtime import schema
from appkit_runtime.db import dispose_engines, get_engine
from tests.helpers import build_file_tree

REVISION = """revision = "{rev}"
down_revision = {down}
branch_labels = None
depends_on = None
"""


@pytest.fixture
def migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `alembic.ini` in the working directory, migrations 0001 then 0002, and a SQLite file."""
    build_file_tree(
        {
            tmp_path / "alembic.ini": "[alembic]\nscript_location = %(here)s/migrations\n",
            tmp_path / "migrations" / "script.py.mako": "",
            tmp_path / "migrations" / "versions" / "0001_first.py": REVISION.format(
                rev="0001", down="None"
            ),
            tmp_path / "migrations" / "versions" / "0002_second.py": REVISION.format(
                rev="0002", down='"0001"'
            ),
        },
        dedent=False,
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APPKIT_DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    return tmp_path


async def stamp(revision: str) -> None:
    async with get_engine().begin() as connection:
        await connection.execute(
            text("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32))")
        )
        await connection.execute(text("DELETE FROM alembic_version"))
        await connection.execute(text(f"INSERT INTO alembic_version VALUES ('{revision}')"))


@pytest.mark.usefixtures("migrations")
async def test_the_check_names_both_revisions_until_the_database_reaches_the_head(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(schema, "CACHE_SECONDS", 3600.0)
    check = schema.schema_check(("default",), "production")
    assert check is not None and check.heads == ("0002",)
    try:
        assert await check() == "schema behind: base != 0002"
        await stamp("0001")
        # Cached: the database is asked again only after CACHE_SECONDS.
        assert await check() == "schema behind: base != 0002"
        monkeypatch.setattr(schema, "CACHE_SECONDS", 0.0)
        assert await check() == "schema behind: 0001 != 0002"
        await stamp("0002")
        assert await check() == "ok"
    finally:
        await dispose_engines()


@pytest.mark.usefixtures("migrations")
@pytest.mark.parametrize(
    ("databases", "env"), [(("default",), "test"), ((), "production"), (("other",), "development")]
)
def test_tests_and_services_without_the_default_database_skip_it(
    databases: tuple[str, ...], env: str
) -> None:
    assert schema.schema_check(databases, env) is None


def test_a_service_without_migrations_skips_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    assert schema.schema_check(("default",), "production") is None


def test_migrations_it_cannot_read_are_logged_in_one_line_and_skipped(
    migrations: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (migrations / "migrations" / "versions" / "0003_broken.py").write_text("revision = (\n")

    assert schema.schema_check(("default",), "production") is None
    assert len(caplog.records) == 1
    assert (
        caplog.records[0]
        .getMessage()
        .startswith("cannot read the migrations in alembic.ini, /readyz skips them: ")
    )


def test_reading_the_heads_logs_nothing_at_info(migrations: Path) -> None:
    # A fresh interpreter: alembic announces its plugins only on its first import.
    program = (
        "import logging; logging.basicConfig(level=logging.INFO)\n"
        "from appkit_runtime.schema import migration_heads\n"
        "print(migration_heads())\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", program], cwd=migrations, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "('0002',)\n"
    assert ran.stderr == ""
