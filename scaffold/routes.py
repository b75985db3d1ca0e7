"""The routes a service already has, read from its source without importing it.

Reading (not importing) keeps add-endpoint fast and safe on a service that does not start.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

# The runtime's own routes, added by `get_fastapi_app` to every service.
RUNTIME_ROUTES = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}
_VERBS = {"get", "post", "put", "patch", "delete", "head", "options"}


def route_key(method: str, path: str) -> tuple[str, str]:
    """Routes that FastAPI would match alike compare equal: parameter names do not count."""
    return method.upper(), re.sub(r"\{[^{}]*\}", "{}", path)


def routed(sources: list[Path]) -> dict[tuple[str, str], Path | None]:
    """Each route key the files declare, with its file (`None` for the runtime's own)."""
    found: dict[tuple[str, str], Path | None] = {
        route_key(method, path): None for method, path in RUNTIME_ROUTES
    }
    for source in sources:
        try:
            tree = ast.parse(source.read_text(encoding="utf-8"), str(source))
        except (OSError, SyntaxError, ValueError):
            continue
        for method, path in _declared(tree):
            found.setdefault(route_key(method, path), source)
    return found


def _declared(tree: ast.Module) -> list[tuple[str, str]]:
    prefixes = _router_prefixes(tree)
    declared = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for decorator in node.decorator_list:
            if not (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)):
                continue
            owner = decorator.func.value
            prefix = prefixes.get(owner.id, "") if isinstance(owner, ast.Name) else ""
            path = _literal(decorator.args[0] if decorator.args else _keyword(decorator, "path"))
            if not isinstance(path, str):
                continue
            verb = decorator.func.attr
            if verb in _VERBS:
                declared.append((verb, prefix + path))
            elif verb == "api_route":
                methods = _literal(_keyword(decorator, "methods")) or ["GET"]
                declared.extend((str(method), prefix + path) for method in methods)
    return declared


def _router_prefixes(tree: ast.Module) -> dict[str, str]:
    """`name = APIRouter(prefix="/x")` gives `{"name": "/x"}`."""
    prefixes = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Call):
            prefix = _literal(_keyword(node.value, "prefix"))
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and isinstance(prefix, str):
                    prefixes[target.id] = prefix
    return prefixes


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def _literal(node: ast.expr | None) -> object:
    try:
        return ast.literal_eval(node) if node is not None else None
    except (ValueError, TypeError, SyntaxError):
        return None
