"""The Alembic head a new revision goes after, read from the revision files without importing
them (or Alembic): fast, and safe on a service that does not start."""

from __future__ import annotations

import ast
from pathlib import Path

from scaffold.errors import Conflict


def revisions(versions: Path) -> dict[str, tuple[str, ...]]:
    """Each revision id in `versions/*.py` with the ids it revises."""
    found: dict[str, tuple[str, ...]] = {}
    for path in sorted(versions.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except (OSError, SyntaxError, ValueError) as error:
            raise Conflict(f"cannot read the migration {path.name}: {error}") from error
        values = _assigned(tree)
        revision = values.get("revision")
        if not isinstance(revision, str):
            continue
        down = values.get("down_revision")
        if isinstance(down, str):
            found[revision] = (down,)
        elif isinstance(down, list | tuple):
            found[revision] = tuple(str(item) for item in down)
        else:
            found[revision] = ()
    return found


def head(versions: Path, where: str) -> str | None:
    """The one head revision (`None` when there is no revision); `Conflict` for several."""
    known = revisions(versions)
    revised = {parent for parents in known.values() for parent in parents}
    heads = sorted(set(known) - revised)
    if len(heads) > 1:
        raise Conflict(
            f"{where} has several Alembic heads ({', '.join(heads)}): "
            "join them first with `alembic merge heads`"
        )
    return heads[0] if heads else None


def next_revision(current: str | None, taken: set[str]) -> str:
    """`0002` after `0001` (numbered ids stay numbered), else a random 12-digit hex id."""
    if current is None:
        return "0001"
    if current.isdigit():
        candidate = str(int(current) + 1).zfill(len(current))
        if candidate not in taken:
            return candidate
    import uuid

    return uuid.uuid4().hex[-12:]


def _assigned(tree: ast.Module) -> dict[str, object]:
    values: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names, value = [node.target.id], node.value
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            value = node.value
        else:
            continue
        try:
            literal = ast.literal_eval(value) if value is not None else None
        except ValueError:
            continue
        for name in names:
            values[name] = literal
    return values
