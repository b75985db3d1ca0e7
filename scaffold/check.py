"""`check`, for a service's CI: every problem listed, one a line; exit 1 if there is any."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from scaffold.errors import ScaffoldError
from scaffold.project import ANSWERS_FILE, Service, find_answers_file, read_answers

_MARKER = re.compile(r"^(<{7}|>{7})(?: |\r?$)", re.MULTILINE)
# `appkit-runtime[extras]~=X.Y.Z` (an index) or `appkit-runtime[extras] @ git+URL@vX.Y.Z`.
_REQUIREMENT = re.compile(
    r"appkit-runtime(?:\[[^\]]*\])?\s*"
    r"(?:~=\s*(?P<pin>[0-9][^\s\"',;]*)|@\s*[^\s\"']+@(?P<ref>[^\s\"'@;]+))"
)
_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", "build", "dist"}


def check(start: Path) -> int:
    """Print each problem of the service at or above `start`; return 1 if any, else 0."""
    problems: list[str] = []
    service = _service(start, problems)
    if service is not None:
        problems += conflict_markers(service.root)
        problems += _app_problems(service)
        problems += _requirement_problems(service)
    for problem in problems:
        print(problem)
    if service is not None and service.template_version is None:
        print(
            f"check: {ANSWERS_FILE} records template commit {service.answers.get('_commit')!r}, "
            "no vX.Y.Z tag: the runtime's version is not compared"
        )
    print(f"check: {len(problems)} problem(s)" if problems else "check: no problems")
    return 1 if problems else 0


def _service(start: Path, problems: list[str]) -> Service | None:
    answers_file = find_answers_file(start)
    if answers_file is None:
        problems.append(f"{ANSWERS_FILE} is missing in {start.resolve()} and above it")
        return None
    try:
        answers = read_answers(answers_file)
    except ScaffoldError as error:
        problems.append(str(error))
        return None
    if not str(answers.get("package_name", "")).isidentifier():
        problems.append(f"{ANSWERS_FILE}: package_name is missing or not an identifier")
        return None
    return Service(root=answers_file.parent, answers=answers)


def conflict_markers(root: Path) -> list[str]:
    """`file:line` of each merge conflict marker, once, in the files git does not ignore.

    Tracked, unmerged and untracked files alike: an upgrade leaves conflicts in all three (a
    moved file is new until the team adds it). Without git, every file is searched.
    """
    found = []
    for path in _files(root):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if b"\0" in data:  # binary: no merge writes markers into it
            continue
        # A merge keeps the team's bytes, whatever their encoding: markers are ASCII in all.
        text = data.decode("utf-8", errors="surrogateescape")
        for match in _MARKER.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(f"{path.relative_to(root).as_posix()}:{line}: conflict marker {match[1]}")
        if path.suffix == ".rej":
            found.append(f"{path.relative_to(root).as_posix()}: rejected update hunks")
    return found


def _files(root: Path) -> list[Path]:
    """The files under `root` that git tracks or would add, each once, or all without git."""
    command = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    try:
        listed = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    except OSError:  # no git here: search every file
        listed = None
    if listed is not None and listed.returncode == 0:
        # An unmerged file is listed once per stage of its merge.
        names = dict.fromkeys(name for name in listed.stdout.split("\0") if name)
        return [root / name for name in names]
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [
            d for d in dirs if d not in _SKIP_DIRS and not d.endswith((".egg-info", "cache"))
        ]
        files += [Path(folder) / name for name in names]
    return files


def _app_problems(service: Service) -> list[str]:
    """Mis-ordered routes (the runtime's own check) and a runtime off the template version."""
    src = service.root / "src"
    probe = subprocess.run(
        [sys.executable, "-m", "scaffold._probe", str(src), service.package_name],
        cwd=service.root,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(probe.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        return [f"cannot run the route check: {last}"]
    problems = [f"route {problem}" for problem in report["problems"]]
    if report["error"]:
        problems.append(f"cannot import {service.package_name}.main:app: {report['error']}")
    version, runtime = service.template_version, report["runtime_version"]
    if version and not _compatible(runtime, version):
        problems.append(
            f"runtime {runtime} does not match template version {version} in {ANSWERS_FILE} "
            f"(needs {_wanted_runtime(service, version)})"
        )
    return problems


def _wanted_runtime(service: Service, version: str) -> str:
    """The runtime `version` asks for, in the form the service's pyproject requires it."""
    pyproject = service.root / "pyproject.toml"
    text = pyproject.read_text() if pyproject.is_file() else ""
    match = _REQUIREMENT.search(text)
    if match is not None and match["ref"]:
        return f"appkit-runtime from the template repository at tag v{version}"
    return f"appkit-runtime~={version}"


def _requirement_problems(service: Service) -> list[str]:
    """The service's pyproject must require the runtime of its template version."""
    version = service.template_version
    pyproject = service.root / "pyproject.toml"
    if not version or not pyproject.is_file():
        return []
    wanted = {"~=": version, "@": f"v{version}"}
    found = {
        ("~=", match["pin"]) if match["pin"] else ("@", match["ref"])
        for match in _REQUIREMENT.finditer(pyproject.read_text())
    }
    return [
        f"pyproject.toml requires appkit-runtime{op}{ref} but the template version is {version}"
        for op, ref in sorted(found)
        if ref != wanted[op]
    ]


def _compatible(runtime: str, version: str) -> bool:
    """Whether `runtime` satisfies `~=version`, as the service's pyproject requires."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        return SpecifierSet(f"~={version}").contains(Version(runtime), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return False
