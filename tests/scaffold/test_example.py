"""The template's example `items` resource is what `add-resource item --field name:str` writes:
both render the same snippets, the template from `example_resource.json`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from scaffold.example import EXAMPLE_FILE, example_context, render
from tests.scaffold.conftest import Result

Scaffold = Callable[..., Result]
# Every file of the example, by its path in a service of package `shop`.
EXAMPLE_FILES = [
    "src/shop/models.py",
    "src/shop/routers/__init__.py",
    "src/shop/routers/items.py",
    "tests/test_items.py",
]


def test_the_example_file_holds_the_context_add_resource_gives_the_snippets() -> None:
    # Stale when the snippets' context changes: `python -m scaffold.example` rewrites it.
    assert EXAMPLE_FILE.read_text(encoding="utf-8") == render()
    assert json.loads(render()) == json.loads(json.dumps(example_context()))


def test_the_example_is_byte_for_byte_what_add_resource_writes(
    scaffold: Scaffold, service_factory: Callable[..., Path], tmp_path: Path
) -> None:
    # service_factory renders into tmp_path/<package>: the example service moves aside.
    example = service_factory(package_name="shop").rename(tmp_path / "example")
    bare = service_factory(package_name="shop", include_example=False)

    result = scaffold("add-resource", "item", "--field", "name:str", "--project-dir", bare)

    assert result.code == 0, result.err
    for name in EXAMPLE_FILES:
        assert (bare / name).read_text() == (example / name).read_text(), name
    # The migration too, but for its revision: 0001 in the template, the next one after it.
    versions = bare / "migrations" / "versions"
    added = (versions / "0002_create_items.py").read_text()
    first = (example / "migrations" / "versions" / "0001_initial.py").read_text()
    head = re.compile(r"\A.*?depends_on[^\n]*\n", re.DOTALL)
    assert head.sub("", added) == head.sub("", first)
    assert 'revision: str = "0001"\ndown_revision: str | None = None\n' in first
