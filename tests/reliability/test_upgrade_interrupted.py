"""`appkit-scaffold upgrade` interrupted by a write that fails half-way: exit 2, one line,
and every file of the service as it was before (the git tree clean)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaffold.cli import run
from tests.helpers import build_template_repo, git, git_init, render_service
from tests.scaffold.test_add_endpoint import read_only
from tests.upgrade.conftest import V1, release_v2, tree


# Copier walks the template with a generator over os.scandir that it never closes when a write
# raises; the iterator is only reclaimed later, as an unraisable ResourceWarning.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_write_failing_half_way_through_an_upgrade_puts_back_every_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    appkit = build_template_repo(tmp_path / "appkit", tag=V1)
    service = render_service(appkit, tmp_path / "halfway", package_name="halfway")
    git_init(service, "service from template v1")
    release_v2(appkit)
    before = tree(service)
    capsys.readouterr()

    # v2 changes README.md, Dockerfile and main.py, then adds tests/test_openapi.py: the
    # files before it are written, that one cannot be.
    with read_only(service / "tests"):
        code = run(["upgrade", "--project-dir", str(service)])
    captured = capsys.readouterr()

    assert code == 2
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("upgrade failed, nothing changed: ")
    assert "test_openapi.py" in captured.err
    assert tree(service) == before
    assert git("status", "--porcelain", "--ignored", cwd=service) == ""
