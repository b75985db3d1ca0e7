"""`new` and the `runtime_source` question: bad answers refused, the template path recorded."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.helpers import git
from tests.scaffold.conftest import Result

Scaffold = Callable[..., Result]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("runtime_source=pypi", "Invalid choice for 'runtime_source': 'pypi' is not in"),
        ("runtime_source=git", "runtime_source=git needs the template copied from a git"),
    ],
)
def test_a_bad_runtime_source_exits_2_with_one_line_and_leaves_nothing(
    scaffold: Scaffold,
    template_repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    data: str,
    message: str,
) -> None:
    dest = tmp_path / "svc"
    # The template copied from a folder that is no git repository cannot serve the runtime.
    plain = tmp_path / "plain"
    git("clone", "--quiet", str(template_repo), str(plain), cwd=tmp_path)
    (plain / ".git").rename(tmp_path / "plain.git")
    monkeypatch.setattr("scaffold.new.template_source", lambda: plain)

    result = scaffold("new", dest, "--data", data)

    assert result.code == 2
    assert result.err.count("\n") == 1
    assert message in result.err
    assert not dest.exists()


def test_new_records_a_relative_template_path_as_absolute(
    scaffold: Scaffold, template_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = os.path.relpath(template_repo, tmp_path)

    result = scaffold("new", "orders", "--template", relative)

    assert result.code == 0, result.err
    answers = yaml.safe_load((tmp_path / "orders" / ".copier-answers.yml").read_text())
    assert answers["_src_path"] == str(template_repo)
    assert answers["runtime_source"] == "git"
