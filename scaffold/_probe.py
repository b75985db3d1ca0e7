"""Run by `check` in a child process: import a service's app and report, as JSON, its routes'
chain problems (the runtime's own check) and the runtime version it runs on.

Usage: python -m scaffold._probe SRC_DIR PACKAGE
"""

from __future__ import annotations

import importlib
import json
import sys


def probe(src: str, package: str) -> dict[str, object]:
    sys.path.insert(0, src)
    from appkit_runtime import __version__

    report: dict[str, object] = {"runtime_version": __version__, "problems": [], "error": None}
    try:
        app = importlib.import_module(f"{package}.main").app
        from appkit_runtime.fastapi.route_order import route_order_problems

        report["problems"] = route_order_problems(app)
    except Exception as error:  # any import failure is a problem to list, not a crash
        report["error"] = f"{type(error).__name__}: {error}"
    return report


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1], sys.argv[2])))
