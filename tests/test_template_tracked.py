"""No ignore rule of this repository hides a template file, so a release ships all of them.

A release is a git tag: a file under `template/` that git ignores is silently left out of it.
Caches are the exception (copier's `_exclude` drops them from services anyway).
"""

from __future__ import annotations

import subprocess

from tests.helpers import ROOT

TEMPLATE = ROOT / "template"
CACHES = ("__pycache__", ".pyc", ".pyo", ".pyd")


def ignored(paths: list[str]) -> list[str]:
    """Those of `paths` (relative to the repository) that git would ignore."""
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        cwd=ROOT,
        input="\n".join(paths) + "\n",
        capture_output=True,
        text=True,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: none of them is ignored
    return done.stdout.splitlines()


def is_cache(path: str) -> bool:
    return any(part in path for part in CACHES)


def test_no_file_under_template_is_ignored() -> None:
    files = [
        path.relative_to(ROOT).as_posix() for path in sorted(TEMPLATE.rglob("*")) if path.is_file()
    ]

    assert "template/.copier_migrations/apply_moves.py" in files
    assert [path for path in ignored(files) if not is_cache(path)] == []


def test_no_ignore_rule_matches_a_path_a_template_could_hold() -> None:
    # A path under template/ for every rule of the root ignore file and of the services' own
    # (the likeliest names for a template file: build/, .env, *.db, ...).
    rules = (ROOT / ".gitignore").read_text() + (TEMPLATE / ".gitignore.jinja").read_text()
    probes = []
    for rule in rules.splitlines():
        rule = rule.strip()
        if not rule or rule.startswith(("#", "!", "/template/")):
            continue
        name = rule.strip("/").replace("*", "x").replace("[cod]", "c")
        probe = f"template/{name}/file" if rule.endswith("/") else f"template/{name}"
        if not is_cache(probe):
            probes.append(probe)
    assert "template/build/file" in probes and "template/.env" in probes

    assert ignored(probes) == []


def test_the_template_holds_no_gitignore_of_its_own() -> None:
    # template/.gitignore would apply to the template in this repository, not only to the
    # services it renders; .gitignore.jinja renders to the same file and ignores nothing here.
    assert not [path for path in TEMPLATE.rglob(".gitignore") if not is_cache(str(path))]
