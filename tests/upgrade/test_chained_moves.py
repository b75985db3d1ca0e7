"""Moves compose: a file renamed by two versions reaches its last path with the team's edits.

Three template versions, each a tag of one throwaway repository: v1 is the working tree's
template, v2 moves `Makefile` to `tools/Makefile`, v3 moves that to `make/Makefile` and edits
it. v1 and v2 are release candidates of the runtime's version and v3 is that version, so that
`check` finds the runtime it requires once the conflict is resolved.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scaffold.check import check
from scaffold.upgrade import upgrade
from tests.helpers import build_template_repo, git, git_init, git_save, render_service
from tests.helpers import runtime_version as current_runtime
from tests.upgrade.conftest import edit, tree

RUNTIME = current_runtime()
V1, V2, V3 = f"{RUNTIME}rc1", f"{RUNTIME}rc2", RUNTIME
MOVES = "template/.copier_migrations/moves.py"
VERSION_FILE = "appkit_runtime/_version.py"

# The team's two edits of its Makefile: v3 changes the first line too, not the second.
TEAM_TEST = "test:  ## TEAM: the whole suite\n"
TEAM_FORMAT = "format:  ## TEAM: fix what ruff can\n"
V3_TEST = "test:  ## v3: the service's tests\n"
V3_DEV = "dev:  ## v3: serve with reload, on .env\n"
CONFLICT = [
    "<<<<<<< before updating",
    TEAM_TEST.rstrip("\n"),
    "=======",
    V3_TEST.rstrip("\n"),
    ">>>>>>> after updating",
]


def release(repo: Path, version: str, moves: str) -> None:
    """Set the version file and `MOVES`, commit everything and tag `v<version>`."""
    text = (repo / VERSION_FILE).read_text()
    (repo / VERSION_FILE).write_text(
        re.sub(r'__version__ = "[^"]+"', f'__version__ = "{version}"', text)
    )
    text = (repo / MOVES).read_text()
    start = text.index("MOVES: dict")
    (repo / MOVES).write_text(text[:start] + f"MOVES: dict[str, list[tuple[str, str]]] = {moves}\n")
    git_save(repo, f"template v{version}", tag=f"v{version}")


@pytest.fixture
def three_versions(tmp_path: Path) -> Path:
    """The template repository, with services `direct` and `stepwise` rendered from v1."""
    appkit = build_template_repo(tmp_path / "appkit", tag="working-tree")
    git("tag", "-d", "working-tree", cwd=appkit)
    release(appkit, V1, "{}")
    for name in ("direct", "stepwise"):
        service = render_service(appkit, tmp_path / name / "svc", package_name="svc")
        git_init(service, "service from template v1")
        edit(service / "Makefile", "test:\n", TEAM_TEST)
        edit(service / "Makefile", "format:\n", TEAM_FORMAT)
        git_save(service, "team edits")
    template = appkit / "template"
    (template / "tools").mkdir()
    (template / "Makefile.jinja").rename(template / "tools" / "Makefile.jinja")
    moved_v2 = f'{{"{V2}": [("Makefile", "tools/Makefile")]}}'
    release(appkit, V2, moved_v2)
    makefile = template / "make" / "Makefile.jinja"
    makefile.parent.mkdir()
    (template / "tools" / "Makefile.jinja").rename(makefile)
    edit(makefile, "test:\n", V3_TEST)
    edit(makefile, "dev:  ## run with reload on the settings in .env\n", V3_DEV)
    release(appkit, V3, moved_v2[:-1] + f', "{V3}": [("tools/Makefile", "make/Makefile")]}}')
    return tmp_path


def section(report: list[str], title: str) -> list[str]:
    """The lines listed under the report line that starts with `title`."""
    start = next(n for n, line in enumerate(report) if line.startswith(title))
    listed = []
    for line in report[start + 1 :]:
        if not line.startswith("  "):
            break
        listed.append(line.strip())
    return listed


def test_direct_and_stepwise_upgrades_carry_the_team_edits_to_the_last_path(
    three_versions: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    direct, stepwise = three_versions / "direct" / "svc", three_versions / "stepwise" / "svc"
    before = tree(direct), git("rev-parse", "HEAD", cwd=direct)
    capfd.readouterr()

    # The dry run changes nothing and prints the report only, which says what would move.
    assert upgrade(direct, to=None, dry_run=True) == 1
    dry = capfd.readouterr().out.splitlines()
    assert (tree(direct), git("rev-parse", "HEAD", cwd=direct)) == before
    assert git("status", "--porcelain", "--ignored", cwd=direct) == ""
    assert dry[0] == f"dry run: {direct} left as it is; upgrading it to v{V3} would give"
    assert all(line.startswith("  ") or line[0].isalpha() for line in dry[1:])
    assert not any(line.startswith("moved ") for line in dry)

    # Straight from v1 to v3: the report is the dry run's, and the conflict is there once.
    assert upgrade(direct, to=None, dry_run=False) == 1
    real = capfd.readouterr().out.splitlines()
    assert real[0] == f"upgraded {direct} to v{V3}"
    assert real[1:] == dry[1:]
    assert section(real, "files moved") == ["moved Makefile -> make/Makefile"]
    assert section(real, "files updated") == ["removed  Makefile", "modified pyproject.toml"]
    start = (direct / "make" / "Makefile").read_text().splitlines().index(CONFLICT[0]) + 1
    assert "conflicts (1): resolve the <<<<<<< markers, then commit" in real
    assert section(real, "conflicts") == [f"make/Makefile:{start}"]

    # One version at a time: v2 moves the file cleanly, the team commits, v3 conflicts.
    assert upgrade(stepwise, to=f"v{V2}", dry_run=False) == 0
    first = capfd.readouterr().out.splitlines()
    assert section(first, "files moved") == ["moved Makefile -> tools/Makefile"]
    git_save(stepwise, "template v2")
    assert upgrade(stepwise, to=None, dry_run=False) == 1
    second = capfd.readouterr().out.splitlines()
    assert section(second, "files moved") == ["moved tools/Makefile -> make/Makefile"]
    assert section(second, "conflicts") == [f"make/Makefile:{start}"]

    # Both ways give the same bytes: the team's edits at the last path, v3's changes merged,
    # the colliding line as one conflict, and no file a fresh copy of v3 lacks.
    assert tree(direct) == tree(stepwise)
    makefile = (direct / "make" / "Makefile").read_text()
    lines = makefile.splitlines()
    assert lines[start - 1 : start + 4] == CONFLICT
    assert makefile.count("<<<<<<< ") == 1
    assert TEAM_FORMAT in makefile and V3_DEV in makefile
    fresh = render_service(
        three_versions / "appkit", three_versions / "fresh" / "svc", package_name="svc"
    )
    assert tree(direct).keys() == tree(fresh).keys()

    # `check` lists each marker of the moved (untracked) file once, until it is resolved.
    assert check(direct) == 1
    problems = capfd.readouterr().out.splitlines()
    assert problems == [
        f"make/Makefile:{start}: conflict marker <<<<<<<",
        f"make/Makefile:{start + 4}: conflict marker >>>>>>>",
        "check: 2 problem(s)",
    ]
    resolved = makefile.replace("\n".join(CONFLICT) + "\n", TEAM_TEST)
    (direct / "make" / "Makefile").write_text(resolved)
    assert check(direct) == 0
    assert capfd.readouterr().out == "check: no problems\n"
