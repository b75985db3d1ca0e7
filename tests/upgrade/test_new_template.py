"""`new --template`: a service rendered from appkit's repository at the runtime's tag, which
copier can update later; and the refusal for a service whose answers name no commit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from scaffold.cli import run
from tests.helpers import git_init, git_save, render_service
from tests.upgrade.conftest import V1, V2, release_v2

Captured = pytest.CaptureFixture[str]


def answers_of(service: Path) -> dict[str, object]:
    return yaml.safe_load((service / ".copier-answers.yml").read_text())


def test_a_service_made_with_template_follows_later_versions(
    appkit: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Captured
) -> None:
    # Work after the v1 tag is not what the installed runtime was released with.
    (appkit / "template" / "UNRELEASED.md").write_text("after v1\n")
    git_save(appkit, "work after v1")
    monkeypatch.setenv("APPKIT_TEMPLATE", str(appkit))
    service = tmp_path / "orders"

    assert run(["new", str(service)]) == 0

    assert answers_of(service)["_src_path"] == str(appkit)
    assert answers_of(service)["_commit"] == V1
    assert not (service / "UNRELEASED.md").exists()
    git_init(service, "service from v1")
    release_v2(appkit)
    monkeypatch.chdir(service)
    capsys.readouterr()

    assert run(["upgrade"]) == 0

    assert answers_of(service)["_commit"] == V2
    assert (service / "Containerfile").exists()
    assert (service / "UNRELEASED.md").exists()
    assert "conflicts (0)" in capsys.readouterr().out


def test_a_template_without_the_release_tag_exits_2_and_leaves_nothing(
    appkit: Path, tmp_path: Path, capsys: Captured
) -> None:
    service = tmp_path / "orders"

    code = run(["new", str(service), "--template", str(appkit), "--vcs-ref", "v99.0.0"])

    assert code == 2
    assert capsys.readouterr().err == (
        f"appkit-scaffold: {appkit} has no v99.0.0: tag it, or pass --vcs-ref\n"
    )
    assert not service.exists()


def test_a_service_whose_answers_name_no_commit_is_refused_in_one_line(
    appkit: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Captured
) -> None:
    # A template copy that is no git repository, as a wheel carries it: copier records no commit.
    copy = shutil.copytree(appkit, tmp_path / "copy", ignore=shutil.ignore_patterns(".git"))
    service = render_service(copy, tmp_path / "loose")
    git_init(service, "service from a copy")
    assert "_commit" not in answers_of(service)
    before = (service / ".copier-answers.yml").read_text()
    monkeypatch.chdir(service)
    capsys.readouterr()

    assert run(["upgrade"]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "records no _commit" in err
    assert "set _src_path to appkit's repository" in err
    assert (service / ".copier-answers.yml").read_text() == before
