"""`new`: render a service from the template shipped with appkit-runtime, via Copier's API."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from appkit_runtime import __version__
from scaffold.errors import Conflict, UsageProblem
from scaffold.project import template_source


def parse_data(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`["database=sqlite"]` gives `{"database": "sqlite"}`; a pair without `=` is bad usage."""
    data = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageProblem(f"bad --data {pair!r}: use KEY=VALUE, such as database=sqlite")
        data[key.strip()] = value
    return data


def new_service(
    dest: Path, data: dict[str, str], vcs_ref: str | None = None, template: str | None = None
) -> int:
    """Render the template into `dest` (absent or empty); return the exit code.

    With `template` (appkit's git repository, a URL or a path) the service is rendered from its
    tag for the installed runtime, which the answers record, so `copier update` can follow later
    versions. Without it, from the template this installation carries.
    """
    import copier
    from copier.errors import CopierError
    from plumbum import ProcessExecutionError

    try:
        in_the_way = dest.exists() and (not dest.is_dir() or any(dest.iterdir()))
    except OSError as error:  # a name too long for the file system, a folder it cannot read
        raise UsageProblem(f"bad DEST {_short(dest)}: {error.strerror}") from None
    if in_the_way:
        raise Conflict(f"{dest} exists and is not an empty folder")
    if template:
        source, ref = _recordable(template), vcs_ref or f"v{__version__}"
    else:
        packaged = template_source()
        # A git checkout of appkit renders its HEAD (the runtime installed from it); the
        # packaged copy is no repository, so Copier renders it as it is.
        source, ref = str(packaged), vcs_ref or ("HEAD" if (packaged / ".git").exists() else None)
    answers = {"project_name": dest.resolve().name, **data}
    try:
        copier.run_copy(
            source, dest, data=answers, defaults=True, vcs_ref=ref, unsafe=True, quiet=True
        )
    except ValueError as error:
        _remove_if_empty(dest)
        if str(error).startswith("Unknown revision"):
            raise UsageProblem(f"{source} has no {ref}: tag it, or pass --vcs-ref") from None
        raise UsageProblem(str(error).strip().splitlines()[0]) from None
    except (CopierError, ProcessExecutionError) as error:
        _remove_if_empty(dest)
        raise UsageProblem(f"cannot render {source} at {ref}: {_first_line(error)}") from None
    print(
        f"new service in {dest}: cd {shlex.quote(str(dest))} && pip install -e '.[dev]' && pytest"
    )
    if ref is None:
        print(
            "note: rendered from the template this installation carries, which is no git "
            "repository, so copier cannot update the service; for one it can, pass --template "
            "with appkit's repository (or set APPKIT_TEMPLATE)",
            file=sys.stderr,
        )
    return 0


def _short(dest: Path) -> str:
    """`dest` quoted, its first 40 characters only when it is longer."""
    text = str(dest)
    return repr(text) if len(text) <= 40 else f"{text[:40]!r}... ({len(text)} characters)"


def _recordable(template: str) -> str:
    """A local template path made absolute: copier records it, and a relative one would be
    resolved from the service's folder by every later update."""
    local = Path(template).expanduser()
    return str(local.resolve()) if local.exists() else template


def _remove_if_empty(dest: Path) -> None:
    if dest.exists() and not any(dest.iterdir()):
        dest.rmdir()


def _first_line(error: Exception) -> str:
    """The line of a copier or git failure that says what went wrong."""
    text = str(getattr(error, "stderr", "") or error).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return (fatal or lines or [type(error).__name__])[0]
