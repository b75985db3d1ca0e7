"""The documentation's pages and their fenced blocks, as the tests in this folder read them."""

from __future__ import annotations

import importlib.util
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# Pages made of other files (`--8<-- "file"`) are read as those files.
SOURCES = [ROOT / "README.md", ROOT / "bench" / "README.md"]
COMPILE_ONLY = "<!-- docs-test: compile -->"
_FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ ]*$",
    flags=re.M | re.S,
)


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, text and whether it only compiles."""

    page: Path
    line: int
    lang: str
    text: str
    compile_only: bool

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    """Every Markdown page of the site (their own text, snippets not expanded), and sources."""
    own = [p for p in sorted(DOCS.rglob("*.md")) if not _only_includes(p)]
    return own + SOURCES


def guide_pages() -> list[Path]:
    """The pages people read for how-to (everything but the generated reference)."""
    return [p for p in pages() if p.parent.name != "reference"]


def _only_includes(page: Path) -> bool:
    return page.read_text().strip().startswith('--8<-- "')


def blocks(*langs: str) -> list[Block]:
    """Every fenced block in `langs` on every page."""
    found = []
    for page in pages():
        text = page.read_text()
        for match in _FENCE.finditer(text):
            if match["lang"] not in langs:
                continue
            before = text[: match.start()].rstrip().rsplit("\n", 1)[-1].strip()
            body = textwrap.dedent(match["body"]) if match["indent"] else match["body"]
            line = text.count("\n", 0, match.start()) + 1
            found.append(Block(page, line, match["lang"], body, before == COMPILE_ONLY))
    return found


def hooks() -> ModuleType:
    """`docs/hooks.py`, the MkDocs hooks that generate the reference's tables."""
    spec = importlib.util.spec_from_file_location("appkit_docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return module
