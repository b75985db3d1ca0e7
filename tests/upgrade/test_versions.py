"""One version story: the version file, the template tag, the service's runtime requirement.

Template versions are git tags `vX.Y.Z` of this repository; `appkit_runtime/_version.py` is the
one place the version lives (the runtime's `__version__` and the distribution's version read
it), and a service requires the runtime release its template tag names.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

import yaml
from packaging.requirements import Requirement

import appkit_runtime
from tests.helpers import ROOT, runtime_version


def test_runtime_version_comes_from_the_version_file() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())

    assert appkit_runtime.__version__ == runtime_version()
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "appkit_runtime/_version.py"


def runtime_requirements(service: Path) -> list[Requirement]:
    """The service's appkit-runtime requirements: its dependency and its dev extra's."""
    pyproject = tomllib.loads((service / "pyproject.toml").read_text())
    return [
        Requirement(line)
        for line in [
            *pyproject["project"]["dependencies"],
            *pyproject["project"]["optional-dependencies"]["dev"],
        ]
        if line.startswith("appkit-runtime")
    ]


def test_version_file_requirement_and_answers_commit_agree(
    service_factory: Callable[..., Path], template_repo: Path
) -> None:
    service = service_factory(package_name="versions")
    answers = yaml.safe_load((service / ".copier-answers.yml").read_text())

    # Rendered from the tag v<version> of a git repository, requiring the runtime built from
    # that very tag (the default source), in a form that pip 23 accepts: file://localhost/.
    assert answers["_commit"] == f"v{runtime_version()}"
    assert answers["runtime_source"] == "git"
    assert [r.url for r in runtime_requirements(service)] == [
        f"git+file://localhost{template_repo}@v{runtime_version()}"
    ] * 2


def test_an_index_source_requires_the_release_line(service_factory: Callable[..., Path]) -> None:
    service = service_factory(package_name="versions", runtime_source="index")

    requirements = runtime_requirements(service)

    assert [str(r.specifier) for r in requirements] == [f"~={runtime_version()}"] * 2
    assert all(r.specifier.contains(appkit_runtime.__version__) for r in requirements)
    assert "allow-direct-references" not in (service / "pyproject.toml").read_text()
