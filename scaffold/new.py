"""`new`: render a service from the template shipped with appkit-runtime, via Copier's API."""

from __future__ import annotations

from pathlib import Path

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


def new_service(dest: Path, data: dict[str, str], vcs_ref: str | None = None) -> int:
    """Render the template into `dest` (absent or empty); return the exit code."""
    import copier

    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise Conflict(f"{dest} exists and is not an empty folder")
    source = template_source()
    answers = {"project_name": dest.resolve().name, **data}
    # A git checkout of appkit renders its HEAD (the runtime installed from it); the packaged
    # copy is no repository, so Copier renders it as it is.
    ref = vcs_ref or ("HEAD" if (source / ".git").exists() else None)
    try:
        copier.run_copy(
            str(source), dest, data=answers, defaults=True, vcs_ref=ref, unsafe=True, quiet=True
        )
    except ValueError as error:
        if dest.exists() and not any(dest.iterdir()):
            dest.rmdir()
        raise UsageProblem(str(error).splitlines()[0]) from error
    print(f"new service in {dest}: cd {dest} && pip install -e '.[dev]' && pytest")
    return 0
