"""One endpoint to add: its options checked, its router module and tests rendered in memory.

The files come from the template's own snippets (`template/.snippets/`), the very macros the
example `items` resource is built from, so a new endpoint and the example cannot drift apart.
"""

from __future__ import annotations

import ast
import keyword
import re
from dataclasses import dataclass, field
from pathlib import Path

from appkit_runtime.ratelimit.limiter import MAX_LIMIT_VALUE
from scaffold.errors import UsageProblem

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
SNIPPETS = "template/.snippets"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SEGMENT = r"(?:[A-Za-z0-9._~-]|\{[A-Za-z_][A-Za-z0-9_]*\})+"
_PATH = re.compile(rf"/|(?:/{_SEGMENT})+/?")
_PARAM = re.compile(r"\{([^{}]*)\}")
_RATE_LIMIT = re.compile(r"[1-9][0-9]*/[1-9][0-9]*")
_SCOPE = re.compile(r"[A-Za-z0-9:._/*+-]+")
# The longest name and path whose rendered module and tests stay within ruff's 100 columns.
MAX_NAME = 40
MAX_PATH = 80


def _valid_rate_limit(value: str) -> bool:
    """Whether `value` is N/S the runtime accepts: a larger N or S fails the service's import."""
    return _RATE_LIMIT.fullmatch(value) is not None and all(
        int(part) <= MAX_LIMIT_VALUE for part in value.split("/")
    )


@dataclass(frozen=True)
class Endpoint:
    """What `add-endpoint` was asked for; `check()` refuses bad usage with one line."""

    name: str
    method: str = "GET"
    path: str = ""
    public: bool = False
    rate_limit: str | None = None
    scopes: list[str] = field(default_factory=list)

    @property
    def route_path(self) -> str:
        """The path given, or `/NAME` with `_` as `-` (leading and trailing ones dropped:
        `_private` is served at `/private`, not `/-private`)."""
        return self.path or "/" + self.name.strip("_").replace("_", "-")

    @property
    def context(self) -> dict[str, object]:
        """The snippets' context: name, method, path, public, rate_limit, scopes."""
        return {
            "name": self.name,
            "method": self.method,
            "path": self.route_path,
            "public": self.public,
            "rate_limit": self.rate_limit,
            "scopes": list(self.scopes),
        }

    def check(self) -> None:
        """Raise `UsageProblem` naming the first bad option."""
        name = self.name
        if not _NAME.fullmatch(name):
            raise UsageProblem(
                f"bad endpoint name {name!r}: use a Python identifier (letters, digits, _)"
            )
        if keyword.iskeyword(name) or name.startswith("__"):
            raise UsageProblem(f"bad endpoint name {name!r}: it is a Python keyword or dunder")
        if len(name) > MAX_NAME:
            raise UsageProblem(
                f"bad endpoint name {name[:20]!r}...: {len(name)} characters, at most {MAX_NAME}"
            )
        if self.method not in METHODS:
            raise UsageProblem(f"bad method {self.method!r}: use one of {', '.join(METHODS)}")
        self._check_path()
        if self.public and (self.rate_limit or self.scopes):
            raise UsageProblem("--rate-limit and --scopes need a protected endpoint: drop --public")
        if self.rate_limit is not None and not _valid_rate_limit(self.rate_limit):
            raise UsageProblem(
                f"bad rate limit {self.rate_limit!r}: use N/S, N requests per S seconds, "
                f"both from 1 to {MAX_LIMIT_VALUE}, such as 10/60"
            )
        for scope in self.scopes:
            if not _SCOPE.fullmatch(scope):
                raise UsageProblem(f"bad scope {scope!r}: use letters, digits and : . _ / * + -")

    def _check_path(self) -> None:
        path = self.route_path
        if not path.startswith("/"):
            raise UsageProblem(f"bad path {path!r}: it must start with /")
        if len(path) > MAX_PATH:
            raise UsageProblem(
                f"bad path {path[:20]!r}...: {len(path)} characters, at most {MAX_PATH}"
            )
        params = _PARAM.findall(path)
        for param in params:
            if not _NAME.fullmatch(param) or keyword.iskeyword(param):
                raise UsageProblem(
                    f"bad path parameter {{{param}}} in {path!r}: use a Python identifier"
                )
        if not _PATH.fullmatch(path):
            raise UsageProblem(
                f"bad path {path!r}: use segments of letters, digits, . _ ~ - and {{parameters}}"
            )
        if len(set(params)) != len(params):
            raise UsageProblem(f"bad path {path!r}: a parameter appears twice")


def parse_scopes(scopes: str | None) -> list[str]:
    """`"a, b"` gives `["a", "b"]`; an empty entry is refused, as it would drop a scope."""
    if scopes is None:
        return []
    parsed = [scope.strip() for scope in scopes.split(",")]
    if "" in parsed:
        raise UsageProblem(f"bad scopes {scopes!r}: an empty scope; use A,B such as orders:read")
    return parsed


def render_endpoint(template_root: Path, endpoint: Endpoint) -> tuple[str, str]:
    """The router module and its tests, rendered from the snippets and compiled to check them."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_root),
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    rendered = []
    for snippet in ("router.py.jinja", "test_router.py.jinja"):
        text = environment.get_template(f"{SNIPPETS}/{snippet}").render(**endpoint.context)
        compile(text, snippet.removesuffix(".jinja"), "exec", dont_inherit=True)
        rendered.append(text)
    taken = _bound_besides(rendered[0], endpoint.name)
    if endpoint.name in taken:
        raise UsageProblem(
            f"bad endpoint name {endpoint.name!r}: its router module binds that name already "
            f"(it binds {', '.join(sorted(taken))})"
        )
    return rendered[0], rendered[1]


def _bound_besides(source: str, function: str) -> set[str]:
    """Top-level names `source` binds, but for the endpoint function's own definition."""
    names: set[str] = set()
    for statement in ast.parse(source).body:
        if isinstance(statement, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in statement.names)
        elif isinstance(statement, ast.Assign | ast.AnnAssign):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if statement.name != function:
                names.add(statement.name)
    return names
