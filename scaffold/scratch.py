"""Where copier's throwaway files go during `appkit-scaffold upgrade`.

An update clones the template repository five times and renders the service three times, all
in temporary folders; creating those files is most of its time where the disk is slow (on the
bench machine, 2.1 to 2.8 s of an update on disk against 1.0 to 1.1 s in memory). So the
upgrade puts them in a memory-backed folder when the machine has one with room to spare, and
leaves a `TMPDIR` the user chose alone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

MEMORY_FOLDER = Path("/dev/shm")
# Five clones of a template repository with a long history can take a few hundred MiB.
MIN_FREE_BYTES = 1 << 30


def memory_scratch(
    environ: Mapping[str, str] = os.environ,
    folder: Path = MEMORY_FOLDER,
    min_free: int = MIN_FREE_BYTES,
) -> Path | None:
    """`folder` when temporary files may go there: no `TMPDIR` set, writable, enough free."""
    if environ.get("TMPDIR") or not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return None
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    return folder if free >= min_free else None


@contextmanager
def temporary_files_in(folder: Path | None) -> Iterator[None]:
    """Inside the block, `tempfile` (and so copier) makes its folders in `folder`, if given."""
    if folder is None:
        yield
        return
    before = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield
    finally:
        tempfile.tempdir = before
