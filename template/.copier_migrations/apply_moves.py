"""Copier migration, run after every `copier update --trust`: moved files keep the team's edits.

Copier deletes a file the new template no longer renders, edits and all, and renders the new
path from scratch. For each move in `moves.py` between the two versions this script merges
the team's last committed `old` (base: the old version's rendering) into the new `new`, with
the same inline conflict markers as copier. Copier's update starts from a clean tree, so
`HEAD` holds exactly what the team had. Usage: `apply_moves.py ANSWERS_FILE` in the service.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from moves import MOVES
from packaging.version import Version

LABELS = ("before updating", "last update", "after updating")


def due_moves(old: Version, new: Version) -> list[tuple[str, str]]:
    """The moves of every version after `old` up to `new`, oldest first."""
    versions = sorted((Version(v), v) for v in MOVES)
    return [move for version, key in versions if old < version <= new for move in MOVES[key]]


def committed(path: str) -> bytes | None:
    """The content of `path` (relative to the service) at HEAD, or None when not tracked."""
    shown = subprocess.run(["git", "show", f"HEAD:./{path}"], capture_output=True)
    return shown.stdout if shown.returncode == 0 else None


def committed_files(path: str) -> list[str]:
    """The files tracked at HEAD at `path` or under it, relative to the service."""
    command = ["git", "ls-tree", "-r", "--name-only", "HEAD", "--", path]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.split("\n")[
        :-1
    ]


def pairs(old: str, new: str) -> Iterator[tuple[str, str]]:
    """Each tracked file under `old` with the path it moves to under `new`."""
    for name in committed_files(old):
        yield name, new + name.removeprefix(old)


def render_old(answers: dict[str, object], into: Path) -> None:
    """Render the version the service was at, with its answers: the base of every merge."""
    import copier

    data = {key: value for key, value in answers.items() if not key.startswith("_")}
    copier.run_copy(
        str(answers["_src_path"]),
        into,
        data=data,
        vcs_ref=str(answers["_commit"]),
        defaults=True,
        quiet=True,
        unsafe=True,
        skip_tasks=True,
    )


def carry(old: str, new: str, base_tree: Path) -> str:
    """Move the team's `old` onto the template's `new`, merged three-way; say what happened."""
    if committed(new) is not None:
        # The team already had a file at the new path: keep both, touch neither.
        Path(old).write_bytes(committed(old) or b"")
        return f"kept {old}: {new} already existed in the service; move it by hand"
    team = committed(old) or b""
    target = Path(new)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(team)
        Path(old).unlink(missing_ok=True)
        return f"moved {old} -> {new}"
    base = base_tree / old
    with tempfile.TemporaryDirectory() as scratch:
        ours, theirs = Path(scratch, "ours"), Path(scratch, "theirs")
        ours.write_bytes(team)
        theirs.write_bytes(target.read_bytes())
        base_file = base if base.is_file() else Path(scratch, "empty")
        if not base_file.exists():
            base_file.write_bytes(b"")
        labels = [arg for label in LABELS for arg in ("-L", label)]
        merged = subprocess.run(["git", "merge-file", *labels, ours, base_file, theirs])
        if merged.returncode < 0:
            raise SystemExit(f"apply_moves: git merge-file failed on {old} -> {new}")
        target.write_bytes(ours.read_bytes())
    Path(old).unlink(missing_ok=True)
    conflicts = merged.returncode
    return f"moved {old} -> {new}" + (f" with {conflicts} conflict(s)" if conflicts else "")


def main(answers_file: str) -> int:
    moves = due_moves(
        Version(os.environ["VERSION_PEP440_FROM"]), Version(os.environ["VERSION_PEP440_TO"])
    )
    if not moves:
        return 0
    import yaml

    answers = yaml.safe_load(committed(answers_file) or b"{}")
    with tempfile.TemporaryDirectory() as scratch:
        base_tree = Path(scratch, "old")
        render_old(answers, base_tree)
        for old, new in moves:
            for old_file, new_file in pairs(old.format_map(answers), new.format_map(answers)):
                print(carry(old_file, new_file, base_tree))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
