"""Register a router in `routers/__init__.py` with a syntax-tree edit (libcst).

Only two nodes change: the `from <package>.routers import ...` statement gains the name (in
sorted place, one statement as ruff's isort wants it) and the `routers` list gains
`<name>.router` at its end. Comments, blank lines and order elsewhere are left as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from scaffold.errors import Conflict, UsageProblem

if TYPE_CHECKING:
    import libcst as cst

LINE_LENGTH = 100
INDENT = "    "


def register_router(source: str, package: str, name: str, where: str) -> str:
    """`source` with router `name` registered; `Conflict` when the name is taken."""
    import libcst as cst

    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as error:
        raise Conflict(f"cannot parse {where}: {error.message}") from error
    if name in _registered(module, package):
        raise Conflict(f"{name!r} is already taken in {where}: pick another endpoint name")
    if name in _bound_names(module):
        raise UsageProblem(
            f"bad endpoint name {name!r}: {where} binds it for its own use, pick another"
        )
    body = list(module.body)
    index = _routers_statement(body)
    if index is None:
        raise Conflict(f"{where} has no `routers = [...]` list to register {name!r} in")
    line = body[index]
    assert isinstance(line, cst.SimpleStatementLine)
    assignment = line.body[0]
    assert isinstance(assignment, cst.Assign | cst.AnnAssign)
    entry = cst.Element(cst.Attribute(cst.Name(name), cst.Name("router")))
    listed = _with_item(assignment.value, entry, len(assignment.value.elements), "bracket")
    body[index] = _fit(line.with_changes(body=[assignment.with_changes(value=listed)]), "bracket")
    body = _with_import(body, index, package, name)
    return module.with_changes(body=body).code


def _bound_names(module: cst.Module) -> set[str]:
    """Names the module binds at its top level."""
    import libcst as cst

    names: set[str] = set()
    for statement in module.body:
        if isinstance(statement, cst.FunctionDef | cst.ClassDef):
            names.add(statement.name.value)
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            if isinstance(small, cst.Import | cst.ImportFrom) and not isinstance(
                small.names, cst.ImportStar
            ):
                for alias in small.names:
                    bound = alias.asname.name if alias.asname else alias.name
                    code = cst.Module([]).code_for_node(bound)
                    names.add(code.split(".")[0])
            targets: list[Any] = []
            if isinstance(small, cst.Assign):
                targets = [target.target for target in small.targets]
            elif isinstance(small, cst.AnnAssign):
                targets = [small.target]
            names.update(target.value for target in targets if isinstance(target, cst.Name))
    return names


def _registered(module: cst.Module, package: str) -> set[str]:
    """The routers the registry imports from `<package>.routers`."""
    import libcst as cst

    names: set[str] = set()
    for statement in module.body:
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                if _imports_from(small, f"{package}.routers"):
                    names.update(_alias_name(alias) for alias in small.names)
    return names


def _routers_statement(body: Sequence[cst.CSTNode]) -> int | None:
    """Index of the top-level `routers = [...]` (annotated or not)."""
    import libcst as cst

    for index, statement in enumerate(body):
        if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
            continue
        small = statement.body[0]
        if isinstance(small, cst.AnnAssign):
            target = small.target
        elif isinstance(small, cst.Assign) and len(small.targets) == 1:
            target = small.targets[0].target
        else:
            continue
        if isinstance(target, cst.Name) and target.value == "routers":
            if isinstance(small.value, cst.List):
                return index
    return None


def _with_import(body: list[Any], before: int, package: str, name: str) -> list[Any]:
    """Add `name` to `from <package>.routers import ...`, or add that statement."""
    import libcst as cst

    module_name = f"{package}.routers"
    last_import = None
    for index, statement in enumerate(body[:before]):
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            if not isinstance(small, cst.Import | cst.ImportFrom):
                continue
            last_import = index
            if _imports_from(small, module_name) and len(statement.body) == 1:
                alias = cst.ImportAlias(cst.Name(name))
                position = _sorted_position([_alias_name(a) for a in small.names], name)
                grown = _with_item(small, alias, position, "paren")
                body[index] = _fit(statement.with_changes(body=[grown]), "paren")
                return body
    new_line = cst.parse_statement(f"from {module_name} import {name}\n")
    first_party = last_import is not None and _module_of(body[last_import]).startswith(package)
    if last_import is not None and not first_party:
        new_line = new_line.with_changes(leading_lines=[cst.EmptyLine()])
    at = last_import + 1 if last_import is not None else before
    return [*body[:at], new_line, *body[at:]]


def _imports_from(small: Any, module_name: str) -> bool:
    import libcst as cst

    return (
        isinstance(small, cst.ImportFrom)
        and not small.relative
        and small.module is not None
        and cst.Module([]).code_for_node(small.module) == module_name
        and not isinstance(small.names, cst.ImportStar)
    )


def _module_of(statement: Any) -> str:
    import libcst as cst

    small = statement.body[0]
    if isinstance(small, cst.ImportFrom) and small.module is not None:
        return cst.Module([]).code_for_node(small.module)
    if isinstance(small, cst.Import):
        return cst.Module([]).code_for_node(small.names[0].name)
    return ""


def _alias_name(alias: Any) -> str:
    import libcst as cst

    return cst.Module([]).code_for_node(alias.name)


def _sorted_position(names: list[str], name: str) -> int:
    """Where isort puts `name`: before the first name that sorts after it."""

    def key(member: str) -> tuple[int, str]:
        kind = 0 if member.isupper() and len(member) > 1 else 1 if member[0].isupper() else 2
        return kind, member.lower()

    return next((i for i, member in enumerate(names) if key(member) > key(name)), len(names))


def _with_item(node: Any, item: Any, position: int, brackets: str) -> Any:
    """`node` (a list or an import) with `item` inserted at `position`, in its layout."""
    import libcst as cst

    field = "elements" if brackets == "bracket" else "names"
    items = list(getattr(node, field))
    opening, closing = _brackets(node, brackets)
    if not items:
        return _exploded(node, brackets, [item])
    if opening is None or "\n" not in cst.Module([]).code_for_node(node):
        items.insert(position, item)
        return node.with_changes(**{field: _one_line(items)})
    indent = _indent(opening)
    if position < len(items):
        items.insert(
            position, item.with_changes(comma=cst.Comma(whitespace_after=_newline(indent)))
        )
        return node.with_changes(**{field: items})
    # libcst keeps the line break (and comments) before the closing bracket on the bracket:
    # the last item's trailing comment stays with it, own-line comments stay at the end.
    last = items[-1]
    tail = closing.whitespace_before
    comma = last.comma if isinstance(last.comma, cst.Comma) else cst.Comma()
    if isinstance(tail, cst.ParenthesizedWhitespace):
        between = tail.with_changes(empty_lines=[], indent=True, last_line=_space(indent))
        items[-1] = last.with_changes(comma=comma.with_changes(whitespace_after=between))
        items.append(item.with_changes(comma=last.comma))
        closing = closing.with_changes(
            whitespace_before=tail.with_changes(first_line=cst.TrailingWhitespace())
        )
    else:
        items[-1] = last.with_changes(comma=cst.Comma(whitespace_after=_newline(indent)))
        items.append(item.with_changes(comma=last.comma))
    if brackets == "bracket":
        return node.with_changes(elements=items, rbracket=closing)
    return node.with_changes(names=items, rpar=closing)


def _brackets(node: Any, brackets: str) -> tuple[Any, Any]:
    if brackets == "bracket":
        return node.lbracket, node.rbracket
    return node.lpar, node.rpar


def _indent(opening: Any) -> str:
    import libcst as cst

    whitespace = opening.whitespace_after
    if isinstance(whitespace, cst.ParenthesizedWhitespace):
        return whitespace.last_line.value
    return INDENT


def _space(text: str) -> Any:
    import libcst as cst

    return cst.SimpleWhitespace(text)


def _newline(last_line: str) -> Any:
    import libcst as cst

    return cst.ParenthesizedWhitespace(indent=True, last_line=cst.SimpleWhitespace(last_line))


def _one_line(items: list[Any]) -> list[Any]:
    import libcst as cst

    last = len(items) - 1
    return [
        item.with_changes(
            comma=cst.MaybeSentinel.DEFAULT
            if i == last
            else cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        )
        for i, item in enumerate(items)
    ]


def _exploded(node: Any, brackets: str, items: list[Any]) -> Any:
    """One item a line with a trailing comma, as `ruff format` lays out a long line."""
    import libcst as cst

    field = "elements" if brackets == "bracket" else "names"
    laid = [item.with_changes(comma=cst.Comma(whitespace_after=_newline(INDENT))) for item in items]
    laid[-1] = laid[-1].with_changes(comma=cst.Comma(whitespace_after=_newline("")))
    if brackets == "bracket":
        opening = node.lbracket.with_changes(whitespace_after=_newline(INDENT))
        closing = node.rbracket.with_changes(whitespace_before=cst.SimpleWhitespace(""))
        return node.with_changes(elements=laid, lbracket=opening, rbracket=closing)
    opening = cst.LeftParen(whitespace_after=_newline(INDENT))
    return node.with_changes(**{field: laid, "lpar": opening, "rpar": cst.RightParen()})


def _fit(line: cst.SimpleStatementLine, brackets: str) -> cst.SimpleStatementLine:
    """`line` exploded one item a line when it no longer fits in `LINE_LENGTH` columns."""
    import libcst as cst

    small = line.body[0]
    code = cst.Module([]).code_for_node(small)
    if "\n" in code or len(code) <= LINE_LENGTH:
        return line
    if brackets == "bracket":
        value = small.value
        return line.with_changes(
            body=[small.with_changes(value=_exploded(value, brackets, list(value.elements)))]
        )
    return line.with_changes(body=[_exploded(small, brackets, list(small.names))])
