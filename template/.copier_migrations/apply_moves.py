"""Copier migration, run after every `copier update --trust`: moved files keep the team's edits.

Copier deletes a file the new template no longer renders, edits and all, and renders the new
path from scratch. The moves in `moves.py` between the two versions compose: a file renamed by
several versions is followed to its last path, where the team's last committed version (base:
the old version's rendering) is merged into the new one, with copier's inline conflict markers.
Copier's update starts from a clean tree, so `HEAD` holds exactly what the team had. Usage:
`apply_moves.py ANSWERS_FILE` in the service. Each move is reported on stdout, or appended to
the file `$APPKIT_MOVES_REPORT` names (how `appkit-scaffold upgrade` puts it in its report).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from moves import MOVES
from packaging.version import Version

LABELS = ("before updating", "last update", "after updating")
REPORT_FILE = "APPKIT_MOVES_REPORT"


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
    command = ["git", "ls-tree", "-r", "-z", "--name-only", "HEAD", "--", path]
    listed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return [name for name in listed.split("\0") if name]


def moved_path(path: str, old: str, new: str) -> str | None:
    """Where the move `old -> new` (a file or a folder) takes `path`; None if it does not."""
    old, new = old.rstrip("/"), new.rstrip("/")
    if path == old:
        return new
    if path.startswith(old + "/"):
        return new + path[len(old) :]
    return None


def routes(moves: list[tuple[str, str]]) -> tuple[dict[str, str], dict[str, str]]:
    """Each tracked file the moves concern, followed through them in order to its last path.

    Returns `{HEAD path: final path}`, and `{HEAD path: path it could not take}` for each file
    stopped by a path that holds the team's own file (where a stepwise update stops it too).
    """
    at: dict[str, str] = {}  # HEAD path -> where the moves so far have taken it
    stopped: dict[str, str] = {}
    for old, new in moves:
        for name in committed_files(old):
            at.setdefault(name, name)
        for origin, current in list(at.items()):
            target = moved_path(current, old, new)
            if target is None or origin in stopped:
                continue
            taken = target in at.values() or (target not in at and committed(target) is not None)
            if taken:
                stopped[origin] = target
            else:
                at[origin] = target
    return {origin: final for origin, final in at.items() if final != origin}, stopped


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
    return f"moved {old} -> {new}"


def keep(old: str) -> None:
    """Put the team's `old` back where it was (copier deleted it if the old version rendered it)."""
    Path(old).parent.mkdir(parents=True, exist_ok=True)
    Path(old).write_bytes(committed(old) or b"")


def report(lines: list[str]) -> None:
    """Append `lines` to the file `$APPKIT_MOVES_REPORT` names, or print them."""
    destination = os.environ.get(REPORT_FILE)
    if not destination:
        print("\n".join(lines))
        return
    with open(destination, "a", encoding="utf-8") as out:
        out.writelines(f"{line}\n" for line in lines)


def main(answers_file: str) -> int:
    moves = due_moves(
        Version(os.environ["VERSION_PEP440_FROM"]), Version(os.environ["VERSION_PEP440_TO"])
    )
    if not moves:
        return 0
    import yaml

    answers = yaml.safe_load(committed(answers_file) or b"{}")
    moved, stopped = routes(
        [(old.format_map(answers), new.format_map(answers)) for old, new in moves]
    )
    lines = []
    if moved:
        with tempfile.TemporaryDirectory() as scratch:
            base_tree = Path(scratch, "old")
            render_old(answers, base_tree)
            lines += [carry(old, new, base_tree) for old, new in moved.items()]
    for old, taken in stopped.items():
        if old not in moved:
            keep(old)
        where = moved.get(old, old)
        lines.append(f"kept {where}: {taken} already existed in the service; move it by hand")
    if lines:
        report(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
