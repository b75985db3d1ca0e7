"""check, for a service's CI: a clean service passes; each planted problem is listed."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import git, git_init, git_save
from tests.scaffold.conftest import Result

Scaffold = Callable[..., Result]

MISORDERED = '''"""A limiter without a key before it: the runtime's order check must catch it."""

from __future__ import annotations

from appkit_runtime.fastapi import ProjectRateLimiter
from fastapi import APIRouter, Depends

router = APIRouter()


@router.get("/unguarded", dependencies=[Depends(ProjectRateLimiter())])
async def unguarded() -> dict[str, str]:
    return {}
'''


def test_a_clean_service_passes(scaffold: Scaffold, service: Path) -> None:
    git_init(service)
    # An endpoint added by the scaffold is in order too.
    assert scaffold("add-endpoint", "orders", "--project-dir", service).code == 0

    result = scaffold("check", "--project-dir", service)

    assert result.code == 0, result.out + result.err
    assert result.out == "check: no problems\n"


def test_every_planted_problem_is_listed(scaffold: Scaffold, service: Path) -> None:
    # A mis-ordered route, registered the way add-endpoint does it.
    routers = service / "src" / "shop" / "routers"
    (routers / "unguarded.py").write_text(MISORDERED)
    registry = routers / "__init__.py"
    registry.write_text(
        registry.read_text()
        .replace("import items\n", "import items, unguarded\n")
        .replace("    items.router,\n", "    items.router,\n    unguarded.router,\n")
    )
    # A merge left half done, in a tracked file.
    readme = service / "README.md"
    readme.write_text(
        readme.read_text() + "<<<<<<< before updating\nold\n=======\nnew\n>>>>>>> after updating\n"
    )
    lines = readme.read_text().count("\n")
    # Answers from a template version this runtime does not match.
    answers = service / ".copier-answers.yml"
    answers.write_text(answers.read_text().replace("_commit: v", "_commit: v9.9.9\nwas: v"))
    git_init(service)

    result = scaffold("check", "--project-dir", service)

    assert result.code == 1
    problems = result.out.splitlines()
    assert f"README.md:{lines - 4}: conflict marker <<<<<<<" in problems
    assert f"README.md:{lines}: conflict marker >>>>>>>" in problems
    assert (
        "route GET /unguarded: ProjectRateLimiter runs without AuthenticateKey before it; "
        "use dependencies=protected()"
    ) in problems
    assert any(
        line.startswith("runtime ") and "template version 9.9.9" in line for line in problems
    )
    assert any(line.startswith("pyproject.toml requires appkit-runtime@v") for line in problems)
    assert problems[-1] == f"check: {len(problems) - 1} problem(s)"


def test_untracked_files_are_searched_and_ignored_ones_are_not(
    scaffold: Scaffold, service: Path
) -> None:
    git_init(service)
    # A file the team has not added yet (an upgrade's moved file is one) is searched...
    (service / "notes.txt").write_text("<<<<<<< mine\n")
    # ...what the service's .gitignore ignores is not.
    (service / "build").mkdir()
    (service / "build" / "generated.txt").write_text("<<<<<<< generated\n")

    result = scaffold("check", "--project-dir", service)

    assert result.code == 1
    assert result.out.splitlines() == [
        "notes.txt:1: conflict marker <<<<<<<",
        "check: 1 problem(s)",
    ]


def test_markers_in_latin_1_and_crlf_files_are_listed_and_binary_files_skipped(
    scaffold: Scaffold, service: Path
) -> None:
    git_init(service)
    # git merge-file merges bytes: a team's Latin-1 or CRLF file keeps its encoding and endings.
    (service / "notes.txt").write_bytes(b"caf\xe9\n<<<<<<< mine\nA\n=======\nB\n>>>>>>> new\n")
    (service / "win.txt").write_bytes(b"<<<<<<<\r\nA\r\n=======\r\nB\r\n>>>>>>>\r\n")
    (service / "logo.bin").write_bytes(b"\x00\x01\n<<<<<<< not text\n")

    result = scaffold("check", "--project-dir", service)

    assert result.code == 1
    assert result.out.splitlines() == [
        "notes.txt:2: conflict marker <<<<<<<",
        "notes.txt:6: conflict marker >>>>>>>",
        "win.txt:1: conflict marker <<<<<<<",
        "win.txt:5: conflict marker >>>>>>>",
        "check: 4 problem(s)",
    ]


def test_a_file_left_unmerged_lists_each_marker_once(scaffold: Scaffold, service: Path) -> None:
    # A real merge that stops on a conflict: git lists README.md once per stage (three times).
    git_init(service)
    readme = service / "README.md"
    git("checkout", "--quiet", "-b", "theirs", cwd=service)
    readme.write_text("theirs\n" + readme.read_text())
    git_save(service, "theirs")
    git("checkout", "--quiet", "-", cwd=service)
    readme.write_text("ours\n" + readme.read_text())
    git_save(service, "ours")
    with pytest.raises(subprocess.CalledProcessError):
        git("-c", "merge.conflictStyle=merge", "merge", "theirs", cwd=service)
    assert git("status", "--porcelain", cwd=service) == "UU README.md\n"

    result = scaffold("check", "--project-dir", service)

    assert result.code == 1
    assert result.out.splitlines() == [
        "README.md:1: conflict marker <<<<<<<",
        "README.md:5: conflict marker >>>>>>>",
        "check: 2 problem(s)",
    ]


def test_a_missing_answers_file_is_a_problem(scaffold: Scaffold, tmp_path: Path) -> None:
    result = scaffold("check", "--project-dir", tmp_path)

    assert result.code == 1
    assert result.out.splitlines() == [
        f".copier-answers.yml is missing in {tmp_path} and above it",
        "check: 1 problem(s)",
    ]


def test_a_service_that_does_not_import_is_a_problem(scaffold: Scaffold, service: Path) -> None:
    (service / "src" / "shop" / "main.py").write_text("raise RuntimeError('broken on purpose')\n")

    result = scaffold("check", "--project-dir", service)

    assert result.code == 1
    assert "cannot import shop.main:app: RuntimeError: broken on purpose" in result.out


def test_an_untagged_template_commit_compares_no_version(scaffold: Scaffold, service: Path) -> None:
    # Rendered from a commit that is no vX.Y.Z tag (a checkout's HEAD): no version to compare.
    answers = service / ".copier-answers.yml"
    answers.write_text(answers.read_text().replace("_commit: v", "_commit: 8b5365d\nwas: v"))
    git_init(service)

    result = scaffold("check", "--project-dir", service)

    assert result.code == 0, result.out
    assert result.out == (
        "check: .copier-answers.yml records template commit '8b5365d', no vX.Y.Z tag: "
        "the runtime's version is not compared\n"
        "check: no problems\n"
    )


@pytest.mark.parametrize(
    ("requirement", "wanted"),
    [
        ('"appkit-runtime[embedded]~=1.4.0"', "appkit-runtime~=1.4.0"),
        (
            '"appkit-runtime[embedded] @ git+https://example.org/appkit.git@v1.3.0"',
            "appkit-runtime from the template repository at tag v1.4.0",
        ),
    ],
)
def test_a_runtime_mismatch_names_the_requirement_in_the_services_own_form(
    tmp_path: Path, requirement: str, wanted: str
) -> None:
    from scaffold.check import _wanted_runtime
    from scaffold.project import Service

    (tmp_path / "pyproject.toml").write_text(f"[project]\ndependencies = [{requirement}]\n")
    assert _wanted_runtime(Service(tmp_path, {}), "1.4.0") == wanted
