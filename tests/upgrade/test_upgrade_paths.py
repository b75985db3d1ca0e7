"""An unedited service updates to exactly a fresh copy; `--dry-run` reports and touches nothing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from scaffold.upgrade import upgrade
from tests.helpers import git, git_init, git_save, render_service
from tests.upgrade.conftest import SCAFFOLD, V1, V2, edit, release_v2, tree


def test_unedited_service_updated_from_v1_equals_a_fresh_copy_of_v2(
    appkit: Path, committed_service: Callable[[str], Path], tmp_path: Path
) -> None:
    # A service from v1 nobody edited, then v2 with a rename and a new file.
    service = committed_service("plain")
    release_v2(appkit)

    assert upgrade(service, to=V2, dry_run=False) == 0

    # The same answers rendered from v2 in an empty folder give the very same tree.
    fresh = tmp_path / "fresh" / "plain"
    render_service(appkit, fresh, package_name="plain")
    assert git("describe", "--tags", cwd=appkit).strip() == V2
    assert tree(service) == tree(fresh)


def test_dry_run_reports_the_upgrade_and_touches_nothing(
    appkit: Path, committed_service: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # A team edit that v2 changes too: the dry run must report the conflict it would give.
    service = committed_service("dry")
    edit(service / "README.md", "## Deploy it\n", "## Deploy it (team)\n")
    git_save(service, "team edits")
    release_v2(appkit)
    before = tree(service), git("rev-parse", "HEAD", cwd=service)

    assert upgrade(service, to=None, dry_run=True) == 1
    dry = capsys.readouterr().out.splitlines()

    # Nothing changed: files, commit, index.
    assert (tree(service), git("rev-parse", "HEAD", cwd=service)) == before
    assert git("status", "--porcelain", cwd=service) == ""
    assert dry[0] == f"dry run: {service} left as it is; upgrading it to {V2} would give"
    # The real upgrade then reports exactly what the dry run said.
    assert upgrade(service, to=None, dry_run=False) == 1
    real = capsys.readouterr().out.splitlines()
    assert real[0] == f"upgraded {service} to {V2}"
    assert dry[1:] == real[1:]
    assert any(line.startswith("  README.md:") for line in real)


def test_dry_run_works_in_a_service_that_is_in_no_git_repository_yet(
    appkit: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The README quick start renders a service and never runs `git init` in it.
    service = render_service(appkit, tmp_path / "fresh", package_name="fresh")
    release_v2(appkit)
    before = tree(service)

    assert upgrade(service, to=None, dry_run=True) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"dry run: {service} left as it is; upgrading it to {V2} would give"
    assert f"  _commit: {V1} -> {V2}" in out
    assert tree(service) == before
    assert not (service / ".git").exists()


def test_dirty_tree_is_refused_in_one_line_and_left_alone(
    appkit: Path, committed_service: Callable[[str], Path], capfd: pytest.CaptureFixture[str]
) -> None:
    service = committed_service("dirty")
    release_v2(appkit)
    edit(service / "README.md", "## Run it\n", "## Run it now\n")
    (service / "notes.txt").write_text("an untracked file\n")
    before = tree(service)

    # Through the command line, as a team runs it.
    run = subprocess.run(
        [SCAFFOLD, "upgrade", "--project-dir", service], capture_output=True, text=True
    )

    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.splitlines() == [
        f"refusing to upgrade: {service} has 2 uncommitted change(s); commit or stash them first"
    ]
    assert tree(service) == before


def test_unknown_version_fails_in_one_line_and_changes_nothing(
    appkit: Path, committed_service: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    service = committed_service("unknown")
    release_v2(appkit)
    before = tree(service)

    assert upgrade(service, to="v9.9.9", dry_run=False) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith("upgrade failed, nothing changed: ")
    assert tree(service) == before
    assert git("status", "--porcelain", cwd=service) == ""


def test_outside_a_service_or_git_repository_is_refused(
    tmp_path: Path, appkit: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No answers file anywhere above.
    assert upgrade(tmp_path, to=None, dry_run=False) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1
    # A service that is not in git: only the dry run works on it.
    service = render_service(appkit, tmp_path / "nogit", package_name="nogit")
    assert upgrade(service, to=None, dry_run=False) == 2
    assert capsys.readouterr().err.startswith(f"refusing to upgrade: {service} is not in a git")
    assert f"_commit: {V1}\n" in (service / ".copier-answers.yml").read_text()


def test_a_relative_template_path_is_refused_in_one_line_naming_the_answer(
    appkit: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # `copier copy . ../svc`, as from inside appkit's checkout, records `_src_path: .`.
    service = tmp_path / "relative"
    copier = Path(sys.executable).parent / "copier"
    copy = [copier, "copy", "--quiet", "--defaults", "-d", "package_name=relative", "."]
    subprocess.run([*copy, service], cwd=appkit, check=True)
    assert "_src_path: .\n" in (service / ".copier-answers.yml").read_text()
    git_init(service, "init")
    release_v2(appkit)
    before = tree(service)

    run = subprocess.run([SCAFFOLD, "upgrade", "--project-dir", service], capture_output=True)

    assert run.returncode == 2
    assert run.stderr.decode().splitlines() == [
        "refusing to upgrade: .copier-answers.yml records _src_path '.', a relative path "
        "copier would resolve from the service's folder; set it to appkit's absolute path "
        "or URL, commit, and retry"
    ]
    assert tree(service) == before
