"""When the team edited the very lines v2 changed: exit 1, each conflict by file and line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from scaffold.upgrade import upgrade
from tests.helpers import git_save
from tests.upgrade.conftest import V2, edit, release_v2

APP_LINE = "app = get_fastapi_app(SERVICE_NAME, lifespan=lifespan, description=DESCRIPTION)\n"


def test_conflicts_are_listed_by_file_and_line_and_nothing_else_is_lost(
    appkit: Path, committed_service: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # The team edits the app line of main.py and the README's Deploy heading, and more.
    service = committed_service("clash")
    package = service / "src" / "clash"
    edit(package / "main.py", APP_LINE, APP_LINE.replace(")\n", ', version="team")\n'))
    edit(service / "README.md", "## Deploy it\n", "## Deploy it (team)\n")
    edit(service / "README.md", "## Run it\n", "## Run it\n\nOn call: #clash-oncall.\n")
    models = package / "models.py"
    models.write_text(models.read_text() + "\n\nTEAM_CONSTANT = 1\n")
    git_save(service, "team edits")
    # v2 changes the same app line (and the same heading, as every v2 here does).
    main_template = "template/src/{{ package_name }}/main.py.jinja"
    v2_line = APP_LINE.replace(")\n", ', docs_url="/docs")\n')
    release_v2(appkit, app_line=(main_template, APP_LINE, v2_line))

    assert upgrade(service, to=None, dry_run=False) == 1
    summary = capsys.readouterr().out.splitlines()

    # Each conflict is listed as path:line, the line of its <<<<<<< marker.
    header = summary.index("conflicts (2): resolve the <<<<<<< markers, then commit")
    listed = []
    for line in summary[header + 1 :]:
        if not line.startswith("  "):
            break
        listed.append(line.strip())
    expected = []
    for path in ("README.md", "src/clash/main.py"):
        lines = (service / path).read_text().splitlines()
        starts = [n for n, text in enumerate(lines, 1) if text.startswith("<<<<<<< ")]
        assert len(starts) == 1, path
        expected += [f"{path}:{n}" for n in starts]
    assert listed == expected
    # Both sides of each conflict are in the file; nothing else is lost.
    main = (package / "main.py").read_text()
    assert 'version="team")' in main and 'docs_url="/docs")' in main
    assert main.startswith('"""The app (v2): ')
    readme = (service / "README.md").read_text()
    assert "## Deploy it (team)" in readme and "## Deploy it (v2)" in readme
    assert "On call: #clash-oncall." in readme
    assert models.read_text().endswith("TEAM_CONSTANT = 1\n")
    assert (service / "tests" / "test_openapi.py").is_file()
    assert (service / "Containerfile").is_file() and not (service / "Dockerfile").exists()
    assert yaml.safe_load((service / ".copier-answers.yml").read_text())["_commit"] == V2
