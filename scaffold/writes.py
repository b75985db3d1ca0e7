"""All-or-nothing writes: every file is written, or every file is put back as it was."""

from __future__ import annotations

import contextlib
import difflib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from scaffold.errors import Conflict


@dataclass(frozen=True)
class FileChange:
    """One file to write: `before` is its text now, `None` for a new file."""

    path: Path
    after: str
    before: str | None = None

    def diff(self, label: str) -> str:
        """A unified diff of the change, with `label` as the file's name."""
        lines = difflib.unified_diff(
            (self.before or "").splitlines(keepends=True),
            self.after.splitlines(keepends=True),
            fromfile=f"a/{label}" if self.before is not None else "/dev/null",
            tofile=f"b/{label}",
        )
        return "".join(lines)


def check_unchanged(changes: list[FileChange], label: dict[Path, str]) -> None:
    """`Conflict` unless every new file is still absent and every edited one as it was read."""
    for change in changes:
        if change.before is None and change.path.exists():
            raise Conflict(f"{label[change.path]} already exists")
        if change.before is not None and _read(change.path) != change.before:
            raise Conflict(f"{label[change.path]} changed while it was being edited")


def write_all(changes: list[FileChange], label: dict[Path, str]) -> None:
    """Write every change, each atomically; on any failure restore those already written."""
    check_unchanged(changes, label)
    done: list[FileChange] = []
    try:
        for change in changes:
            _write_atomically(change.path, change.after, create=change.before is None)
            done.append(change)
    except OSError as error:
        for change in reversed(done):
            _restore(change)
        reason = error.strerror or str(error)
        raise Conflict(
            f"cannot write {label[changes[len(done)].path]}: {reason}; no file was changed"
        ) from error


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _write_atomically(path: Path, text: str, create: bool) -> None:
    """A new file is created exclusively; an edited one is replaced by a renamed sibling."""
    if create:
        stream = path.open("x", encoding="utf-8", newline="")
        try:
            with stream:
                stream.write(text)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return
    mode = path.stat().st_mode & 0o7777
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _restore(change: FileChange) -> None:
    if change.before is None:
        change.path.unlink(missing_ok=True)
    else:
        _write_atomically(change.path, change.before, create=False)
