"""Fixtures shared by the runtime's tests: the real Redis and PostgreSQL the suite talks to."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["pytester"]

REDIS_URL = os.environ.get("APPKIT_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("APPKIT_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
if not REDIS_URL.startswith("redis"):
    REDIS_URL = "redis://127.0.0.1:6379/0"
if not POSTGRES_URL.startswith("postgres"):
    POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def real_redis(monkeypatch: pytest.MonkeyPatch) -> str:
    """Point every Redis dependency at the real server."""
    monkeypatch.setenv("APPKIT_REDIS_URL", REDIS_URL)
    return REDIS_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]
) -> str:
    """Each database test runs on a SQLite file and on the real PostgreSQL."""
    url = f"sqlite:///{tmp_path}/test.db" if request.param == "sqlite" else POSTGRES_URL
    monkeypatch.setenv("APPKIT_DATABASE_URL", url)
    return url
