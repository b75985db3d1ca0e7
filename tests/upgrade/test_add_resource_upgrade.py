"""An upgrade after add-resource keeps every file it wrote: they are the team's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from scaffold.cli import run
from scaffold.upgrade import upgrade
from tests.helpers import git_save
from tests.upgrade.conftest import conflict_markers, release_v2

MODELS = "template/src/{{ package_name }}/models.py.jinja"
# The example's first migration is rendered from the snippet add-resource renders.
MIGRATION = "template/.snippets/resource_migration.py.jinja"


def test_an_upgrade_keeps_the_resource_files_and_its_registration(
    appkit: Path, committed_service: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    service = committed_service("kept")
    package = service / "src" / "kept"
    args = ["add-resource", "order", "--field", "sku:str:unique", "--field", "total:decimal"]
    assert run([*args, "--project-dir", str(service)]) == 0
    git_save(service, "add-resource order")
    owned = [
        package / "models.py",
        package / "routers" / "orders.py",
        service / "tests" / "test_orders.py",
        service / "migrations" / "versions" / "0001_initial.py",
        service / "migrations" / "versions" / "0002_create_orders.py",
    ]
    written = {path: path.read_bytes() for path in owned}

    # v2 changes the template's own copies of the files the team now owns.
    release_v2(
        appkit,
        models=(MODELS, '"""The service\'s tables', '"""The tables (v2)'),
        initial=(MIGRATION, '"""Create the', '"""Create (v2) the'),
    )
    assert upgrade(service, to=None, dry_run=False) == 0
    capsys.readouterr()

    assert {path: path.read_bytes() for path in owned} == written
    registry = (package / "routers" / "__init__.py").read_text()
    assert "from kept.routers import items, orders\n" in registry
    assert "    orders.router,\n" in registry
    assert registry.startswith('"""Routers (v2): ')
    assert conflict_markers(service) == []
