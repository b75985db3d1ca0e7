"""A file the next template version drops: deleted if the team never edited it, else kept."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from scaffold.upgrade import upgrade
from tests.helpers import git, git_save, runtime_version
from tests.upgrade.conftest import V2, V2_VERSION, edit


def release_v2_without(repo: Path, *template_files: str) -> None:
    """Template v2: the same as v1 without `template_files`."""
    for name in template_files:
        (repo / "template" / name).unlink()
    edit(repo / "appkit_runtime" / "_version.py", runtime_version(), V2_VERSION)
    git_save(repo, "template v2", tag=V2)


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_dropped_file_the_team_edited_is_kept_and_listed(
    appkit: Path,
    committed_service: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
    dry_run: bool,
) -> None:
    service = committed_service("dropped")
    edit(service / "Makefile", "test:\n", "test:  ## TEAM EDIT\n")
    git_save(service, "team edits the Makefile")
    release_v2_without(appkit, "Makefile.jinja", ".dockerignore")

    assert upgrade(service, to=V2, dry_run=dry_run) == 0

    report = capsys.readouterr().out.splitlines()
    assert "files kept (1): the template dropped them, yours has edits" in report
    assert report[
        report.index("files kept (1): the template dropped them, yours has edits") + 1
    ] == ("  Makefile")
    assert "  removed  .dockerignore" in report
    assert "  removed  Makefile" not in report
    if not dry_run:
        assert "## TEAM EDIT" in (service / "Makefile").read_text()
        assert not (service / ".dockerignore").exists()
        assert git("status", "--porcelain", cwd=service).splitlines() == [
            " M .copier-answers.yml",
            " D .dockerignore",
            " M pyproject.toml",  # the runtime pin follows the version
        ]
