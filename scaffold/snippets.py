"""The Jinja environment that renders the template's snippets, with their compiled form cached.

Compiling the snippets is most of a render's time; Jinja's bytecode cache keys each one by its
source's checksum, so an edited snippet is compiled afresh. No cache folder, no cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def snippet_environment(template_root: Path) -> Any:
    """A strict Jinja environment over `template_root`, caching compiled templates."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_root),
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        bytecode_cache=_bytecode_cache(jinja2),
    )


def _bytecode_cache(jinja2: Any) -> Any:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    folder = Path(base) / "appkit-scaffold" / "jinja"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(folder))
