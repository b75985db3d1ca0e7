"""The operator CLI runs in a subprocess against the real Redis, under a prefix of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from appkit_runtime.redis_pools import close_redis_connections
from appkit_runtime.settings import get_settings


@dataclass(frozen=True)
class Ran:
    """One CLI run: exit status, stdout and stderr."""

    status: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
async def cli_prefix(monkeypatch: pytest.MonkeyPatch, real_redis: str) -> AsyncIterator[str]:
    """A key prefix shared by this test and its CLI runs; its keys are deleted afterwards."""
    prefix = f"test-cli-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("APPKIT_REDIS_PREFIX", prefix)
    monkeypatch.delenv("APPKIT_REDIS_URL_RATELIMIT", raising=False)
    get_settings.cache_clear()
    yield prefix
    await close_redis_connections()
    get_settings.cache_clear()
    with redis.Redis.from_url(real_redis) as shared:
        keys = list(shared.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            shared.delete(*keys)


@pytest.fixture
def cli(cli_prefix: str, real_redis: str, tmp_path: Path) -> Callable[..., Ran]:
    """`cli("ratelimit", "get", ..., env={...})` runs `python -m appkit_runtime.manage`."""

    def run(*args: str, env: dict[str, str] | None = None) -> Ran:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("APPKIT_")}
        environ |= {"APPKIT_REDIS_URL": real_redis, "APPKIT_REDIS_PREFIX": cli_prefix}
        environ |= env or {}
        done = subprocess.run(
            [sys.executable, "-m", "appkit_runtime.manage", *args],
            capture_output=True,
            text=True,
            env=environ,
            cwd=tmp_path,  # no stray .env
            timeout=60,
        )
        return Ran(done.returncode, done.stdout, done.stderr)

    return run
