"""`.copier_migrations`: a file the template moves keeps the team's version at its new path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import copier
import pytest

from scaffold.upgrade import upgrade
from tests.helpers import git, git_save
from tests.upgrade.conftest import V1, V2_VERSION, edit, release_v2

TEAM_TEST = """

async def test_the_team_added_this(app_client: AsyncClient) -> None:
    assert (await app_client.get("/healthz")).status_code == 200
"""


def test_a_moved_team_owned_file_keeps_the_team_version(
    appkit: Path, committed_service: Callable[[str], Path], capfd: pytest.CaptureFixture[str]
) -> None:
    # The team adds a test to tests/test_health.py, which the template renders once.
    service = committed_service("moves")
    health = service / "tests" / "test_health.py"
    health.write_text(health.read_text() + TEAM_TEST)
    git_save(service, "team test")
    # v2 moves it to tests/test_runtime_routes.py (next to its usual v2 changes).
    template_tests = appkit / "template" / "tests"
    (template_tests / "test_health.py").rename(template_tests / "test_runtime_routes.py")
    moves = "template/.copier_migrations/moves.py"
    release_v2(
        appkit,
        health=(
            moves,
            '("Dockerfile", "Containerfile")',
            '("Dockerfile", "Containerfile"), '
            '("tests/test_health.py", "tests/test_runtime_routes.py")',
        ),
    )

    assert upgrade(service, to=None, dry_run=False) == 0

    moved = service / "tests" / "test_runtime_routes.py"
    assert not health.exists()
    assert moved.read_text().endswith(TEAM_TEST)
    assert "async def test_healthz_answers_while_the_process_runs" in moved.read_text()
    out = capfd.readouterr().out
    assert "moved tests/test_health.py -> tests/test_runtime_routes.py" in out
    assert V2_VERSION in out


def test_the_move_script_runs_only_when_an_update_changes_the_version(
    appkit: Path, committed_service: Callable[[str], Path]
) -> None:
    # This v1 (the tag moved onto the change) leaves a trace in the service when it runs.
    edit(
        appkit / "template" / ".copier_migrations" / "apply_moves.py",
        "def main(answers_file: str) -> int:\n",
        'def main(answers_file: str) -> int:\n    Path("move-script-ran").touch()\n',
    )
    git_save(appkit, "trace the move script")
    git("tag", "--force", V1, cwd=appkit)
    service = committed_service("gated")
    trace = service / "move-script-ran"

    # Updating to the version the service already has: no move can be due, no process starts.
    copier.run_update(service, vcs_ref=V1, defaults=True, overwrite=True, unsafe=True, quiet=True)
    assert not trace.exists()

    release_v2(appkit)
    assert upgrade(service, to=None, dry_run=False) == 0
    assert trace.exists()
    assert (service / "Containerfile").exists()
