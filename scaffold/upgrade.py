"""`appkit-scaffold upgrade`: `copier update` with inline conflicts, and a summary of what changed.

Refuses a service with uncommitted changes (the update merges against the last commit, and a
clean tree is what makes it reviewable and undoable). `--dry-run` upgrades a git clone of the
service (a snapshot of its files outside git) in a temporary folder and reports the same,
leaving the service as it is. Exit codes:
0 upgraded cleanly, 1 conflicts remain, 2 refused or failed (the service is left as it was).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scaffold.errors import ScaffoldError
from scaffold.project import ANSWERS_FILE, find_service, read_answers
from scaffold.scratch import memory_scratch, temporary_files_in
from scaffold.upgrade_summary import Summary, git, summarize

REFUSED = 2
# The variable `template/.copier_migrations/apply_moves.py` reads for where to report moves.
MOVES_REPORT = "APPKIT_MOVES_REPORT"
# A template source that names the same place from any folder: a URL, a copier shortcut, an
# scp-like ssh address, or an absolute (or home-relative) path.
_LOCATED = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|gh:|gl:|[\w.-]+@[\w.-]+:|/|~)")


class Refusal(ScaffoldError):
    """The upgrade did not run, or was undone: one line, exit 2."""

    exit_code = REFUSED


def upgrade(project_dir: Path, to: str | None, dry_run: bool) -> int:
    """Upgrade the service at or above `project_dir` to template tag `to` (default: latest)."""
    try:
        service = find_service(project_dir)
        _check_recorded(service.answers)
        if dry_run and _work_tree(service.root) is None:
            return _dry_run_unversioned(service.root, to)
        repository = _check_clean(service.root)
        if dry_run:
            return _dry_run(service.root, repository, to)
        summary = _update(service.root, to, service.answers)
    except ScaffoldError as refusal:
        print(refusal, file=sys.stderr)
        return REFUSED
    print(f"upgraded {service.root} to {_commit(service.root)}")
    return _report(summary)


def _report(summary: Summary) -> int:
    print("\n".join(summary.lines()))
    return 1 if summary.conflicts else 0


def _check_recorded(answers: dict[str, Any]) -> None:
    """Refuses a service whose answers name no template commit: copier could not update it."""
    if not answers.get("_commit"):
        raise Refusal(
            f"refusing to upgrade: {ANSWERS_FILE} records no _commit, so the service was "
            "rendered from a template copy that is no git repository; set _src_path to "
            "appkit's repository and _commit to the vX.Y.Z its appkit-runtime~= pin names, "
            "commit, and retry"
        )
    source = str(answers.get("_src_path", ""))
    if not _LOCATED.match(source):
        raise Refusal(
            f"refusing to upgrade: {ANSWERS_FILE} records _src_path {source!r}, a relative path "
            "copier would resolve from the service's folder; set it to appkit's absolute path "
            "or URL, commit, and retry"
        )


def _work_tree(root: Path) -> Path | None:
    """The top of the git work tree that holds `root`, or None outside any."""
    try:
        return Path(git("rev-parse", "--show-toplevel", cwd=root).strip())
    except subprocess.CalledProcessError:
        return None


def _check_clean(root: Path) -> Path:
    """The git work tree that holds `root`; refuses when there is none or it has changes."""
    top = _work_tree(root)
    if top is None:
        raise Refusal(
            f"refusing to upgrade: {root} is not in a git repository "
            "(copier merges through git: git init, then commit everything)"
        )
    changes = git("status", "--porcelain", "--", ".", cwd=root).splitlines()
    if changes:
        raise Refusal(
            f"refusing to upgrade: {root} has {len(changes)} uncommitted change(s); "
            "commit or stash them first"
        )
    return top


def _update(root: Path, to: str | None, old_answers: dict[str, Any]) -> Summary:
    """Run the update in `root`; on any failure put every file back and refuse."""
    import copier
    from copier.errors import CopierError
    from plumbum import ProcessExecutionError, local

    try:
        with (
            temporary_files_in(memory_scratch()),
            tempfile.TemporaryDirectory(prefix="appkit-upgrade-") as scratch,
        ):
            # The move script writes what it moved here, for the report, not to the terminal.
            moves_file = Path(scratch) / "moves"
            moves_file.touch()
            with local.env(**{MOVES_REPORT: str(moves_file)}):
                copier.run_update(
                    root,
                    conflict="inline",
                    overwrite=True,
                    unsafe=True,
                    vcs_ref=to,
                    defaults=True,
                    quiet=True,
                )
            moves = moves_file.read_text(encoding="utf-8").splitlines()
            kept = _keep_edited_removals(root, old_answers, moves, Path(scratch) / "old")
            fresh, is_skipped = _render_fresh(root, Path(scratch) / "fresh")
            summary = summarize(root, ANSWERS_FILE, fresh, is_skipped, old_answers)
            summary.moves, summary.kept = moves, kept
            return summary
    except (
        CopierError,
        subprocess.CalledProcessError,
        ProcessExecutionError,
        OSError,
        ValueError,
    ) as error:
        _restore(root)
        raise Refusal(f"upgrade failed, nothing changed: {_reason(error)}") from None


def _reason(error: Exception) -> str:
    """The line that says what went wrong: git's `fatal:` line when git failed, else the first."""
    stderr = str(getattr(error, "stderr", "") or "")
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    if fatal:
        return fatal[0]
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _keep_edited_removals(
    root: Path, old_answers: dict[str, Any], moves: list[str], into: Path
) -> list[str]:
    """Put back each file the update deleted (the template dropped it) that the team had edited.

    Copier deletes a dropped file whatever it holds; the team's edits stay, for it to decide.
    Returns the paths put back. Files the move script carried elsewhere are not concerned.
    """
    moved = {line.split(" ", 1)[1].split(" -> ")[0] for line in moves if line.startswith("moved ")}
    deleted = git("diff", "--name-only", "-z", "--relative", "--diff-filter=D", "HEAD", cwd=root)
    removed = [path for path in deleted.split("\0") if path and path not in moved]
    if not removed:
        return []
    _render(old_answers, str(old_answers["_commit"]), into)
    kept = []
    for path in removed:
        team = subprocess.run(["git", "show", f"HEAD:./{path}"], cwd=root, capture_output=True)
        base = into / path
        if not base.is_file() or base.read_bytes() != team.stdout:
            git("checkout", "HEAD", "--", path, cwd=root)
            kept.append(path)
    return kept


def _render(answers: dict[str, Any], ref: str, into: Path) -> Any:
    """The template at `ref` rendered with the service's `answers`; copier's worker."""
    import copier

    data = {key: value for key, value in answers.items() if not key.startswith("_")}
    return copier.run_copy(
        str(answers["_src_path"]),
        into,
        data=data,
        vcs_ref=ref,
        defaults=True,
        quiet=True,
        unsafe=True,
        skip_tasks=True,
    )


def _render_fresh(root: Path, into: Path) -> tuple[Path, Callable[[Path], bool]]:
    """The new version rendered from scratch with the service's new answers, and its skip test."""
    answers = read_answers(root / ANSWERS_FILE)
    worker = _render(answers, str(answers["_commit"]), into)
    return into, worker.match_skip


def _restore(root: Path) -> None:
    """Put the service back to its last commit (it was clean when the update started)."""
    for args in (
        ("reset", "-q", "--", "."),
        ("checkout", "-q", "HEAD", "--", "."),
        ("clean", "-fdq", "--", "."),
    ):
        subprocess.run(["git", *args], cwd=root, capture_output=True)


def _commit(root: Path) -> str:
    return str(read_answers(root / ANSWERS_FILE).get("_commit"))


def _dry_run(root: Path, repository: Path, to: str | None) -> int:
    """Upgrade a clone of the service's repository and report; the service is not touched."""
    with tempfile.TemporaryDirectory(prefix="appkit-upgrade-dry-run-") as scratch:
        clone = Path(scratch) / "service"
        try:
            head = git("rev-parse", "HEAD", cwd=repository).strip()
            git("clone", "--quiet", "--no-checkout", str(repository), str(clone), cwd=repository)
            git("checkout", "--quiet", head, cwd=clone)
        except subprocess.CalledProcessError as error:
            raise Refusal(f"dry run failed: cannot clone {repository}: {error.stderr}") from None
        copy = clone / root.resolve().relative_to(repository.resolve())
        summary = _update(copy, to, read_answers(copy / ANSWERS_FILE))
        print(f"dry run: {root} left as it is; upgrading it to {_commit(copy)} would give")
        return _report(summary)


def _dry_run_unversioned(root: Path, to: str | None) -> int:
    """Upgrade a committed snapshot of a service that is in no git repository yet (as the
    quick start leaves it) and report; the service is not touched and gets no `.git`."""
    with tempfile.TemporaryDirectory(prefix="appkit-upgrade-dry-run-") as scratch:
        copy = Path(scratch) / "service"
        copy.mkdir()
        snapshot = ("--git-dir", str(copy / ".git"), "--work-tree", str(root))
        author = ("-c", "user.name=appkit", "-c", "user.email=appkit@localhost")
        try:
            git("init", "--quiet", cwd=copy)
            git(*snapshot, "add", "--all", cwd=root)
            git(*author, *snapshot, "commit", "--quiet", "-m", "snapshot", cwd=root)
            git("reset", "--quiet", "--hard", cwd=copy)
        except subprocess.CalledProcessError as error:
            raise Refusal(f"dry run failed: cannot snapshot {root}: {error.stderr}") from None
        summary = _update(copy, to, read_answers(copy / ANSWERS_FILE))
        print(f"dry run: {root} left as it is; upgrading it to {_commit(copy)} would give")
        return _report(summary)
