"""`apply_moves.routes`: where due moves take each tracked file, as stepwise updates would.

The move script runs inside a service during `copier update`; here it runs in a git repository
holding only the files each case needs.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import ROOT, build_file_tree, git_init

MIGRATIONS = ROOT / "template" / ".copier_migrations"
Routes = Callable[[list[tuple[str, str]]], tuple[dict[str, str], dict[str, str]]]


@pytest.fixture
def apply_moves(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The template's move script, imported as the migration runs it (`moves` beside it)."""
    monkeypatch.syspath_prepend(str(MIGRATIONS))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    spec = importlib.util.spec_from_file_location("apply_moves", MIGRATIONS / "apply_moves.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def routes_in(
    apply_moves: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[list[str]], Routes]:
    """`routes_in(files)`: `routes` in a service whose last commit holds `files`."""

    def make(files: list[str]) -> Routes:
        service = tmp_path / "service"
        build_file_tree({service / name: f"{name}\n" for name in files})
        git_init(service)
        monkeypatch.chdir(service)
        return apply_moves.routes

    return make


def test_a_file_renamed_twice_goes_to_its_last_path(routes_in: Callable[..., Routes]) -> None:
    routes = routes_in(["Makefile", "README.md"])

    moves = [("Makefile", "tools/Makefile"), ("tools/Makefile", "make/Makefile")]
    assert routes(moves) == ({"Makefile": "make/Makefile"}, {})


def test_folder_moves_compose_with_file_moves(routes_in: Callable[..., Routes]) -> None:
    routes = routes_in(["docs/a.md", "docs/b.md", "docs2/c.md"])

    moves = [("docs", "manual"), ("manual/a.md", "guide/a.md"), ("docs2/", "manual/")]
    assert routes(moves) == (
        {"docs/a.md": "guide/a.md", "docs/b.md": "manual/b.md", "docs2/c.md": "manual/c.md"},
        {},
    )


def test_a_path_the_team_holds_stops_a_file_as_a_stepwise_update_would(
    routes_in: Callable[..., Routes],
) -> None:
    # The team's own tools/Makefile holds the path v2 moves Makefile to: Makefile stays, and
    # v3 then moves the team's tools/Makefile on.
    routes = routes_in(["Makefile", "tools/Makefile"])
    moves = [("Makefile", "tools/Makefile"), ("tools/Makefile", "make/Makefile")]
    assert routes(moves) == ({"tools/Makefile": "make/Makefile"}, {"Makefile": "tools/Makefile"})


def test_a_held_last_path_stops_the_file_at_the_one_before(
    routes_in: Callable[..., Routes],
) -> None:
    routes = routes_in(["Makefile", "make/Makefile"])
    moves = [("Makefile", "tools/Makefile"), ("tools/Makefile", "make/Makefile")]
    assert routes(moves) == ({"Makefile": "tools/Makefile"}, {"Makefile": "make/Makefile"})
