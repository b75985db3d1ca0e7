"""Fixtures for the usage-to-billing pipe: the stream on, a sink database of the test's own,
and the drain worker as a command in a subprocess, the way operators run it."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from appkit_runtime import usage, usage_sink
from appkit_runtime.redis_pools import close_redis_connections
from appkit_runtime.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
FAULTY_DRAIN = Path(__file__).with_name("faulty_drain.py")
MANAGE = [sys.executable, "-m", "appkit_runtime.manage"]
Totals = dict[tuple[str, str, date, str, str], int]


@pytest.fixture
async def stream_on(monkeypatch: pytest.MonkeyPatch, real_redis: str) -> AsyncIterator[None]:
    """The usage stream on (2 shards) over the real Redis, no periodic flush, empty counts."""
    monkeypatch.setenv("APPKIT_USAGE_STREAM", "true")
    monkeypatch.setenv("APPKIT_USAGE_STREAM_SHARDS", "2")
    monkeypatch.setenv("APPKIT_METRICS_FLUSH_SECONDS", "3600")
    monkeypatch.delenv("APPKIT_REDIS_URL_METRICS", raising=False)
    monkeypatch.setattr(usage, "usage_counts", usage.UsageCounts())
    get_settings.cache_clear()
    yield
    await close_redis_connections()
    get_settings.cache_clear()


@pytest.fixture
def sink(postgres_database: str) -> str:
    """A PostgreSQL database of the test's own with the usage tables (`usage init`)."""
    done = run_manage("usage", "init", "--database-url", postgres_database)
    assert done.returncode == 0, done.stderr
    return postgres_database


def run_manage(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """The operator CLI in a subprocess, with this test's environment plus `env`."""
    return subprocess.run(
        [*MANAGE, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class DrainProcess:
    """A drain worker running in a subprocess; its stderr goes to `log`."""

    process: subprocess.Popen[str]
    log: Path

    def stop(self, timeout: float = 30) -> tuple[int, str, str]:
        """SIGTERM, then its exit status and output."""
        self.process.terminate()
        return self.wait(timeout)

    def wait(self, timeout: float = 60) -> tuple[int, str, str]:
        out, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode, out, self.log.read_text()

    async def logged(self, text: str, seconds: float = 30) -> None:
        """Return once `text` is in its stderr."""
        deadline = time.monotonic() + seconds
        while text not in self.log.read_text():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"{text!r} not logged: {self.log.read_text()}"
            await asyncio.sleep(0.05)


@pytest.fixture
def start_drain(tmp_path: Path) -> Iterator[Callable[..., DrainProcess]]:
    """`start_drain(*args, fault=None, env={})`: `usage drain` in a subprocess (under the
    fault script when `fault=("after-commit", n)`); killed at teardown if still running."""
    started: list[DrainProcess] = []

    def start(*args: str, fault: tuple[str, int] | None = None, **env: str) -> DrainProcess:
        head = MANAGE if fault is None else [sys.executable, str(FAULTY_DRAIN), *map(str, fault)]
        log = tmp_path / f"drain-{len(started)}.log"
        with log.open("w") as stderr:
            process = subprocess.Popen(
                [*head, "usage", "drain", *args],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        started.append(DrainProcess(process, log))
        return started[-1]

    yield start
    for drain in started:
        if drain.process.poll() is None:
            drain.process.kill()
            drain.process.communicate(timeout=10)


def drained(output: str) -> dict[str, int]:
    """The numbers of a worker's exit line: read, applied, duplicates, lost, batches."""
    match = re.search(
        r"read (\d+), applied (\d+), duplicates (\d+), lost (\d+), in (\d+) batches", output
    )
    assert match, f"no summary line in {output!r}"
    names = ("read", "applied", "duplicates", "lost", "batches")
    return dict(zip(names, map(int, match.groups()), strict=True))


async def sink_totals(url: str) -> Totals:
    """Every row of the totals table."""
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(f"SELECT * FROM {usage_sink.TOTALS_TABLE}")
        flushes = await connection.fetchval(f"SELECT count(*) FROM {usage_sink.FLUSHES_TABLE}")
    finally:
        await connection.close()
    assert flushes >= (1 if rows else 0)
    return {
        (r["org_id"], r["project_id"], r["day"], r["product"], r["kind"]): r["jobs"] for r in rows
    }


async def applied_flushes(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval(f"SELECT count(*) FROM {usage_sink.FLUSHES_TABLE}"))
    finally:
        await connection.close()


async def pending_entries(redis: Any, keys: list[str], group: str = "billing") -> int:
    """Entries not yet acknowledged by `group`: pending plus never delivered. (Counted, not
    taken from XINFO's `lag`, which Redis leaves unknown after loading its AOF.)"""
    total = 0
    for key in keys:
        groups = await redis.xinfo_groups(key) if await redis.exists(key) else []
        found = [info for info in groups if info["name"] in (group, group.encode())]
        if not found:
            total += await redis.xlen(key) or 1  # no worker has created the group yet
            continue
        total += (await redis.xpending(key, group))["pending"]
        last = found[0]["last-delivered-id"]
        last = last.decode() if isinstance(last, bytes) else last
        total += len(await redis.xrange(key, min=f"({last}"))
    return total


async def wait_until_drained(redis: Any, keys: list[str], seconds: float = 30) -> None:
    """Return once the group has acknowledged every entry of `keys`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while await pending_entries(redis, keys):
        assert asyncio.get_running_loop().time() < deadline, "the stream was not drained"
        await asyncio.sleep(0.1)
