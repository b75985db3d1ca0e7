"""Template releases for the upgrade stories: the working tree's template as v1, then a v2.

Every test builds its own throwaway template repository (a copy of the working tree's
template, tagged v1) and makes v2 by editing that copy, never the real template.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import build_template_repo, git_init, git_save, render_service, runtime_version

SCAFFOLD = Path(sys.executable).parent / "appkit-scaffold"
V1 = f"v{runtime_version()}"
_major, _minor, _ = runtime_version().split(".")
V2_VERSION = f"{_major}.{int(_minor) + 1}.0"
V2 = f"v{V2_VERSION}"

OPENAPI_TEST = '''\
"""The OpenAPI schema is served: a test that template v2 adds."""

from __future__ import annotations

from httpx import AsyncClient


async def test_openapi_schema_is_served(app_client: AsyncClient) -> None:
    response = await app_client.get("/openapi.json")

    assert response.status_code == 200
'''


def edit(path: Path, old: str, new: str) -> None:
    """Replace the one occurrence of `old` in `path` with `new`."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not once in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def release_v2(repo: Path, **extra: tuple[str, str, str]) -> None:
    """Template v2: edits in main.py, the README and the registry, a new test, a renamed file.

    The Dockerfile becomes the Containerfile (its first line changes too), declared in
    `.copier_migrations/moves.py`; `extra` adds `name=(template path, old, new)` edits.
    """
    template = repo / "template"
    package = template / "src" / "{{ package_name }}"
    edit(package / "main.py.jinja", '"""The app: ', '"""The app (v2): ')
    edit(template / "README.md.jinja", "## Deploy it\n", "## Deploy it (v2)\n")
    edit(package / "routers" / "__init__.py.jinja", '"""The router registry: ', '"""Routers (v2): ')
    (template / "tests" / "test_openapi.py").write_text(OPENAPI_TEST, encoding="utf-8")
    dockerfile = template / "Dockerfile.jinja"
    edit(dockerfile, "# Build the service", "# v2: build the service")
    dockerfile.rename(template / "Containerfile.jinja")
    moves = template / ".copier_migrations" / "moves.py"
    edit(moves, "= {}", f'= {{"{V2_VERSION}": [("Dockerfile", "Containerfile")]}}')
    for path, old, new in extra.values():
        edit(repo / path, old, new)
    edit(repo / "appkit_runtime" / "_version.py", runtime_version(), V2_VERSION)
    git_save(repo, "template v2", tag=V2)


@pytest.fixture
def appkit(tmp_path: Path) -> Path:
    """A throwaway template repository: the working tree's template, tagged v1."""
    return build_template_repo(tmp_path / "appkit", tag=V1)


@pytest.fixture
def committed_service(appkit: Path, tmp_path: Path) -> Callable[[str], Path]:
    """`committed_service(package)`: a service copied from v1, committed to its own git repo."""

    def make(package: str) -> Path:
        service = render_service(appkit, tmp_path / package, package_name=package)
        git_init(service, "service from template v1")
        return service

    return make


def add_endpoint(service: Path, *args: str) -> None:
    """Run the real `appkit-scaffold add-endpoint` inside the service."""
    run = subprocess.run(
        [SCAFFOLD, "add-endpoint", *args], cwd=service, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr


def conflict_markers(root: Path) -> list[str]:
    """`path:line` of every conflict marker line in the tree (outside .git)."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and ".git" not in path.relative_to(root).parts:
            for number, line in enumerate(path.read_bytes().splitlines(), 1):
                if line.startswith((b"<<<<<<< ", b">>>>>>> ")) or line == b"=======":
                    found.append(f"{path.relative_to(root)}:{number}")
    return found


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` but .git's, by relative path, with its content."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(root).parts
    }
