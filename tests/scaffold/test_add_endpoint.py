"""add-endpoint in a rendered service: the files it writes work at once, and it refuses
anything in the way with one line, leaving every file as it was."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL
from tests.helpers import ServiceVenv, passed, service_environ
from tests.scaffold.conftest import Result, tree_hashes

RUFF = Path(sys.executable).parent / "ruff"
Scaffold = Callable[..., Result]

# What a team put in its registry: every comment and blank line must survive the edits.
USER_REGISTRY = '''"""The router registry."""

from __future__ import annotations

from fastapi import APIRouter

from shop.routers import items

# Team note: routers are included in this order.

# Keep the public ones last.
routers: list[APIRouter] = [
    items.router,  # the example
]
'''


def ruff(service: Path, *args: str) -> None:
    run = subprocess.run([RUFF, *args], cwd=service, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.redis
def test_added_endpoints_pass_ruff_and_the_service_suite_on_real_servers(
    scaffold: Scaffold, service: Path, service_venv: ServiceVenv, postgres_database: str
) -> None:
    registry = service / "src" / "shop" / "routers" / "__init__.py"
    registry.write_text(USER_REGISTRY)

    # A POST, a GET with a path parameter, its own limit and a scope, a GET with a limit of a
    # million, a public GET.
    for args in (
        ["orders", "--method", "post"],
        ["order", "--path", "/orders/{order_id}", "--rate-limit", "4/60", "--scopes", "o:read"],
        ["reports", "--rate-limit", "1000000/60"],
        ["status", "--method", "GET", "--public"],
    ):
        result = scaffold("add-endpoint", *args, "--project-dir", service)
        assert result.code == 0, result.err
        assert f"added {args[0]}:" in result.out

    # The user's comments and blank lines are where they were; the routers are appended.
    text = registry.read_text()
    assert text == USER_REGISTRY.replace(
        "from shop.routers import items\n",
        "from shop.routers import items, order, orders, reports, status\n",
    ).replace(
        "    items.router,  # the example\n",
        "    items.router,  # the example\n    orders.router,\n    order.router,\n"
        "    reports.router,\n    status.router,\n",
    )
    order = (service / "src" / "shop" / "routers" / "order.py").read_text()
    assert 'protected(scopes=("o:read",), max_requests=4, expiry=60)' in order
    assert "protected" not in (service / "src" / "shop" / "routers" / "status.py").read_text()
    ruff(service, "check", ".")
    ruff(service, "format", "--check", ".")

    service_venv.install(service)
    environ = service_environ(redis_url=REDIS_URL, database_url=postgres_database)
    run = service_venv.run("pytest", "-p", "no:cacheprovider", cwd=service, env=environ)

    # 14 of the template, 4 for each protected endpoint (401 twice, 200, 429), 1 public.
    assert passed(run) == 14 + 3 * 4 + 1


def test_a_route_limit_of_a_million_is_tested_with_two_requests(
    scaffold: Scaffold, service_factory: Callable[..., Path], service_venv: ServiceVenv
) -> None:
    bare = service_factory(package_name="bulk", include_example=False)

    result = scaffold("add-endpoint", "bulk", "--rate-limit", "1000000/60", "--project-dir", bare)

    # All but one of the million are counted by the route's limiter in one call; the test then
    # makes the last allowed request and the refused one, and still checks q=1000000.
    assert result.code == 0, result.err
    tests = (bare / "tests" / "test_bulk.py").read_text()
    assert 'await ratelimit_spend("org", "project", route, "1000000/60", 999999) == 1' in tests
    assert "for _ in range(2)]" in tests
    assert "assert statuses == [200, 429]\n" in tests
    assert "'\"default\";q=1000000;w=60'" in tests
    ruff(bare, "check", ".")
    ruff(bare, "format", "--check", ".")
    service_venv.install(bare)
    run = service_venv.run("pytest", "-p", "no:cacheprovider", cwd=bare)
    # 3 of the template's health tests and the endpoint's 4, on the embedded defaults.
    assert passed(run) == 3 + 4


def test_the_longest_name_and_path_it_takes_stay_ruff_clean(
    scaffold: Scaffold, service: Path
) -> None:
    name, path = "n" * 39, "/" + "/".join(["segment"] * 6) + "/{order_id}/{item_id}/" + "x" * 9

    for suffix, args in (("g", []), ("d", ["--method", "delete"]), ("p", ["--public"])):
        result = scaffold(
            "add-endpoint", name + suffix, "--path", path + suffix, *args, "--project-dir", service
        )
        assert result.code == 0, result.err

    assert len(name + "g") == 40 and len(path + "g") == 80
    ruff(service, "check", ".")
    ruff(service, "format", "--check", ".")


def test_a_bare_service_gets_its_first_router(
    scaffold: Scaffold, service_factory: Callable[..., Path]
) -> None:
    bare = service_factory(package_name="bare", include_example=False)

    assert scaffold("add-endpoint", "ping", "--public", "--project-dir", bare).code == 0

    registry = (bare / "src" / "bare" / "routers" / "__init__.py").read_text()
    assert (
        "\nfrom bare.routers import ping\n\nrouters: list[APIRouter] = [\n    ping.router,\n]\n"
        in (registry)
    )
    ruff(bare, "check", ".")
    ruff(bare, "format", "--check", ".")


def test_it_finds_the_service_from_a_folder_inside_it(
    scaffold: Scaffold, service: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(service / "src" / "shop")

    result = scaffold("add-endpoint", "orders", "--method", "DELETE", "--path", "/orders/{id}")

    assert result.code == 0, result.err
    assert "DELETE /orders/{id} (protected)" in result.out
    assert (service / "tests" / "test_orders.py").is_file()


def test_repeating_an_endpoint_exits_1_with_one_line_and_changes_nothing(
    scaffold: Scaffold, service: Path
) -> None:
    assert scaffold("add-endpoint", "orders", "--project-dir", service).code == 0
    before = tree_hashes(service)

    result = scaffold("add-endpoint", "orders", "--project-dir", service)

    assert result.code == 1
    assert result.out == ""
    assert result.err.count("\n") == 1
    assert "'orders' is already taken in src/shop/routers/__init__.py" in result.err
    assert tree_hashes(service) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bad-name!"], "bad endpoint name 'bad-name!'"),
        (["class"], "bad endpoint name 'class': it is a Python keyword"),
        (["__init__"], "bad endpoint name '__init__'"),
        (["orders", "--path", "orders"], "bad path 'orders': it must start with /"),
        (["orders", "--path", "/orders/{order-id}"], "bad path parameter {order-id}"),
        (["orders", "--path", "/a b"], "bad path '/a b'"),
        (["orders", "--path", "/a/{x}/{x}"], "a parameter appears twice"),
        (["orders", "--rate-limit", "0/60"], "bad rate limit '0/60'"),
        (["orders", "--rate-limit", "2147483648/60"], "bad rate limit '2147483648/60'"),
        (["orders", "--rate-limit", "10/99999999999"], "bad rate limit '10/99999999999'"),
        (["orders", "--scopes", "a b"], "bad scope 'a b'"),
        (["orders", "--scopes", ""], "bad scopes '': an empty scope"),
        (["orders", "--scopes", "a,,b"], "bad scopes 'a,,b': an empty scope"),
        (["orders", "--public", "--rate-limit", "5/60"], "need a protected endpoint"),
        (["orders", "--method", "FETCH"], "Invalid value for '--method'"),
        (["orders", "--nope"], "No such option '--nope'"),
        (["n" * 41], "41 characters, at most 40"),
        (["orders", "--path", "/p" * 40 + "/"], "81 characters, at most 80"),
        ([], "Missing argument 'NAME'"),
    ],
)
def test_bad_usage_exits_2_with_one_line_and_changes_nothing(
    scaffold: Scaffold, service: Path, args: list[str], message: str
) -> None:
    before = tree_hashes(service)

    result = scaffold("add-endpoint", *args, "--project-dir", service)

    assert result.code == 2
    assert result.err.count("\n") == 1
    assert message in result.err
    assert "Traceback" not in result.err
    assert tree_hashes(service) == before


def test_outside_a_service_exits_2_naming_the_answers_file(
    scaffold: Scaffold, tmp_path: Path
) -> None:
    result = scaffold("add-endpoint", "orders", "--project-dir", tmp_path)

    assert result.code == 2
    assert result.err.count("\n") == 1
    assert f"no .copier-answers.yml in {tmp_path}" in result.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["listing", "--path", "/items"],
            "GET /items is already routed in src/shop/routers/items.py",
        ),
        (
            ["one", "--path", "/items/{id}"],
            "GET /items/{id} is already routed in src/shop/routers/",
        ),
        (["healthcheck", "--path", "/healthz"], "GET /healthz is already routed in the runtime"),
        (["items"], "'items' is already taken in src/shop/routers/__init__.py"),
        (["health"], "tests/test_health.py already exists"),
    ],
)
def test_conflicts_exit_1_with_one_line_and_change_nothing(
    scaffold: Scaffold, service: Path, args: list[str], message: str
) -> None:
    before = tree_hashes(service)

    result = scaffold("add-endpoint", *args, "--project-dir", service)

    assert result.code == 1
    assert result.err.count("\n") == 1
    assert message in result.err
    assert tree_hashes(service) == before


def bound_names(source: str) -> set[str]:
    """The top-level names a module binds."""
    names: set[str] = set()
    for statement in ast.parse(source).body:
        if isinstance(statement, ast.Import | ast.ImportFrom):
            names.update(alias.asname or alias.name for alias in statement.names)
        elif isinstance(statement, ast.Assign | ast.AnnAssign):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            names.update(target.id for target in targets if isinstance(target, ast.Name))
        elif isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(statement.name)
    return names


def test_every_name_the_registry_or_a_router_module_binds_exits_2_and_changes_nothing(
    scaffold: Scaffold, service: Path
) -> None:
    # The names come from the files themselves: the registry and a router module as written.
    routers = service / "src" / "shop" / "routers"
    assert scaffold("add-endpoint", "orders", "--project-dir", service).code == 0
    registered = {"items", "orders"}
    bound = bound_names((routers / "__init__.py").read_text()) - registered
    bound |= bound_names((routers / "orders.py").read_text()) - {"orders"}
    assert {"router", "APIRouter", "routers", "protected", "annotations"} <= bound
    before = tree_hashes(service)

    for name in sorted(bound):
        result = scaffold("add-endpoint", name, "--project-dir", service)

        assert result.code == 2, (name, result.err)
        assert result.err.count("\n") == 1
        assert f"bad endpoint name {name!r}" in result.err
        assert tree_hashes(service) == before


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """No file can be made in `folder`: immutable for root (who ignores modes), else 0o555."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", folder], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", folder], check=True)
    else:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)


def test_a_write_failing_half_way_puts_back_every_file(scaffold: Scaffold, service: Path) -> None:
    before = tree_hashes(service)

    # The router module is written first; the tests file cannot be.
    with read_only(service / "tests"):
        result = scaffold("add-endpoint", "orders", "--project-dir", service)

    assert result.code == 1
    assert result.err.count("\n") == 1
    assert "cannot write tests/test_orders.py" in result.err
    assert "no file was changed" in result.err
    assert tree_hashes(service) == before


def test_dry_run_prints_the_files_and_the_registry_diff_and_writes_nothing(
    scaffold: Scaffold, service: Path
) -> None:
    before = tree_hashes(service)

    result = scaffold(
        "add-endpoint", "orders", "--method", "post", "--dry-run", "--project-dir", service
    )

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith("would write src/shop/routers/orders.py (new, ")
    assert lines[1].startswith("would write tests/test_orders.py (new, ")
    assert "--- a/src/shop/routers/__init__.py" in lines
    assert "-from shop.routers import items" in lines
    assert "+from shop.routers import items, orders" in lines
    assert "+    orders.router," in lines
    assert lines[-1] == "dry run: no file was written"
    assert tree_hashes(service) == before


def test_help_shows_an_example_for_every_command(scaffold: Scaffold) -> None:
    top = scaffold("--help")
    assert top.code == 0
    for command in ("add-endpoint", "new", "check", "upgrade"):
        assert f"appkit-scaffold {command}" in top.out
        result = scaffold(command, "--help")
        assert result.code == 0
        assert "Example" in result.out
        assert f"appkit-scaffold {command}" in result.out.split("Example", 1)[1]


@pytest.mark.parametrize(
    ("name", "path"), [("health_check", "/health-check"), ("_private", "/private"), ("x_", "/x")]
)
def test_the_default_path_is_the_name_with_dashes_and_no_edge_underscores(
    name: str, path: str
) -> None:
    from scaffold.endpoint import Endpoint

    assert Endpoint(name).route_path == path
