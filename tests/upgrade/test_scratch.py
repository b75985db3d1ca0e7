"""`scaffold.scratch`: copier's throwaway clones go to a memory-backed folder when there is room."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

import scaffold.upgrade
from scaffold.scratch import memory_scratch, temporary_files_in
from scaffold.upgrade import upgrade
from tests.upgrade.conftest import release_v2

MOVE_SCRIPT = "template/.copier_migrations/apply_moves.py"


def test_a_writable_folder_with_room_is_chosen(tmp_path: Path) -> None:
    assert memory_scratch({}, tmp_path, min_free=0) == tmp_path


def test_a_tmpdir_the_user_set_wins(tmp_path: Path) -> None:
    assert memory_scratch({"TMPDIR": "/var/tmp"}, tmp_path, min_free=0) is None


def test_a_missing_folder_is_not_chosen(tmp_path: Path) -> None:
    assert memory_scratch({}, tmp_path / "absent", min_free=0) is None


def test_a_folder_without_room_is_not_chosen(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    assert memory_scratch({}, tmp_path, min_free=free + (1 << 40)) is None


def test_temporary_folders_go_to_the_folder_and_back_after(tmp_path: Path) -> None:
    before = tempfile.gettempdir()
    with pytest.raises(RuntimeError), temporary_files_in(tmp_path):
        made = Path(tempfile.mkdtemp())
        assert made.parent == tmp_path
        raise RuntimeError
    assert tempfile.gettempdir() == before
    with temporary_files_in(None):
        assert tempfile.gettempdir() == before


def test_the_upgrade_clones_the_template_in_the_chosen_folder(
    appkit: Path,
    committed_service: Callable[[str], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = committed_service("scratch")
    # v2's move script, which copier runs from its clone of v2, says where that clone is.
    release_v2(
        appkit,
        trace=(
            MOVE_SCRIPT,
            "def main(answers_file: str) -> int:\n",
            "def main(answers_file: str) -> int:\n"
            '    Path("template-clone").write_text(__file__)\n',
        ),
    )
    memory = tmp_path / "memory"
    memory.mkdir()
    monkeypatch.setattr(scaffold.upgrade, "memory_scratch", lambda: memory)

    assert upgrade(service, to=None, dry_run=False) == 0

    clone = Path((service / "template-clone").read_text())
    assert clone.is_relative_to(memory)
    assert (service / "Containerfile").exists()
    assert list(memory.iterdir()) == []  # copier removed its clones and renders
