"""A deployed service is not ready until its database is at the migrations' head.

The service is started as its README says, on the real PostgreSQL and Redis, against a
database nobody migrated; `alembic upgrade head` then makes it ready, without a restart.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS_URL, free_port
from tests.helpers import ServiceVenv, service_environ


@contextmanager
def serving(venv: ServiceVenv, service: Path, module: str, env: dict[str, str]) -> Iterator[str]:
    """uvicorn serving `module:app` from the service's folder; yields its base URL."""
    port = free_port()
    command = [venv.python, "-m", "uvicorn", f"{module}:app", "--port", str(port)]
    server = subprocess.Popen(
        command, cwd=service, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"uvicorn did not answer: {server.communicate(timeout=5)[0]}")
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.communicate(timeout=30)


@pytest.mark.redis
def test_readyz_names_the_schema_until_alembic_upgrades_it_without_a_restart(
    service_factory: Callable[..., Path], service_venv: ServiceVenv, postgres_database: str
) -> None:
    service = service_factory(package_name="migrated_svc", database="postgresql")
    service_venv.install(service)
    environ = service_environ(
        redis_url=REDIS_URL, database_url=postgres_database, api_keys="[]", env="development"
    )

    with serving(service_venv, service, "migrated_svc.main", environ) as base:
        behind = httpx.get(f"{base}/readyz", timeout=10)
        upgrade = service_venv.run("alembic", "upgrade", "head", cwd=service, env=environ)
        assert upgrade.returncode == 0, upgrade.stdout
        deadline = time.monotonic() + 15  # the revision is cached for a couple of seconds
        while (ready := httpx.get(f"{base}/readyz", timeout=10)).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.25)

    assert behind.status_code == 503
    assert behind.json()["checks"]["database:default"] == "schema behind: base != 0001"
    assert behind.json()["checks"]["redis"] == "ok"
    assert ready.json() == {
        "status": "ready",
        "checks": {"redis": "ok", "database:default": "ok"},
    }
