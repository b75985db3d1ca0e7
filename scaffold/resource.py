"""One resource to add: its names checked, and its model, migration, router and tests rendered
in memory from the template's snippets (`template/.snippets/resource_*.jinja`)."""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from pathlib import Path

from scaffold.endpoint import SNIPPETS
from scaffold.errors import UsageProblem
from scaffold.fields import MAX_NAME, Field

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_RATE_LIMIT = re.compile(r"[1-9][0-9]{0,6}/[1-9][0-9]{0,6}")
SNIPPET_FILES = {
    "model": "resource_model.py.jinja",
    "migration": "resource_migration.py.jinja",
    "router": "resource_router.py.jinja",
    "tests": "resource_tests.py.jinja",
}


def english_plural(name: str) -> str:
    """`item` → `items`, `address` → `addresses`, `category` → `categories`: the regular
    English plural of the name's last word (irregular ones are given with `--plural`)."""
    if name.endswith(("ss", "us", "x", "z", "ch", "sh")):
        return name + "es"
    if name.endswith("y") and name[-2:-1] not in ("a", "e", "i", "o", "u", "_", ""):
        return name[:-1] + "ies"
    return name + "s"


@dataclass(frozen=True)
class Resource:
    """What `add-resource` was asked for; `check()` refuses bad usage with one line."""

    name: str
    fields: list[Field]
    plural: str = ""
    scoped: bool = False
    rate_limit: str | None = None

    @property
    def table(self) -> str:
        return self.plural or english_plural(self.name)

    @property
    def model(self) -> str:
        """`order_item` gives `OrderItem`."""
        return "".join(part.capitalize() for part in self.name.split("_"))

    @property
    def path(self) -> str:
        return "/" + self.table.replace("_", "-")

    def check(self) -> None:
        """Raise `UsageProblem` naming the first bad name or option."""
        for what, value in (("name", self.name), ("plural", self.table)):
            if not _NAME.fullmatch(value) or len(value) > MAX_NAME or "__" in value:
                raise UsageProblem(
                    f"bad resource {what} {value!r}: use up to {MAX_NAME} lowercase letters, "
                    "digits and _, starting with a letter"
                )
            if keyword.iskeyword(value) or keyword.issoftkeyword(value):
                raise UsageProblem(f"bad resource {what} {value!r}: it is a Python keyword")
        if self.table == self.name:
            raise UsageProblem(f"bad plural {self.table!r}: it must differ from the name")
        if not self.plural and self.name.endswith("s") and not self.name.endswith(("ss", "us")):
            raise UsageProblem(
                f"resource name {self.name!r} ends in s: give the singular (add-resource "
                f"{self.name[:-1]} ...), or its plural with --plural if {self.name!r} is singular"
            )
        if self.model.endswith(("Create", "Update", "Out", "Page", "Id")):
            raise UsageProblem(
                f"bad resource name {self.name!r}: its model {self.model!r} would clash with the "
                "schema classes named after it"
            )
        if self.rate_limit is not None and not _RATE_LIMIT.fullmatch(self.rate_limit):
            raise UsageProblem(
                f"bad rate limit {self.rate_limit!r}: use N/S, N requests per S seconds, "
                "both at least 1, such as 10/60"
            )
        for column in self.fields:
            index_name = f"ix_{self.table}_{column.name}"
            if column.index and len(index_name) > 63:
                raise UsageProblem(
                    f"bad field {column.name!r}: its index name {index_name!r} is longer than "
                    "PostgreSQL's 63 characters"
                )

    def context(self, package: str, revision: str, down_revision: str | None) -> dict[str, object]:
        """The snippets' context."""
        read = [f"{self.table}:read"] if self.scoped else []
        write = [f"{self.table}:write"] if self.scoped else []
        types = {column.type for column in self.fields}
        return {
            "package": package,
            "name": self.name,
            "plural": self.table,
            "model": self.model,
            "path": self.path,
            "fields": [column.context for column in self.fields],
            "types": sorted(types),
            "unique": [column.name for column in self.fields if column.unique],
            "scoped": self.scoped,
            "read_scopes": read,
            "write_scopes": write,
            "rate_limit": self.rate_limit,
            "revision": revision,
            "down_revision": down_revision,
        }


def render_resource(template_root: Path, context: dict[str, object]) -> dict[str, str]:
    """The model class, migration, router module and tests, each compiled to check it."""
    from scaffold.snippets import snippet_environment

    environment = snippet_environment(template_root)
    rendered = {}
    for part, snippet in SNIPPET_FILES.items():
        text = environment.get_template(f"{SNIPPETS}/{snippet}").render(**context)
        compile(text, snippet.removesuffix(".jinja"), "exec", dont_inherit=True)
        rendered[part] = text
    for part in ("router", "tests"):
        twice = bound_twice(rendered[part])
        if twice:
            raise UsageProblem(
                f"bad resource name {context['name']!r}: its {part} module would bind "
                f"{', '.join(sorted(twice))} twice (the model or schema names clash with the "
                "module's own), pick another"
            )
    return rendered


def bound_twice(source: str) -> set[str]:
    """Top-level names `source` binds more than once (imports, assignments, definitions)."""
    import ast

    seen: set[str] = set()
    twice: set[str] = set()
    for statement in ast.parse(source).body:
        names: list[str] = []
        if isinstance(statement, ast.Import | ast.ImportFrom):
            names = [(a.asname or a.name).split(".")[0] for a in statement.names]
        elif isinstance(statement, ast.Assign | ast.AnnAssign):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
        elif isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names = [statement.name]
        twice.update(name for name in names if name in seen)
        seen.update(names)
    return twice
