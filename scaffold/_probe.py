"""Run by `check` in a child process: import a service's app and report, as JSON, its routes'
chain problems (the runtime's own check) and the runtime version it runs on.

Usage: python -m scaffold._probe SRC_DIR PACKAGE
"""

from __future__ import annotations

import copy
import importlib
import json
import sys
from types import SimpleNamespace
from typing import Any


def probe(src: str, package: str) -> dict[str, object]:
    sys.path.insert(0, src)
    from appkit_runtime import __version__

    report: dict[str, object] = {"runtime_version": __version__, "problems": [], "error": None}
    try:
        app = importlib.import_module(f"{package}.main").app
        from appkit_runtime.fastapi.route_order import route_order_problems

        report["problems"] = route_order_problems(flattened(app))
    except Exception as error:  # any import failure is a problem to list, not a crash
        report["error"] = f"{type(error).__name__}: {error}"
    return report


def flattened(app: Any) -> Any:
    """`app` with every included router's routes listed, each with its effective dependencies.

    FastAPI 0.165 and later include routers lazily: `app.routes` then holds one entry per
    included router, which a walk over `app.routes` alone would never look into.
    """
    try:
        from fastapi.routing import APIRoute, iter_route_contexts
    except ImportError:
        return app
    routes = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        dependant = getattr(context, "dependant", None)
        if isinstance(route, APIRoute) and dependant is not None:
            route = copy.copy(route)
            route.path, route.dependant = context.path, dependant
        routes.append(route)
    return SimpleNamespace(routes=routes)


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1], sys.argv[2])))
