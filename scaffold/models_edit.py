"""Add a model class to `models.py` with a syntax-tree edit (libcst).

The class goes at the end, its imports join the import block where `ruff`'s isort puts them
(existing `from x import ...` statements gain the missing names), and `__all__` gains the class
name. Comments, blank lines and the order of everything else are left as they were.
"""

from __future__ import annotations

import sys
from typing import Any

from scaffold.errors import Conflict, UsageProblem
from scaffold.registry import _bound_names, _fit, _sorted_position, _with_item


def add_model(
    source: str,
    package: str,
    model: str,
    table: str,
    class_code: str,
    imports: list[str],
    where: str,
) -> str:
    """`source` with the class appended and `imports` (lines of Python) added; `Conflict` if the
    model or table name is taken."""
    import libcst as cst

    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as error:
        raise Conflict(f"cannot parse {where}: {error.message}") from error
    classes = {node.name.value for node in module.body if isinstance(node, cst.ClassDef)}
    if model in classes:
        raise Conflict(f"{model!r} is already taken in {where}: pick another resource name")
    imported = {line.split()[-1] for line in imports} | {"Mapped", "mapped_column", "Base"}
    if model in _bound_names(module) | imported:
        raise UsageProblem(
            f"bad resource name: its model {model!r} is a name {where} binds for its own use, "
            "pick another"
        )
    if table in _table_names(module):
        raise Conflict(f"table {table!r} is already declared in {where}: pick another --plural")
    body = list(module.body)
    for line in imports:
        body = _with_import_line(body, cst.parse_statement(line + "\n"), package)
    body = _with_exported(body, model)
    new_class = cst.parse_statement(class_code)
    body.append(new_class.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()]))
    return module.with_changes(body=body).code


def _table_names(module: Any) -> set[str]:
    """The `__tablename__` of every top-level class."""
    import ast

    names = set()
    for node in ast.parse(module.code).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for statement in node.body:
            if isinstance(statement, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "__tablename__"
                for target in statement.targets
            ):
                if isinstance(statement.value, ast.Constant):
                    names.add(str(statement.value.value))
    return names


def _import_key(statement: Any, package: str) -> tuple[int, tuple[int, str]] | None:
    """(section, order in the section) as isort sorts it; `None` for other statements."""
    import libcst as cst

    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    small = statement.body[0]
    if isinstance(small, cst.ImportFrom) and small.module is not None and not small.relative:
        module, straight = cst.Module([]).code_for_node(small.module), 1
    elif isinstance(small, cst.Import):
        module, straight = cst.Module([]).code_for_node(small.names[0].name), 0
    else:
        return None
    root = module.split(".")[0]
    if root == "__future__":
        section = 0
    elif root in sys.stdlib_module_names:
        section = 1
    elif root == package:
        section = 3
    else:
        section = 2
    return section, (straight, module.lower())


def _with_import_line(body: list[Any], new: Any, package: str) -> list[Any]:
    """`body` with the import statement `new`, unless it (or its names) are there already."""
    import libcst as cst

    new_small = new.body[0]
    code = cst.Module([]).code_for_node
    entries = []
    for index, statement in enumerate(body):
        key = _import_key(statement, package)
        if key is None:
            if entries:
                break
            continue
        entries.append((index, key))
        small = statement.body[0]
        if code(small) == code(new_small):
            return body
        if isinstance(small, cst.ImportFrom) and isinstance(new_small, cst.ImportFrom):
            if code(small.module) == code(new_small.module) and not isinstance(
                small.names, cst.ImportStar
            ):
                return _with_names(body, index, [code(a.name) for a in new_small.names])
    key = _import_key(new, package) or (2, (0, ""))
    same = [(i, k) for i, k in entries if k[0] == key[0]]
    if same:
        bigger = next(((i, k) for i, k in same if k > key), None)
        if bigger is None:
            at = same[-1][0] + 1
            return [*body[:at], new, *body[at:]]
        at = bigger[0]
        leading = body[at].leading_lines if at == same[0][0] else []
        body[at] = body[at].with_changes(leading_lines=[]) if leading else body[at]
        return [*body[:at], new.with_changes(leading_lines=leading), *body[at:]]
    later = [i for i, k in entries if k[0] > key[0]]
    if later:
        at = later[0]
    else:
        at = entries[-1][0] + 1 if entries else _after_docstring(body)
    return [*body[:at], new.with_changes(leading_lines=[cst.EmptyLine()]), *body[at:]]


def _with_names(body: list[Any], index: int, names: list[str]) -> list[Any]:
    """The `from x import ...` at `index` with every name of `names` it lacks."""
    import libcst as cst

    code = cst.Module([]).code_for_node
    statement = body[index]
    for name in names:
        small = statement.body[0]
        present = [code(alias.name) for alias in small.names]
        if name in present:
            continue
        position = _sorted_position(present, name)
        grown = _with_item(small, cst.ImportAlias(cst.Name(name)), position, "paren")
        statement = _fit(statement.with_changes(body=[grown]), "paren")
    body[index] = statement
    return body


def _after_docstring(body: list[Any]) -> int:
    import libcst as cst

    first = body[0] if body else None
    if isinstance(first, cst.SimpleStatementLine) and isinstance(first.body[0], cst.Expr):
        if isinstance(first.body[0].value, cst.SimpleString | cst.ConcatenatedString):
            return 1
    return 0


def _with_exported(body: list[Any], model: str) -> list[Any]:
    """`__all__ = [...]` with `"<model>"` at its end, when the module has such a list."""
    import libcst as cst

    for index, statement in enumerate(body):
        if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
            continue
        small = statement.body[0]
        if not (isinstance(small, cst.Assign) and len(small.targets) == 1):
            continue
        target = small.targets[0].target
        if isinstance(target, cst.Name) and target.value == "__all__":
            if not isinstance(small.value, cst.List):
                return body
            entry = cst.Element(cst.SimpleString(f'"{model}"'))
            listed = _with_item(small.value, entry, len(small.value.elements), "bracket")
            body[index] = _fit(
                statement.with_changes(body=[small.with_changes(value=listed)]), "bracket"
            )
            return body
    return body
