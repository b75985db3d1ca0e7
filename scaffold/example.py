"""The template's example `items` resource: what `add-resource item --field name:str` writes.

Copier runs Jinja only, so the context `add-resource` would hand its snippets for the example
is written to `template/.snippets/example_resource.json` (`python -m scaffold.example`). The
template's items files render the very same snippets from it, so the example and the generator
cannot drift apart; a test checks that the file is current.
"""

from __future__ import annotations

import json
from pathlib import Path

from scaffold.fields import parse_field
from scaffold.resource import Resource

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_FILE = ROOT / "template" / ".snippets" / "example_resource.json"
EXAMPLE = Resource("item", [parse_field("name:str")])
# The example's table comes with the service's first migration.
REVISION = "0001"


def example_context() -> dict[str, object]:
    """The snippets' context for the example, but the package (the service's, at copy time)."""
    context = EXAMPLE.context(package="", revision=REVISION, down_revision=None)
    del context["package"]
    return context


def render() -> str:
    """The example's context as the JSON file the template reads."""
    return json.dumps(example_context(), indent=2) + "\n"


def main() -> None:
    EXAMPLE_FILE.write_text(render(), encoding="utf-8")
    print(f"{EXAMPLE_FILE}: the example resource's context")


if __name__ == "__main__":
    main()
