"""`copier copy`: the rendered tree, its answers file, lint-clean code, and refused answers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, runtime_version

Factory = Callable[..., Path]

RUFF = Path(sys.executable).parent / "ruff"

DESIGN_TREE = {
    ".copier-answers.yml",
    ".dockerignore",
    ".env.example",
    ".github/workflows/ci.yml",
    ".gitignore",
    ".pre-commit-config.yaml",
    "Dockerfile",
    "Makefile",
    "README.md",
    "alembic.ini",
    "compose.yaml",
    "migrations/env.py",
    "migrations/script.py.mako",
    "migrations/versions/0001_initial.py",
    "otel-collector.yaml",
    "pyproject.toml",
    "src/acme_orders/__init__.py",
    "src/acme_orders/__main__.py",
    "src/acme_orders/db.py",
    "src/acme_orders/main.py",
    "src/acme_orders/models.py",
    "src/acme_orders/routers/__init__.py",
    "src/acme_orders/routers/items.py",
    "tests/conftest.py",
    "tests/test_health.py",
    "tests/test_items.py",
}

COMBINATIONS = [
    pytest.param(database, auth, example, id=f"{database}-{auth}-{'example' * example or 'bare'}")
    for database in ("postgresql", "sqlite")
    for auth in ("static", "http")
    for example in (True, False)
]


def files_of(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def ruff(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUFF, *args, "--no-cache", "."], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_a_project_name_alone_gives_the_designed_service(service_factory: Factory) -> None:
    # Only the project name: every other answer is the default.
    service = service_factory(project_name="Acme Orders")

    # The tree of DESIGN.md §2, and nothing else: no .git, copier.yml, snippets or runtime.
    assert files_of(service) == DESIGN_TREE
    # The answers file records the answers and the template tag, not the secret or computed.
    answers = yaml.safe_load((service / ".copier-answers.yml").read_text())
    assert answers["_commit"] == f"v{runtime_version()}"
    assert answers["package_name"] == "acme_orders"
    assert {"dev_api_key", "service_name", "runtime_version", "runtime_git_url"}.isdisjoint(answers)
    assert "dev-acme-orders-key" not in (service / ".copier-answers.yml").read_text()
    assert "dev-acme-orders-key" in (service / ".env.example").read_text()
    # The runtime comes from the template repository's tag, named by the version file.
    pyproject = (service / "pyproject.toml").read_text()
    assert '"appkit-runtime @ git+file://localhost/' in pyproject
    assert '"appkit-runtime[testing,embedded,scaffold] @ git+file://localhost/' in pyproject
    assert '"appkit-runtime[otel] @ git+file://localhost/' in pyproject
    assert pyproject.count(f'@v{runtime_version()}"') == 3
    assert 'appkit_app = "acme_orders.main:app"' in pyproject


def test_a_secret_answer_stays_out_of_the_answers_file(service_factory: Factory) -> None:
    service = service_factory(package_name="secretive", dev_api_key="s3cret-dev-key-42")

    assert "s3cret-dev-key-42" in (service / ".env.example").read_text()
    assert "s3cret-dev-key-42" not in (service / ".copier-answers.yml").read_text()


@pytest.mark.parametrize(("database", "auth_backend", "include_example"), COMBINATIONS)
def test_every_combination_renders_ruff_clean_code(
    service_factory: Factory, database: str, auth_backend: str, include_example: bool
) -> None:
    service = service_factory(
        package_name="svc",
        database=database,
        auth_backend=auth_backend,
        include_example=include_example,
        default_rate_limit="7/30",
    )

    check = ruff("check", cwd=service)
    assert check.returncode == 0, check.stdout + check.stderr
    format_check = ruff("format", "--check", cwd=service)
    assert format_check.returncode == 0, format_check.stdout + format_check.stderr
    # The example comes and goes with its answer; the registry is always there.
    assert (service / "src/svc/routers/items.py").exists() == include_example
    assert (service / "tests/test_items.py").exists() == include_example
    assert (service / "src/svc/routers/__init__.py").exists()
    # The answers shape the production image and the development settings.
    dockerfile = (service / "Dockerfile").read_text()
    assert ("APPKIT_AUTH_BACKEND=http" in dockerfile) == (auth_backend == "http")
    assert ("sqlite:////data/svc.db" in dockerfile) == (database == "sqlite")
    assert "USER 10001" in dockerfile
    assert "APPKIT_RATELIMIT_DEFAULT=7/30" in (service / ".env.example").read_text()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"package_name": "1abc"}, "package_name must be a lowercase Python identifier"),
        ({"package_name": "class"}, "is a Python keyword"),
        ({"default_rate_limit": "ten"}, "default_rate_limit must be N/S"),
        ({"default_rate_limit": "0/60"}, "default_rate_limit must be N/S"),
    ],
)
def test_a_bad_answer_is_refused_and_nothing_is_written(
    service_factory: Factory, tmp_path: Path, answer: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        service_factory(**answer)

    assert list(tmp_path.iterdir()) == []


def test_the_next_steps_cd_line_works_for_a_folder_with_spaces_and_quotes(
    tmp_path: Path,
) -> None:
    dest = tmp_path / "team's space" / "svc one"
    copier = Path(sys.executable).parent / "copier"
    copy = [copier, "copy", "--defaults", "--vcs-ref", "HEAD", "-d", "package_name=svc_one"]

    run = subprocess.run([*copy, ROOT, dest], capture_output=True, text=True)

    assert run.returncode == 0, run.stderr
    cd = next(line.strip() for line in run.stderr.splitlines() if line.strip().startswith("cd "))
    moved = subprocess.run(["sh", "-c", f"{cd} && pwd"], capture_output=True, text=True)
    assert moved.stdout.strip() == str(dest)


def test_the_next_steps_curl_line_carries_the_development_key(tmp_path: Path) -> None:
    copier = Path(sys.executable).parent / "copier"
    copy = [copier, "copy", "--defaults", "--vcs-ref", "HEAD", "-d", "package_name=svc_two"]

    run = subprocess.run([*copy, ROOT, tmp_path / "svc"], capture_output=True, text=True)

    assert run.returncode == 0, run.stderr
    curl = next(line.strip() for line in run.stderr.splitlines() if "curl " in line)
    assert "'Authorization: Bearer dev-svc-two-key'" in curl
    assert "dev-svc-two-key" in (tmp_path / "svc" / ".env.example").read_text()
