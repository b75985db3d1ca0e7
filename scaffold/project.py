"""Where things are: the service a command runs in, and the template that renders services."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaffold.errors import Conflict, UsageProblem

ANSWERS_FILE = ".copier-answers.yml"
_PACKAGED_TEMPLATE = Path(__file__).resolve().parent / "_template"
_REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Service:
    """A service rendered from the template: its root folder and its Copier answers."""

    root: Path
    answers: dict[str, Any]

    @property
    def answers_file(self) -> Path:
        return self.root / ANSWERS_FILE

    @property
    def package_name(self) -> str:
        return str(self.answers["package_name"])

    @property
    def package_dir(self) -> Path:
        return self.root / "src" / self.package_name

    @property
    def registry(self) -> Path:
        """`routers/__init__.py`, the router registry that add-endpoint edits."""
        return self.package_dir / "routers" / "__init__.py"

    @property
    def template_version(self) -> str | None:
        """The `X.Y.Z` of the `vX.Y.Z` tag the service was rendered or updated from, if any.

        An untagged commit (`8b5365d`, `v0.1.0-3-g8b5365d`) names no version: None.
        """
        match = re.fullmatch(r"v(\d+\.\d+\.\d+)", str(self.answers.get("_commit") or ""))
        return match.group(1) if match else None

    def relative(self, path: Path) -> str:
        """`path` as the team sees it: relative to the service root."""
        return path.relative_to(self.root).as_posix()


def find_answers_file(start: Path) -> Path | None:
    """The nearest `.copier-answers.yml` in `start` or a folder above it."""
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / ANSWERS_FILE
        if candidate.is_file():
            return candidate
    return None


def read_answers(answers_file: Path) -> dict[str, Any]:
    """The answers Copier recorded, as a dict; a broken file is a `Conflict`."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        answers = yaml.load(answers_file.read_text(encoding="utf-8"), Loader=loader)
    except (OSError, yaml.YAMLError) as error:
        raise Conflict(f"cannot read {answers_file}: {error}".replace("\n", " ")) from error
    if not isinstance(answers, dict):
        raise Conflict(f"{answers_file} does not hold Copier answers")
    return answers


def find_service(start: Path) -> Service:
    """The service `start` is in, found by walking up to its `.copier-answers.yml`."""
    answers_file = find_answers_file(start)
    if answers_file is None:
        raise UsageProblem(
            f"no {ANSWERS_FILE} in {start.resolve()} or any folder above it: "
            "run inside a service made from appkit's template, or pass --project-dir"
        )
    answers = read_answers(answers_file)
    package = answers.get("package_name")
    if not isinstance(package, str) or not package.isidentifier():
        raise Conflict(f"{answers_file} has no valid package_name")
    return Service(root=answers_file.parent, answers=answers)


def template_source() -> Path:
    """The template's repository root: the copy packaged in the wheel, else this checkout."""
    if (_PACKAGED_TEMPLATE / "copier.yml").is_file():
        return _PACKAGED_TEMPLATE
    return _REPOSITORY_ROOT
