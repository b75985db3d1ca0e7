"""Names a service's package cannot take, derived from metadata, for the template's validator.

A package named like a module the service imports (a dependency's, direct or indirect, or the
standard library's) shadows it or is shadowed, and a keyword cannot be imported at all. Copier
validators run Jinja only, so the list is written to `template/.snippets/taken_names.txt`
(`python -m scaffold.taken_names`) and a test checks that the file holds the derived names.
"""

from __future__ import annotations

import keyword
import pkgutil
import re
import sys
import sysconfig
from collections import deque
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
TAKEN_NAMES_FILE = ROOT / "template" / ".snippets" / "taken_names.txt"
SERVICE_PYPROJECT = ROOT / "template" / "pyproject.toml.jinja"
SERVICE_TESTS = ROOT / "template" / "tests"

# Top-level folders of every service, importable from its root as packages.
SERVICE_FOLDERS = {
    "tests": "is the service's tests folder",
    "migrations": "is the service's migrations folder",
}
# What `python -m venv` puts in the environment the service installs into: a distribution of the
# same name would replace it (`pip install -e .` of a service named pip uninstalls pip).
INSTALLERS = {
    "pip": "is the installer in the service's environment",
    "setuptools": "is installed in the service's environment by python -m venv",
}
# A service installs the runtime with these extras for development, whatever form its
# requirement takes in the template (a range, or a direct reference to a tag).
RUNTIME = Requirement("appkit-runtime[embedded,scaffold,testing]")
# A requirement's name and extras at the start of a quoted dependency string.
_REQUIREMENT = re.compile(r'^\s*"([A-Za-z0-9][A-Za-z0-9._-]*(?:\[[A-Za-z0-9_,\s-]*\])?)', re.M)
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


def tests_folder_modules(folder: Path = SERVICE_TESTS) -> dict[str, str]:
    """The modules of the service's `tests/`: pytest imports them as top-level names.

    `tests/` is no package, so pytest puts it on `sys.path` and imports `conftest` and each
    `test_*.py` under its bare name, hiding a package of that name (or hidden by it).
    """
    names = (re.sub(r"\{%.*?%\}", "", path.name) for path in folder.iterdir())
    modules = (name.removesuffix(".jinja") for name in names)
    why = "is a module of the service's tests folder"
    return {name.removesuffix(".py"): why for name in modules if name.endswith(".py")}


def stdlib_modules() -> set[str]:
    """`sys.stdlib_module_names`, plus what it leaves out but the stdlib folder holds (`test`)."""
    folder = sysconfig.get_paths()["stdlib"]
    return set(sys.stdlib_module_names) | {module.name for module in pkgutil.iter_modules([folder])}


def service_requirements(pyproject: str) -> list[Requirement]:
    """The distributions (with extras) a service's `pyproject.toml` template depends on."""
    found = []
    for text in _REQUIREMENT.findall(pyproject):
        try:
            found.append(Requirement(text))
        except InvalidRequirement:
            continue
    return found


def dependency_closure(roots: list[Requirement]) -> dict[str, str]:
    """Every installed distribution the roots need, directly or not: `{name: needed by}`."""
    needed_by: dict[str, str] = {}
    queue = deque((root, "") for root in roots)  # breadth first: direct ones say so
    while queue:
        requirement, parent = queue.popleft()
        name = canonicalize_name(requirement.name)
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        first_visit = name not in needed_by
        needed_by.setdefault(name, parent)
        extras = set(requirement.extras)
        if not first_visit and not extras:
            continue
        for line in distribution.requires or []:
            child = Requirement(line)
            marker = child.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in extras | {""}):
                if canonicalize_name(child.name) not in needed_by or child.extras:
                    queue.append((child, name))
    return needed_by


def _modules_of(distributions: set[str]) -> dict[str, str]:
    """`{top-level module: distribution}` for the installed distributions named."""
    modules: dict[str, str] = {}
    for module, owners in metadata.packages_distributions().items():
        for owner in owners:
            if canonicalize_name(owner) in distributions:
                modules.setdefault(module.lower(), canonicalize_name(owner))
    return modules


def taken_names(pyproject: str) -> dict[str, str]:
    """`{name: why}` for every package name that cannot work, why in a few words."""
    taken = {name: "is a Python keyword" for name in keyword.kwlist if name.islower()}
    taken.update(SERVICE_FOLDERS)
    taken.update(INSTALLERS)
    taken.update(tests_folder_modules())
    for name in sorted(stdlib_modules()):
        taken.setdefault(name, "is a standard-library module")
    needed_by = dependency_closure([RUNTIME, *service_requirements(pyproject)])
    for name, parent in sorted(needed_by.items()):
        why = f"is the dependency {name}" + (f" (of {parent})" if parent else "")
        taken.setdefault(name.replace("-", "_"), why)
    for module, owner in sorted(_modules_of(set(needed_by)).items()):
        parent = needed_by[owner]
        why = f"is a module of the dependency {owner}" + (f" (of {parent})" if parent else "")
        taken.setdefault(module, why)
    return {name: why for name, why in taken.items() if _IDENTIFIER.fullmatch(name)}


def render(taken: dict[str, str]) -> str:
    """The file's text: `name why` a line, sorted, under a header saying where it comes from."""
    header = "# Written by `python -m scaffold.taken_names`; copier.yml's validator reads it.\n"
    return header + "".join(f"{name} {taken[name]}\n" for name in sorted(taken))


def read(text: str) -> dict[str, str]:
    """The `{name: why}` a file written by `render` holds."""
    lines = (line.split(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {name: why for name, why in lines}


def main() -> None:
    taken = taken_names(SERVICE_PYPROJECT.read_text(encoding="utf-8"))
    TAKEN_NAMES_FILE.write_text(render(taken), encoding="utf-8")
    print(f"{TAKEN_NAMES_FILE}: {len(taken)} names")


if __name__ == "__main__":
    main()
