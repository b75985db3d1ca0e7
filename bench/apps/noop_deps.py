"""Analysis variant `noop-deps`: plain FastAPI with three no-op dependencies (FastAPI's own
cost per dependency, the floor for any three-step chain)."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from bench.apps.common import PATH, read_item


async def nothing() -> None:
    """A dependency that does no work."""


async def nothing_either() -> None:
    """A second one, so FastAPI's per-request cache does not merge them."""


async def nothing_at_all() -> None:
    """And a third."""


app = FastAPI()
deps = [Depends(nothing), Depends(nothing_either), Depends(nothing_at_all)]
app.get(PATH, dependencies=deps)(read_item)
