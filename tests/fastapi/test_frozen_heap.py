"""The start-up heap is frozen (kept out of full collections) while the app serves."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI

from appkit_runtime.fastapi.fastapi import get_fastapi_app
from appkit_runtime.settings import get_settings
from tests.fastapi.test_fastapi import client_for


def is_collectable(obj: object) -> bool:
    """Whether `obj` sits in a generation the collector scans (frozen ones are in none)."""
    return any(candidate is obj for candidate in gc.get_objects())


@pytest.mark.usefixtures("real_redis")
@pytest.mark.parametrize(
    ("env", "setting", "frozen"),
    [
        ("production", None, True),
        ("development", None, True),
        ("test", None, False),  # every test's lifespan would pay a full collection
        ("test", "true", True),
        ("development", "false", False),
    ],
)
async def test_objects_built_at_start_up_are_frozen_while_serving_and_given_back_after(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: str, setting: str | None, frozen: bool
) -> None:
    monkeypatch.setenv("APPKIT_ENV", env)
    monkeypatch.setenv("APPKIT_DATABASE_URL", f"sqlite:///{tmp_path}/app.db")
    if setting is None:
        monkeypatch.delenv("APPKIT_GC_FREEZE", raising=False)
    else:
        monkeypatch.setenv("APPKIT_GC_FREEZE", setting)
    get_settings.cache_clear()
    built: dict[str, list[int]] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        built["table"] = [1, 2, 3]
        yield

    app = get_fastapi_app("frozen-heap", lifespan=lifespan)

    @app.get("/scanned")
    async def scanned() -> dict[str, bool]:
        return {"table": is_collectable(built["table"]), "frozen": gc.get_freeze_count() > 0}

    async with client_for(app) as client:
        seen = (await client.get("/scanned")).json()

    assert seen == {"table": not frozen, "frozen": frozen}
    assert gc.get_freeze_count() == 0
    assert is_collectable(built["table"])
