"""Fixtures shared by the runtime's tests: the real Redis and PostgreSQL the suite talks to."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers import ServiceVenv, build_template_repo, render_service

pytest_plugins = ["pytester"]

REDIS_URL = os.environ.get("APPKIT_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("APPKIT_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
if not REDIS_URL.startswith("redis"):
    REDIS_URL = "redis://127.0.0.1:6379/0"
if not POSTGRES_URL.startswith("postgres"):
    POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 1):
            return True
    except OSError:
        return False


@functools.cache
def _missing_servers() -> dict[str, str]:
    """Servers the integration tests need that do not answer, with how to get them."""
    missing = {}
    if not _answers(REDIS_URL):
        missing["redis"] = f"Redis does not answer at {REDIS_URL}"
    if not _answers(POSTGRES_URL):
        missing["postgres"] = f"PostgreSQL does not answer at {POSTGRES_URL}"
    if shutil.which("redis-server") is None:
        missing["redis_server"] = "the redis-server binary is not installed"
    return missing


# Using one of these fixtures marks a test as needing that server.
_FIXTURE_NEEDS = {
    "real_redis": "redis",
    "redis_server": "redis_server",
    "postgres_database": "postgres",
}


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked redis/postgres/redis_server need real servers: fail under CI, else skip."""
    needs = {m for m in ("redis", "postgres", "redis_server") if item.get_closest_marker(m)}
    needs |= {_FIXTURE_NEEDS[f] for f in getattr(item, "fixturenames", ()) if f in _FIXTURE_NEEDS}
    for need in sorted(needs):
        if need in _missing_servers():
            reason = _missing_servers()[need]
            if IN_CI:
                pytest.fail(f"{reason}; CI never skips integration tests", pytrace=False)
            pytest.skip(f"{reason} (outside CI integration tests are skipped)")


@pytest.fixture
def real_redis(monkeypatch: pytest.MonkeyPatch) -> str:
    """Point every Redis dependency at the real server."""
    monkeypatch.setenv("APPKIT_REDIS_URL", REDIS_URL)
    return REDIS_URL


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]
) -> str:
    """Each database test runs on a SQLite file and on the real PostgreSQL."""
    url = f"sqlite:///{tmp_path}/test.db" if request.param == "sqlite" else POSTGRES_URL
    monkeypatch.setenv("APPKIT_DATABASE_URL", url)
    return url


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A `redis-server` this test owns on a loopback port: start, kill and restart it."""

    def __init__(self, port: int, directory: str) -> None:
        self.port = port
        self.directory = directory
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        # More redis-server options, after (so overriding) the defaults: `["--appendonly", "yes"]`.
        self.options: list[str] = []

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.directory,
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def redis_server(tmp_path: os.PathLike[str]) -> Iterator[RedisServer]:
    """A private redis-server, not yet started, killed after the test."""
    server = RedisServer(free_port(), str(tmp_path))
    yield server
    server.stop()


class CommandCount:
    """The commands a private redis-server has run since `reset()`, by name, from its own
    `INFO commandstats` (read on one connection opened first, so no handshake is counted)."""

    def __init__(self, url: str) -> None:
        import redis

        self._admin = redis.Redis.from_url(url)
        self.reset()

    def reset(self) -> None:
        self._admin.config_resetstat()

    def __call__(self) -> Counter[str]:
        stats = self._admin.info("commandstats")
        calls = Counter(
            {name.removeprefix("cmdstat_"): stat["calls"] for name, stat in stats.items()}
        )
        del calls["info"], calls["config|resetstat"]  # the count's own
        return +calls

    def close(self) -> None:
        self._admin.close()


@pytest.fixture
def redis_commands(
    redis_server: RedisServer, real_redis: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CommandCount]:
    """Every Redis dependency on a private redis-server whose commands this test counts."""
    redis_server.start()
    monkeypatch.setenv("APPKIT_REDIS_URL", redis_server.url)
    from appkit_runtime.settings import get_settings

    get_settings.cache_clear()
    count = CommandCount(redis_server.url)
    yield count
    count.close()


# Rendered services: the template and upgrade tests share these.


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repo of the working tree's template (edits included), tagged v<version>."""
    return build_template_repo(tmp_path_factory.mktemp("template") / "appkit")


@pytest.fixture
def service_factory(template_repo: Path, tmp_path: Path) -> Callable[..., Path]:
    """`service_factory(**answers) -> Path`: a service rendered into this test's tmp_path."""

    def render(**answers: Any) -> Path:
        dest = tmp_path / str(answers.get("package_name", "service"))
        return render_service(template_repo, dest, **answers)

    return render


@pytest.fixture(scope="session")
def service_venv(tmp_path_factory: pytest.TempPathFactory) -> ServiceVenv:
    """One virtualenv per session over this environment; `.install(service)` adds a service.

    Installing a service replaces an earlier one with the same package name.
    """
    return ServiceVenv(tmp_path_factory.mktemp("venv") / "services").create()


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A database of this test's own on the real PostgreSQL (its URL), dropped afterwards."""
    import asyncio
    import uuid

    import asyncpg

    name = f"appkit_test_{uuid.uuid4().hex[:12]}"
    admin = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")

    async def execute(sql: str) -> None:
        connection = await asyncpg.connect(admin)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield urlsplit(POSTGRES_URL)._replace(path=f"/{name}").geturl()
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(autouse=True)
def no_django_flush_thread_outlives_its_test() -> Iterator[None]:
    """Stop the Django usage-flush thread a test started: it would read a later test's settings."""
    yield
    metrics = sys.modules.get("appkit_runtime.django.metrics")
    if metrics is not None and metrics._thread is not None:
        metrics.stop_usage_flush_thread()
