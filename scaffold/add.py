"""`add-endpoint`: plan every file in memory, refuse any conflict, then write all or nothing."""

from __future__ import annotations

from pathlib import Path

from scaffold.endpoint import Endpoint, render_endpoint
from scaffold.errors import Conflict
from scaffold.project import Service, template_source
from scaffold.registry import register_router
from scaffold.routes import route_key, routed
from scaffold.writes import FileChange, check_unchanged, write_all


def plan_endpoint(service: Service, endpoint: Endpoint) -> list[FileChange]:
    """The router module, its tests and the registry edit; `Conflict` if anything is in the way."""
    endpoint.check()
    registry = service.registry
    where = service.relative(registry)
    if not registry.is_file():
        raise Conflict(f"{where} is missing: this service has no router registry to edit")
    router_file = registry.parent / f"{endpoint.name}.py"
    tests_file = service.root / "tests" / f"test_{endpoint.name}.py"
    if not tests_file.parent.is_dir():
        raise Conflict(f"{service.relative(tests_file.parent)}/ is missing")
    before = registry.read_text(encoding="utf-8")
    after = register_router(before, service.package_name, endpoint.name, where)
    router, tests = render_endpoint(template_source(), endpoint)
    changes = [
        FileChange(router_file, router),
        FileChange(tests_file, tests),
        FileChange(registry, after, before),
    ]
    check_unchanged(changes, labels(service, changes))
    sources = sorted(set(registry.parent.glob("*.py")) - {registry})
    existing = routed([*sources, service.package_dir / "main.py"])
    owner = existing.get(route_key(endpoint.method, endpoint.route_path), False)
    if owner is not False:
        place = service.relative(owner) if owner else "the runtime"
        raise Conflict(f"{endpoint.method} {endpoint.route_path} is already routed in {place}")
    return changes


def labels(service: Service, changes: list[FileChange]) -> dict[Path, str]:
    return {change.path: service.relative(change.path) for change in changes}


def print_dry_run(changes: list[FileChange], label: dict[Path, str]) -> None:
    """Each new file with its size, then a unified diff of each edit."""
    for change in changes:
        if change.before is None:
            lines = change.after.count("\n")
            print(f"would write {label[change.path]} (new, {lines} lines)")
    for change in changes:
        if change.before is not None:
            print(f"would edit {label[change.path]}:")
            print(change.diff(label[change.path]), end="")
    print("dry run: no file was written")


def add_endpoint(service: Service, endpoint: Endpoint, dry_run: bool) -> int:
    """Write (or with `dry_run` only show) the endpoint; return the exit code."""
    changes = plan_endpoint(service, endpoint)
    label = labels(service, changes)
    if dry_run:
        print_dry_run(changes, label)
        return 0
    write_all(changes, label)
    route = f"{endpoint.method} {endpoint.route_path}"
    access = "public" if endpoint.public else "protected"
    print(f"added {endpoint.name}: {route} ({access})")
    for change in changes:
        print(f"  {'edited' if change.before is not None else 'wrote '} {label[change.path]}")
    return 0
