"""What an update did to a service, read from git: files moved, updated, in conflict, skipped.

Copier prints no summary of an update, so `appkit-scaffold upgrade` compares the service's
work tree with its last commit (an update starts from a clean tree, so that is the state the
update started from).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFLICT_START = b"<<<<<<< "
_KINDS = {"A": "added", "D": "removed", "M": "modified", "T": "modified", "U": "modified"}


def git(*args: str, cwd: Path) -> str:
    """Run git in `cwd` and return its output; a failure raises `CalledProcessError`."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


def conflict_lines(path: Path) -> list[int]:
    """The 1-based numbers of the lines that open a conflict (`<<<<<<< `) in `path`."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return []
    return [number for number, line in enumerate(lines, 1) if line.startswith(CONFLICT_START)]


def changed_files(root: Path) -> dict[str, str]:
    """Every file of the service that differs from its last commit: `{path: kind}`."""
    changes: dict[str, str] = {}
    diff = git("diff", "--name-status", "--no-renames", "--relative", "HEAD", cwd=root)
    for line in diff.splitlines():
        status, _, path = line.partition("\t")
        changes[path] = _KINDS.get(status[:1], "modified")
    for path in git("ls-files", "--others", "--exclude-standard", cwd=root).splitlines():
        changes[path] = "added"
    return dict(sorted(changes.items()))


def committed_text(root: Path, path: str) -> str | None:
    """The text of `path` (relative to `root`) at HEAD, or None when it is not tracked."""
    shown = subprocess.run(["git", "show", f"HEAD:./{path}"], cwd=root, capture_output=True)
    return shown.stdout.decode("utf-8", "replace") if shown.returncode == 0 else None


def answer_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """`key: old -> new` for every answer the update changed, added or dropped."""
    changes = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if key not in before:
            changes.append(f"{key}: (new) {new}")
        elif key not in after:
            changes.append(f"{key}: {old} (dropped)")
        elif old != new:
            changes.append(f"{key}: {old} -> {new}")
    return changes


@dataclass
class Summary:
    """What an update changed in one service; `lines()` is what the team reads."""

    moves: list[str] = field(default_factory=list)
    updated: dict[str, str] = field(default_factory=dict)
    conflicts: dict[str, list[int]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"files moved ({len(self.moves)})"]
        out += [f"  {move}" for move in self.moves]
        out.append(f"files updated ({len(self.updated)})")
        out += [f"  {kind:<9}{path}" for path, kind in self.updated.items()]
        count = sum(map(len, self.conflicts.values()))
        hint = ": resolve the <<<<<<< markers, then commit" if count else ""
        out.append(f"conflicts ({count}){hint}")
        out += [f"  {path}:{line}" for path, lines in self.conflicts.items() for line in lines]
        out.append(
            f"files skipped ({len(self.skipped)}): yours, never updated; they differ from the "
            "new template's"
        )
        out += [f"  {path}" for path in self.skipped]
        if self.kept:
            out.append(f"files kept ({len(self.kept)}): the template dropped them, yours has edits")
            out += [f"  {path}" for path in self.kept]
        out.append(f"answers changed ({len(self.answers)})")
        out += [f"  {change}" for change in self.answers]
        return out


def summarize(
    root: Path,
    answers_file: str,
    fresh: Path,
    is_skipped: Callable[[Path], bool],
    old_answers: Mapping[str, Any],
) -> Summary:
    """Compare the updated service at `root` with its last commit and with `fresh`.

    `fresh` is the new version rendered from scratch with the same answers; a file it has that
    `is_skipped(path)` says the team owns, and that differs from the team's, was skipped.
    """
    import yaml

    summary = Summary()
    for path, kind in changed_files(root).items():
        if path == answers_file:
            continue
        lines = conflict_lines(root / path)
        if lines:
            summary.conflicts[path] = lines
        else:
            summary.updated[path] = kind
    for rendered in sorted(p for p in fresh.rglob("*") if p.is_file()):
        path = rendered.relative_to(fresh).as_posix()
        mine = root / path
        if is_skipped(Path(path)) and mine.is_file() and path not in summary.updated:
            if mine.read_bytes() != rendered.read_bytes():
                summary.skipped.append(path)
    new_answers = yaml.safe_load((root / answers_file).read_text(encoding="utf-8")) or {}
    summary.answers = answer_changes(old_answers, new_answers)
    return summary
