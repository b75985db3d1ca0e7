"""Every answer renders a service that installs, lints, imports and passes its own tests, or
Copier refuses it with one line naming the answer and why.

The accepted answers are rendered and installed together, once, into the session's
`service_venv` (one pip run); each then runs its own ruff, import and test suite.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scaffold.taken_names import SERVICE_PYPROJECT, TAKEN_NAMES_FILE, read, taken_names
from tests.helpers import ServiceVenv, passed, render_service

RUFF = Path(sys.executable).parent / "ruff"
LONG_NAME = ("Customer Notification Service for Every Region " * 5)[:200]
ODD = 'Say """hi""" to C:\\Users\\x and {{ project }} {% raw %} it\'s "quoted"'

# answers -> the package name the service gets; each is rendered, installed and tested.
ACCEPTED: dict[str, tuple[dict[str, Any], str]] = {
    "long-words": (
        {"project_name": "Customer Notification Service"},
        "customer_notification_service",
    ),
    "200-chars": ({"project_name": LONG_NAME}, "customer_notification_service_for_every"),
    "backslash": (
        {"project_name": "C:\\Users\\x", "description": 'Line "one" \\ two'},
        "c_users_x",
    ),
    "triple-quotes": ({"project_name": 'Say """hi"""'}, "say_hi"),
    "quotes-braces": (
        {"project_name": ODD, "description": ODD * 3},
        "say_hi_to_c_users_x_and_project_raw_it_s",
    ),
    "unicode": (
        {"project_name": "Café Ünïcode 日本 😀", "description": "Überall 日本 😀 ✓"},
        "caf_n_code",
    ),
    "leading-digit": ({"project_name": "3D Printer"}, "svc_3d_printer"),
}

# project_name -> the default package name, valid although the plain one would not be.
DEFAULTS = {
    "FastAPI": "svc_fastapi",
    "Test": "svc_test",
    "JSON": "svc_json",
    "日本": "service",
    "3D Printer": "svc_3d_printer",
    "Redis": "svc_redis",
    "Acme Orders": "acme_orders",
    "Conftest": "svc_conftest",
    "Pip": "svc_pip",
    "Test Health": "svc_test_health",
}

# package_name -> what the one line says
REFUSED = {
    "fastapi": "is the dependency fastapi",
    "sqlalchemy": "is the dependency sqlalchemy",
    "pytest": "is the dependency pytest",
    "alembic": "is the dependency alembic",
    "redis": "is the dependency redis",
    "starlette": "is the dependency starlette (of fastapi)",
    "yaml": "is a module of the dependency pyyaml",
    "test": "is a standard-library module",
    "json": "is a standard-library module",
    "tests": "is the service's tests folder",
    "conftest": "is a module of the service's tests folder",
    "pip": "is the installer in the service's environment",
    "test_health": "is a module of the service's tests folder",
    "test_items": "is a module of the service's tests folder",
    "class": "is a Python keyword",
    "_": "makes no valid distribution name ('-')",
    "_private": "makes no valid distribution name",
    "trailing_": "makes no valid distribution name",
    "__init__": "is a dunder name",
    "3d_printer": "must be a lowercase Python identifier",
    "Bad-Name": "must be a lowercase Python identifier",
    "x" * 41: "is longer than 40 characters",
}


@pytest.fixture(scope="module")
def services(
    template_repo: Path, service_venv: ServiceVenv, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Every accepted case rendered (sqlite, no example: the answers, not the example, vary)."""
    root = tmp_path_factory.mktemp("answers")
    rendered = {
        case: render_service(
            template_repo, root / case, database="sqlite", include_example=False, **answers
        )
        for case, (answers, _) in ACCEPTED.items()
    }
    editable = [arg for path in rendered.values() for arg in ("-e", str(path))]
    service_venv.pip("install", "--quiet", "--no-deps", "--no-build-isolation", *editable)
    return rendered


@pytest.mark.parametrize("case", ACCEPTED)
def test_an_accepted_answer_renders_a_service_that_lints_imports_and_passes(
    services: dict[str, Path], service_venv: ServiceVenv, case: str
) -> None:
    answers, package = ACCEPTED[case]
    service = services[case]

    assert (service / "src" / package / "__init__.py").is_file()
    for args in (["check", "."], ["format", "--check", "."]):
        run = subprocess.run([RUFF, *args], cwd=service, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr
    default = f"{answers['project_name']}: an API service built on appkit"
    assert constants(service / "src" / package / "__init__.py") == {
        "SERVICE_NAME": package.replace("_", "-"),
        "DESCRIPTION": answers.get("description", default),
    }
    # The suite imports the app (`appkit_app` in pyproject.toml) before its first test.
    assert passed(service_venv.run("pytest", "-p", "no:cacheprovider", cwd=service)) == 3


@pytest.mark.parametrize("include_example", [True, False])
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
@pytest.mark.parametrize("name", [LONG_NAME, ODD], ids=["200-chars", "quotes-braces"])
def test_every_combination_stays_ruff_clean_with_the_hardest_names(
    template_repo: Path, tmp_path: Path, name: str, database: str, include_example: bool
) -> None:
    # The installed cases above render one combination; the others differ in files that hold
    # the package name too (migrations, the example), so lint them all.
    service = render_service(
        template_repo,
        tmp_path / "svc",
        project_name=name,
        description=name * 2,
        database=database,
        include_example=include_example,
    )

    for args in (["check", "."], ["format", "--check", "."]):
        run = subprocess.run([RUFF, *args], cwd=service, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr


def constants(module: Path) -> dict[str, object]:
    """The module's top-level `NAME = literal` assignments, evaluated."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    return {
        target.id: ast.literal_eval(statement.value)
        for statement in tree.body
        if isinstance(statement, ast.Assign)
        for target in statement.targets
        if isinstance(target, ast.Name)
    }


@pytest.mark.parametrize(("project_name", "package_name"), DEFAULTS.items())
def test_the_default_package_name_is_valid_for_any_project_name_with_a_letter(
    template_repo: Path, tmp_path: Path, project_name: str, package_name: str
) -> None:
    service = render_service(template_repo, tmp_path / "svc", project_name=project_name)

    assert (service / "src" / package_name / "main.py").is_file()


@pytest.mark.parametrize("package_name", REFUSED)
def test_a_package_name_that_cannot_work_is_refused_in_one_line(
    template_repo: Path, tmp_path: Path, package_name: str
) -> None:
    with pytest.raises(ValueError) as refused:
        render_service(template_repo, tmp_path / "svc", package_name=package_name)

    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("Validation error for question 'package_name': package_name ")
    assert repr(package_name) in message or f'"{package_name}"' in message
    assert REFUSED[package_name] in message


@pytest.mark.parametrize("answer", ["project_name", "description"])
def test_an_answer_of_more_than_one_line_is_refused_in_one_line(
    template_repo: Path, tmp_path: Path, answer: str
) -> None:
    with pytest.raises(ValueError) as refused:
        render_service(template_repo, tmp_path / "svc", **{answer: "one\ntwo"})

    assert "\n" not in str(refused.value)
    assert f'{answer} must be one line of printable characters, got "one\\ntwo"' in str(
        refused.value
    )


def test_the_taken_names_file_holds_every_name_derived_from_metadata() -> None:
    # Stale when a dependency changes: `python -m scaffold.taken_names` rewrites it.
    derived = taken_names(SERVICE_PYPROJECT.read_text(encoding="utf-8"))
    written = read(TAKEN_NAMES_FILE.read_text(encoding="utf-8"))

    missing = sorted(set(derived) - set(written))
    assert not missing, f"run python -m scaffold.taken_names: {missing} are missing"
    assert {"fastapi", "starlette", "pydantic_core", "anyio", "test", "sys"} <= set(written)
