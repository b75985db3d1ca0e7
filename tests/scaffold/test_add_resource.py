"""add-resource in a rendered service: the files it writes pass ruff, migrate on PostgreSQL and
SQLite with `alembic check` clean, and pass their own tests; refusals change no file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL
from tests.helpers import ServiceVenv, passed, service_environ
from tests.scaffold.conftest import Result, tree_hashes
from tests.scaffold.test_add_endpoint import read_only

RUFF = Path(sys.executable).parent / "ruff"
Scaffold = Callable[..., Result]

# One field of every type: `due` nullable, `sku` unique, `qty` indexed, `ref` both.
EVERY_TYPE = [
    "sku:str(40):unique",
    "title:text",
    "qty:int:index",
    "big:bigint",
    "price:float",
    "total:decimal(10,2)",
    "paid:bool",
    "due:date?",
    "at:datetime",
    "ref:uuid:unique:index",
    "meta:json?",
]
SCOPED = ["person", "--plural", "people", "--field", "name:str(80)", "--scoped"]
SCOPED += ["--rate-limit", "5/60"]
# Tests each resource gets: 401 twice, create/read, a seeded row, 404, 422, pages, patch,
# delete, 429, usage, plus 409 for each unique field (orders) or the scopes' 403 (people).
ORDERS_TESTS = 11 + 2
PEOPLE_TESTS = 11 + 1


def add_resources(scaffold: Scaffold, service: Path) -> None:
    fields = [arg for spec in EVERY_TYPE for arg in ("--field", spec)]
    for args in (["order", *fields], SCOPED):
        result = scaffold("add-resource", *args, "--project-dir", service)
        assert result.code == 0, result.err


def run_checked(venv: ServiceVenv, service: Path, env: dict[str, str], *args: str) -> str:
    run = venv.run(*args, cwd=service, env=env, timeout=120)
    assert run.returncode == 0, run.stdout
    return run.stdout


def migrate_round_trip(venv: ServiceVenv, service: Path, env: dict[str, str]) -> None:
    """Upgrade to head, `alembic check` clean, then one step down."""
    run_checked(venv, service, env, "alembic", "upgrade", "head")
    assert "No new upgrade operations detected" in run_checked(
        venv, service, env, "alembic", "check"
    )
    run_checked(venv, service, env, "alembic", "downgrade", "-1")


def resource_tests_passed(output: str) -> dict[str, int]:
    return {
        name: sum(
            1
            for line in output.splitlines()
            if line.startswith(f"tests/test_{name}.py::") and "PASSED" in line
        )
        for name in ("orders", "people")
    }


def postgres_tables(url: str) -> set[str]:
    import asyncpg

    async def names() -> set[str]:
        connection = await asyncpg.connect(url)
        try:
            rows = await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        finally:
            await connection.close()
        return {row["tablename"] for row in rows}

    return asyncio.run(names())


def ruff(service: Path, *args: str) -> None:
    run = subprocess.run([RUFF, *args], cwd=service, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.redis
def test_resources_pass_ruff_migrate_and_pass_their_tests_on_postgresql_and_redis(
    scaffold: Scaffold, service: Path, service_venv: ServiceVenv, postgres_database: str
) -> None:
    add_resources(scaffold, service)
    ruff(service, "check", ".")
    ruff(service, "format", "--check", ".")
    service_venv.install(service)

    migrate_round_trip(service_venv, service, service_environ(database_url=postgres_database))

    assert {"items", "orders"} <= postgres_tables(postgres_database)
    assert "people" not in postgres_tables(postgres_database)
    run_checked(
        service_venv,
        service,
        service_environ(database_url=postgres_database),
        "alembic",
        "downgrade",
        "base",
    )
    environ = service_environ(redis_url=REDIS_URL, database_url=postgres_database)
    run = service_venv.run("pytest", "-v", "-p", "no:cacheprovider", cwd=service, env=environ)
    passed(run)
    assert resource_tests_passed(run.stdout) == {"orders": ORDERS_TESTS, "people": PEOPLE_TESTS}


def test_resources_migrate_on_sqlite_and_pass_their_tests_on_the_embedded_defaults(
    scaffold: Scaffold,
    service_factory: Callable[..., Path],
    service_venv: ServiceVenv,
    tmp_path: Path,
) -> None:
    service = service_factory(package_name="lite", database="sqlite")
    add_resources(scaffold, service)
    ruff(service, "check", ".")
    ruff(service, "format", "--check", ".")
    service_venv.install(service)
    database = tmp_path / "migrated.db"

    migrate_round_trip(service_venv, service, service_environ(database_url=f"sqlite:///{database}"))

    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        tables = {name for (name,) in rows}
    assert {"items", "orders"} <= tables
    assert "people" not in tables
    run = service_venv.run("pytest", "-v", "-p", "no:cacheprovider", cwd=service)
    passed(run)
    assert resource_tests_passed(run.stdout) == {"orders": ORDERS_TESTS, "people": PEOPLE_TESTS}


def test_the_model_and_registration_keep_the_team_s_files_as_they_were(
    scaffold: Scaffold, service_factory: Callable[..., Path]
) -> None:
    bare = service_factory(package_name="bare", include_example=False)
    models = bare / "src" / "bare" / "models.py"
    models.write_text(models.read_text().replace("\n__all__", "\n# Team note: keep.\n__all__"))

    result = scaffold("add-resource", "note", "--field", "body:text", "--project-dir", bare)

    assert result.code == 0, result.err
    text = models.read_text()
    assert text.startswith(
        '"""The service\'s tables, as classes on `Base`; the migrations in `migrations/` follow '
        'them."""\n\nfrom __future__ import annotations\n\nimport datetime\n\n'
        "import sqlalchemy as sa\nfrom sqlalchemy.orm import Mapped, mapped_column\n\n"
        'from bare.db import Base\n\n# Team note: keep.\n__all__ = ["Base", "Note"]\n\n\n'
        "class Note(Base):\n"
    )
    migration = bare / "migrations" / "versions" / "0002_create_notes.py"
    assert 'down_revision: str | None = "0001"' in migration.read_text()
    ruff(bare, "check", ".")
    ruff(bare, "format", "--check", ".")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["order", "--field", "price:money"], "bad field 'price:money': unknown type"),
        (["order", "--field", "id:int"], "id, created_at, updated_at are set by the database"),
        (["order", "--field", "created_at:datetime"], "are set by the database"),
        (["order", "--field", "class:str"], "'class' is a Python keyword"),
        (["order", "--field", "x:str(0)"], "a str length must be 1 to"),
        (["order", "--field", "x:int(4)"], "only str(N) and decimal(P,S) take sizes"),
        (["order", "--field", "x:decimal(2,3)"], "decimal(P,S) needs"),
        (["order", "--field", "x:str:primary"], "unknown modifier 'primary'"),
        (["order", "--field", "x:int:unique:unique"], "'unique' is given twice"),
        (["order", "--field", "x:json:unique"], "a json column cannot be unique"),
        (["order", "--field", "x"], "use name:type"),
        (["order", "--field", "Price:int"], "the name must be up to 30 lowercase"),
        (["order", "--field", "x:int", "--field", "x:str"], "'x': it is given twice"),
        (["order", "--field", "json:str"], "'json' is taken by SQLAlchemy or Pydantic"),
        (["order", "--field", "self:int"], "'self' is taken by SQLAlchemy or Pydantic"),
        (["order"], "give at least one --field"),
        (["Order", "--field", "x:int"], "bad resource name 'Order'"),
        (["class", "--field", "x:int"], "bad resource name 'class': it is a Python keyword"),
        (["session", "--field", "x:int"], "its router module would bind Session twice"),
        (["text", "--field", "x:text"], "its router module would bind Text twice"),
        (["base", "--field", "x:int"], "its model 'Base' is a name src/shop/models.py binds"),
        (["mapped", "--field", "x:int"], "its model 'Mapped' is a name src/shop/models.py binds"),
        (["thing", "--plural", "routers", "--field", "x:int"], "bad endpoint name 'routers'"),
        (["order_out", "--field", "x:int"], "would clash with the schema classes"),
        (["order", "--plural", "order", "--field", "x:int"], "it must differ from the name"),
        (["items", "--field", "x:int"], "'items' ends in s: give the singular (add-resource item"),
        (["order", "--field", "x:int", "--rate-limit", "0/60"], "bad rate limit '0/60'"),
        (["order", "--nope"], "No such option '--nope'"),
    ],
)
def test_bad_usage_exits_2_with_one_line_and_changes_nothing(
    scaffold: Scaffold, service: Path, args: list[str], message: str
) -> None:
    before = tree_hashes(service)

    result = scaffold("add-resource", *args, "--project-dir", service)

    assert result.code == 2
    assert result.err.count("\n") == 1
    assert message in result.err
    assert "Traceback" not in result.err
    assert tree_hashes(service) == before


# Two revisions after 0001: Alembic has two heads until they are merged.
BRANCH = '''"""A branch of the team's."""

revision = "{}"
down_revision = "0001"
'''


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, ["item", "--field", "x:int"], "'Item' is already taken in src/shop/models.py"),
        (None, ["thing", "--plural", "items", "--field", "x:int"], "table 'items' is already"),
        ("router", ["order", "--field", "x:int"], "src/shop/routers/orders.py already exists"),
        ("heads", ["order", "--field", "x:int"], "several Alembic heads (abc123, def456)"),
        ("route", ["order", "--field", "x:int"], "GET /orders is already routed in src/shop/"),
        ("again", ["order", "--field", "x:int"], "'Order' is already taken"),
        ("registry", ["order", "--field", "x:int"], "'orders' is already taken in src/shop/"),
    ],
)
def test_conflicts_exit_1_with_one_line_and_change_nothing(
    scaffold: Scaffold, service: Path, setup: str | None, args: list[str], message: str
) -> None:
    package = service / "src" / "shop"
    if setup == "router":
        (package / "routers" / "orders.py").write_text("# the team's\n")
    elif setup == "heads":
        for revision in ("abc123", "def456"):
            versions = service / "migrations" / "versions"
            (versions / f"{revision}_branch.py").write_text(BRANCH.format(revision))
    elif setup == "route":
        assert (
            scaffold("add-endpoint", "stock", "--path", "/orders", "--project-dir", service).code
            == 0
        )
    elif setup == "again":
        assert scaffold("add-resource", *args, "--project-dir", service).code == 0
    elif setup == "registry":
        added = scaffold("add-endpoint", "orders", "--path", "/o", "--project-dir", service)
        assert added.code == 0
    before = tree_hashes(service)

    result = scaffold("add-resource", *args, "--project-dir", service)

    assert result.code == 1, result.err
    assert result.err.count("\n") == 1
    assert message in result.err
    assert tree_hashes(service) == before


def test_a_write_failing_half_way_puts_back_every_file(scaffold: Scaffold, service: Path) -> None:
    before = tree_hashes(service)

    # The migration and the router module are written first; the tests file cannot be.
    with read_only(service / "tests"):
        result = scaffold("add-resource", "order", "--field", "x:int", "--project-dir", service)

    assert result.code == 1
    assert result.err.count("\n") == 1
    assert "cannot write tests/test_orders.py" in result.err
    assert "no file was changed" in result.err
    assert tree_hashes(service) == before


def test_dry_run_prints_the_files_and_the_diffs_and_writes_nothing(
    scaffold: Scaffold, service: Path
) -> None:
    before = tree_hashes(service)

    result = scaffold(
        "add-resource", "order", "--field", "sku:str:unique", "--dry-run", "--project-dir", service
    )

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith("would write migrations/versions/0002_create_orders.py (new, ")
    assert lines[1].startswith("would write src/shop/routers/orders.py (new, ")
    assert lines[2].startswith("would write tests/test_orders.py (new, ")
    assert "--- a/src/shop/models.py" in lines
    assert "+class Order(Base):" in lines
    assert "+    sku: Mapped[str] = mapped_column(sa.String(length=255), unique=True)" in lines
    assert "+from shop.routers import items, orders" in lines
    assert lines[-1] == "dry run: no file was written"
    assert tree_hashes(service) == before


def test_help_shows_the_field_syntax_and_examples(scaffold: Scaffold) -> None:
    result = scaffold("add-resource", "--help")

    assert result.code == 0
    assert "name:type[?][:unique][:index]" in result.out
    assert "appkit-scaffold add-resource order --field" in result.out


def test_scoped_routes_ask_for_the_read_and_write_scopes(scaffold: Scaffold, service: Path) -> None:
    assert scaffold("add-resource", *SCOPED, "--project-dir", service).code == 0

    router = (service / "src" / "shop" / "routers" / "people.py").read_text()

    assert router.count('protected(scopes=("people:read",), max_requests=5, expiry=60)') == 2
    assert router.count('protected(scopes=("people:write",), max_requests=5, expiry=60)') == 3
    assert json.dumps("/people/{person_id}") in router


def test_the_longest_names_and_sizes_still_pass_ruff(scaffold: Scaffold, service: Path) -> None:
    # 30-character names, the largest sizes and limits: every line still fits ruff's 100.
    field = "abcdefghij_abcdefghij_abcdefgh"
    long_resource = [
        "abcdefghij_abcdefghi",
        *("--field", f"{field}:decimal(1000,999)?:unique:index"),
        *("--field", f"y{field[1:]}:str(10485760)?:unique"),
        *("--field", f"x{field[1:]}:uuid:index"),
        *("--field", f"w{field[1:]}:decimal(3,3)"),
        *("--scoped", "--rate-limit", "1000000/1000000"),
    ]
    for args in (long_resource, ["p", "--field", f"{field}:bool:index"]):
        result = scaffold("add-resource", *args, "--project-dir", service)
        assert result.code == 0, result.err

    ruff(service, "check", ".")
    ruff(service, "format", "--check", ".")


@pytest.mark.parametrize(
    ("name", "table"),
    [
        ("item", "items"),
        ("box", "boxes"),
        ("address", "addresses"),
        ("status", "statuses"),
        ("category", "categories"),
        ("day", "days"),
        ("order_batch", "order_batches"),
    ],
)
def test_the_default_plural_follows_regular_english(name: str, table: str) -> None:
    from scaffold.resource import english_plural

    assert english_plural(name) == table
