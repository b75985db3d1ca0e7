"""`add-resource`: plan the model, migration, router, tests and registration in memory, refuse
any conflict, then write all or nothing."""

from __future__ import annotations

from scaffold.add import labels, print_dry_run
from scaffold.alembic_heads import head, next_revision, revisions
from scaffold.errors import Conflict
from scaffold.models_edit import add_model
from scaffold.project import Service, template_source
from scaffold.registry import register_router
from scaffold.resource import Resource, render_resource
from scaffold.routes import route_key, routed
from scaffold.writes import FileChange, check_unchanged, write_all

# The routes, as (method, on one row rather than the collection).
ROUTES = (("GET", False), ("POST", False), ("GET", True), ("PATCH", True), ("DELETE", True))


def model_imports(resource: Resource, package: str) -> list[str]:
    """The import lines the model class needs in models.py."""
    types = {field.type for field in resource.fields}
    lines = ["import datetime"]
    lines += ["import decimal"] if "decimal" in types else []
    lines += ["import uuid"] if "uuid" in types else []
    lines += ["from typing import Any"] if "json" in types else []
    lines += ["import sqlalchemy as sa", "from sqlalchemy.orm import Mapped, mapped_column"]
    return [*lines, f"from {package}.db import Base"]


def plan_resource(service: Service, resource: Resource) -> list[FileChange]:
    """Every file to write or edit; `Conflict` if anything is in the way."""
    resource.check()
    package = service.package_name
    registry, models = service.registry, service.package_dir / "models.py"
    versions = service.root / "migrations" / "versions"
    tests = service.root / "tests"
    for needed in (registry, models):
        if not needed.is_file():
            raise Conflict(f"{service.relative(needed)} is missing: add-resource edits it")
    for folder in (versions, tests):
        if not folder.is_dir():
            raise Conflict(f"{service.relative(folder)}/ is missing")
    current = head(versions, service.relative(versions))
    revision = next_revision(current, set(revisions(versions)))
    files = render_resource(template_source(), resource.context(package, revision, current))
    models_before = models.read_text(encoding="utf-8")
    models_after = add_model(
        models_before,
        package,
        resource.model,
        resource.table,
        files["model"],
        model_imports(resource, package),
        service.relative(models),
    )
    registry_before = registry.read_text(encoding="utf-8")
    registry_after = register_router(
        registry_before, package, resource.table, service.relative(registry)
    )
    changes = [
        FileChange(versions / f"{revision}_create_{resource.table}.py", files["migration"]),
        FileChange(registry.parent / f"{resource.table}.py", files["router"]),
        FileChange(tests / f"test_{resource.table}.py", files["tests"]),
        FileChange(models, models_after, models_before),
        FileChange(registry, registry_after, registry_before),
    ]
    check_unchanged(changes, labels(service, changes))
    _check_routes(service, resource)
    return changes


def _check_routes(service: Service, resource: Resource) -> None:
    registry = service.registry
    sources = sorted(set(registry.parent.glob("*.py")) - {registry})
    existing = routed([*sources, service.package_dir / "main.py"])
    item = f"{resource.path}/{{{resource.name}_id}}"
    for method, on_row in ROUTES:
        path = item if on_row else resource.path
        owner = existing.get(route_key(method, path), False)
        if owner is not False:
            place = service.relative(owner) if owner else "the runtime"
            raise Conflict(f"{method} {path} is already routed in {place}")


def add_resource(service: Service, resource: Resource, dry_run: bool) -> int:
    """Write (or with `dry_run` only show) the resource; return the exit code."""
    changes = plan_resource(service, resource)
    label = labels(service, changes)
    if dry_run:
        print_dry_run(changes, label)
        return 0
    write_all(changes, label)
    access = "scoped" if resource.scoped else "protected"
    print(f"added {resource.name}: {resource.path} and {resource.path}/{{id}} ({access})")
    for change in changes:
        print(f"  {'edited' if change.before is not None else 'wrote '} {label[change.path]}")
    print("next: alembic upgrade head, then pytest")
    return 0
