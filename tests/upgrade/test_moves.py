"""`.copier_migrations`: a file the template moves keeps the team's version at its new path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from scaffold.upgrade import upgrade
from tests.helpers import git_save
from tests.upgrade.conftest import V2_VERSION, release_v2

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
