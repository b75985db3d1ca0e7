"""The endpoint snippets `appkit-scaffold add-endpoint` renders: the contract it relies on.

`template/.snippets/router.py.jinja` and `test_router.py.jinja` take `name`, `method`, `path`,
`public`, `rate_limit` ("N/S" or None) and `scopes`, and import the macros the example
endpoint is built from. Rendered into a service and registered, their tests pass at once.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2

from tests.helpers import ServiceVenv, passed

RUFF = Path(sys.executable).parent / "ruff"

ENDPOINTS: list[dict[str, Any]] = [
    {"name": "orders", "method": "POST", "path": "/orders"},
    {
        "name": "order",
        "method": "get",
        "path": "/orders/{order_id}",
        "rate_limit": "4/60",
        "scopes": ["orders:read"],
    },
    {
        "name": "order_line_with_a_rather_long_name_for_an_endpoint",
        "method": "DELETE",
        "path": "/orders/{order_id}/lines/{line_id}",
        "scopes": ["orders:write", "lines:write"],
    },
    {"name": "status", "method": "GET", "path": "/status", "public": True},
]


def render_snippet(template_repo: Path, snippet: str, **context: Any) -> str:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_repo),
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    context = {"public": False, "rate_limit": None, "scopes": [], **context}
    return environment.get_template(f"template/.snippets/{snippet}").render(**context)


def register(registry: Path, package: str, name: str) -> None:
    """What add-endpoint's syntax-tree edit does, done here as text."""
    text = registry.read_text()
    head, _, tail = text.partition("\nrouters: list[APIRouter] = [\n")
    import_line = f"from {package}.routers import {name}\n"
    listed = f"routers: list[APIRouter] = [\n    {name}.router,\n"
    registry.write_text(f"{head}{import_line}\n{listed}{tail}")


def test_snippet_endpoints_pass_ruff_and_their_own_tests(
    service_factory: Callable[..., Path], service_venv: ServiceVenv, template_repo: Path
) -> None:
    # A fresh service, then four endpoints written from the snippets and registered.
    service = service_factory(package_name="snippets")
    package = service / "src" / "snippets"
    for endpoint in ENDPOINTS:
        name = endpoint["name"]
        router = render_snippet(template_repo, "router.py.jinja", **endpoint)
        tests = render_snippet(template_repo, "test_router.py.jinja", **endpoint)
        (package / "routers" / f"{name}.py").write_text(router)
        (service / "tests" / f"test_{name}.py").write_text(tests)
        register(package / "routers" / "__init__.py", "snippets", name)

    # Lint-clean as written: ruff sorts the registry's imports, nothing else changes.
    subprocess.run([RUFF, "check", "--fix", "-q", "src/snippets/routers/__init__.py"], cwd=service)
    for args in (["check"], ["format", "--check"]):
        run = subprocess.run([RUFF, *args, "."], cwd=service, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr
    # The protected routes carry their options.
    order = (package / "routers" / "order.py").read_text()
    assert 'protected(scopes=("orders:read",), max_requests=4, expiry=60)' in order
    assert "protected" not in (package / "routers" / "status.py").read_text()

    service_venv.install(service)
    run = service_venv.run("pytest", "-p", "no:cacheprovider", cwd=service)

    # 11 example tests, 3 health tests, 4 for each protected endpoint, 1 for the public one.
    assert passed(run) == 27
