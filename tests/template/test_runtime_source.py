"""Where a service installs appkit-runtime from: the `runtime_source` question.

`git` (the default for a template copied from a git repository) requires the runtime from the
template repository's own tag; `index` requires a compatible release from a package index.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from jinja2.sandbox import SandboxedEnvironment
from packaging.requirements import Requirement

from tests.helpers import ROOT, git, git_save, render_service, runtime_version
from tests.scaffold.conftest import Result

Scaffold = Callable[..., Result]


HASH = "8b5365d" + "0" * 33


def computed(
    question: str, source: str, commit: str = "v0.1.0", commit_hash: str | None = HASH
) -> str:
    """What copier.yml's computed `question` renders for a template copied from `source`."""
    questions = yaml.safe_load((ROOT / "copier.yml").read_text())
    env = SandboxedEnvironment(extensions=["jinja2_ansible_filters.AnsibleCoreFiltersExtension"])
    context = {
        "_copier_answers": {"_src_path": source, "_commit": commit},
        "_copier_conf": {"vcs_ref_hash": commit_hash},
    }
    return env.from_string(questions[question]["default"]).render(context)


def git_url_of(source: str, commit_hash: str | None = HASH) -> str:
    return computed("runtime_git_url", source, commit_hash=commit_hash)


@pytest.mark.parametrize(
    ("source", "url"),
    [
        ("gh:acme/appkit", "git+https://github.com/acme/appkit.git"),
        ("gh:/acme/appkit.git", "git+https://github.com/acme/appkit.git"),
        ("gl:acme/tools/appkit", "git+https://gitlab.com/acme/tools/appkit.git"),
        ("https://git.acme.io/acme/appkit.git", "git+https://git.acme.io/acme/appkit.git"),
        ("git+https://git.acme.io/acme/appkit", "git+https://git.acme.io/acme/appkit"),
        ("git@github.com:acme/appkit.git", "git+ssh://git@github.com/acme/appkit.git"),
        (
            "ssh://git@git.acme.io:2222/acme/appkit.git",
            "git+ssh://git@git.acme.io:2222/acme/appkit.git",
        ),
        ("git://git.acme.io/appkit.git", "git+git://git.acme.io/appkit.git"),
        ("/srv/git/appkit", "git+file://localhost/srv/git/appkit"),
        ("file:///srv/git/appkit.git", "git+file://localhost/srv/git/appkit.git"),
        ("file://localhost/srv/git/appkit.git", "git+file://localhost/srv/git/appkit.git"),
    ],
)
def test_every_template_source_becomes_a_url_pip_and_uv_take(source: str, url: str) -> None:
    rendered = git_url_of(source)

    assert rendered == url
    requirement = Requirement(f"appkit-runtime @ {rendered}@v1.2.3")
    assert requirement.url == f"{url}@v1.2.3"


@pytest.mark.parametrize(
    ("source", "commit_hash"), [("../appkit", "0" * 40), ("/srv/appkit-copy", None)]
)
def test_a_relative_path_or_a_copy_without_git_gives_no_url(
    source: str, commit_hash: str | None
) -> None:
    assert git_url_of(source, commit_hash) == ""


def test_a_render_of_an_untagged_commit_requires_that_commit(
    template_repo: Path, tmp_path: Path
) -> None:
    # Work after the tag: HEAD is no vX.Y.Z, so the requirement names its full commit.
    appkit = tmp_path / "appkit"
    git("clone", "--quiet", str(template_repo), str(appkit), cwd=tmp_path)
    (appkit / "template" / "NOTES.md").write_text("after the tag\n")
    git_save(appkit, "after the tag")
    head = git("rev-parse", "HEAD", cwd=appkit).strip()

    service = render_service(appkit, tmp_path / "svc", package_name="svc")

    pyproject = tomllib.loads((service / "pyproject.toml").read_text())
    assert pyproject["project"]["dependencies"][0] == (
        f"appkit-runtime @ git+file://localhost{appkit}@{head}"
    )
    assert pyproject["tool"]["hatch"]["metadata"]["allow-direct-references"] is True


def test_the_service_readme_gives_one_install_command_for_both_sources(
    service_factory: Callable[..., Path],
) -> None:
    git_service = service_factory(package_name="from_git")
    index_service = service_factory(package_name="from_index", runtime_source="index")

    for service in (git_service, index_service):
        readme = (service / "README.md").read_text()
        assert "pip install -e '.[dev]'       # or: uv pip install -e '.[dev]'\n" in readme
    assert "git+file://localhost" in (git_service / "README.md").read_text()
    # Neither names the version, so an upgrade leaves the README as it is.
    assert runtime_version() not in (git_service / "README.md").read_text()
    assert runtime_version() not in (index_service / "README.md").read_text()
    assert "UV_INDEX_URL" in (index_service / "README.md").read_text()


@pytest.mark.parametrize(
    ("commit", "ref"),
    [
        ("v1.2.0", "v1.2.0"),
        ("v1.3.0rc1", "v1.3.0rc1"),
        ("v1.2.0-3-g8b5365d", HASH),  # git describe: three commits after the tag
        ("8b5365d", HASH),  # before the first tag
    ],
)
def test_the_requirement_names_the_tag_or_else_the_full_commit(commit: str, ref: str) -> None:
    assert computed("runtime_git_ref", "/srv/appkit", commit=commit) == ref
