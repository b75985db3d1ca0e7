"""Rendered services work: their own test suites, Alembic, and uvicorn with the dev key.

Each service is installed (editable, no dependencies) into the session's `service_venv`, whose
`appkit_runtime` is the working tree's. The full suites run on a spread of answers that covers
each database, each auth backend and the bare service, on embedded defaults and on the real
Redis and PostgreSQL (a database of each test's own); `test_copy` renders all the rest.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS_URL, free_port
from tests.helpers import ServiceVenv, passed, service_environ

Factory = Callable[..., Path]

EMBEDDED = [
    pytest.param("sqlite", "static", True, id="sqlite-static-example"),
    pytest.param("postgresql", "http", True, id="postgresql-http-example"),
    pytest.param("postgresql", "static", False, id="postgresql-static-bare"),
]
REAL = [
    pytest.param("postgresql", "static", True, id="postgresql-static-example"),
    pytest.param("sqlite", "http", True, id="sqlite-http-example"),
    pytest.param("sqlite", "static", False, id="sqlite-static-bare"),
]


def render_installed(
    service_factory: Factory, venv: ServiceVenv, database: str, auth: str, example: bool
) -> Path:
    service = service_factory(
        package_name=f"svc_{database}_{auth}_{'example' if example else 'bare'}",
        database=database,
        auth_backend=auth,
        include_example=example,
    )
    venv.install(service)
    return service


@pytest.mark.parametrize(("database", "auth_backend", "include_example"), EMBEDDED)
def test_the_service_suite_passes_on_embedded_defaults(
    service_factory: Factory,
    service_venv: ServiceVenv,
    database: str,
    auth_backend: str,
    include_example: bool,
) -> None:
    service = render_installed(
        service_factory, service_venv, database, auth_backend, include_example
    )

    run = service_venv.run("pytest", "-p", "no:cacheprovider", cwd=service)

    assert passed(run) == (14 if include_example else 3)
    assert not list(service.glob("*.db")), "tests must not write the development database"


@pytest.mark.redis
@pytest.mark.parametrize(("database", "auth_backend", "include_example"), REAL)
def test_the_service_suite_passes_on_real_redis_and_postgresql(
    service_factory: Factory,
    service_venv: ServiceVenv,
    postgres_database: str,
    database: str,
    auth_backend: str,
    include_example: bool,
) -> None:
    service = render_installed(
        service_factory, service_venv, database, auth_backend, include_example
    )
    environ = service_environ(redis_url=REDIS_URL, database_url=postgres_database)

    run = service_venv.run("pytest", "-p", "no:cacheprovider", cwd=service, env=environ)

    assert passed(run) == (14 if include_example else 3)


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_alembic_upgrades_to_head_and_back(
    service_factory: Factory,
    service_venv: ServiceVenv,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    database: str,
) -> None:
    service = render_installed(service_factory, service_venv, "postgresql", "static", True)
    if database == "sqlite":
        url = f"sqlite:///{tmp_path / 'migrated.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
    environ = service_environ(database_url=url)

    def alembic(*args: str) -> str:
        run = service_venv.run("alembic", *args, cwd=service, env=environ, timeout=60)
        assert run.returncode == 0, run.stdout
        return run.stdout

    alembic("upgrade", "head")
    assert "0001 (head)" in alembic("current")
    # The first revision builds exactly the models' tables.
    assert "No new upgrade operations detected" in alembic("check")
    alembic("downgrade", "base")
    assert "0001" not in alembic("current")


@pytest.mark.parametrize(
    ("url", "line"),
    [
        ("garbage", "appkit: APPKIT_DATABASE_URL: unknown URL scheme"),
        (
            "postgresql://postgres@127.0.0.1:1/nowhere",
            "appkit: the database does not answer: ConnectionRefusedError",
        ),
    ],
)
def test_alembic_on_a_bad_or_unreachable_database_says_so_in_one_line(
    service_factory: Factory, service_venv: ServiceVenv, url: str, line: str
) -> None:
    service = render_installed(service_factory, service_venv, "postgresql", "static", True)
    environ = service_environ(database_url=url)

    run = service_venv.run("alembic", "upgrade", "head", cwd=service, env=environ, timeout=60)

    assert run.returncode == 1
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1, run.stdout
    assert lines[0].startswith(line)


def test_the_newcomer_path_serves_the_dev_key_until_the_limit(
    service_factory: Factory, service_venv: ServiceVenv
) -> None:
    # The README's path on embedded defaults: copy, settings, install, migrate, start, call.
    service = service_factory(project_name="Acme Orders", default_rate_limit="5/60")
    shutil.copy(service / ".env.example", service / ".env")
    service_venv.install(service)
    environ = service_environ()
    migrate = service_venv.run("alembic", "upgrade", "head", cwd=service, env=environ, timeout=60)
    assert migrate.returncode == 0, migrate.stdout
    port = free_port()
    server = subprocess.Popen(
        [service_venv.python, "-m", "uvicorn", "acme_orders.main:app", "--port", str(port)],
        cwd=service,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_listening(port, server)
        key = {"Authorization": "Bearer dev-acme-orders-key"}
        with httpx.Client(base_url=base, timeout=10) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            assert client.get("/items").status_code == 401
            statuses = [client.get("/items", headers=key).status_code for _ in range(6)]
            created = client.post("/items", json={"name": "first"}, headers=key)
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]

    assert statuses == [200] * 5 + [429], output
    assert created.status_code == 429
    assert (service / "acme-orders.db").exists()


def wait_until_listening(port: int, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"uvicorn exited: {server.communicate()[0]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail("uvicorn did not listen within 30 s")
