"""Fixtures of the reliability suite: the service under uvicorn and the servers it depends on.

Every test runs against the real Redis under the plugin's per-test key prefix, and ends by
checking that no issued key appears in a log record or in a service's output.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import POSTGRES_URL, free_port
from tests.reliability.material import leaks
from tests.reliability.servers import KeyAuthority, ServiceProcess, TcpProxy, service_env

ServiceFactory = Callable[..., ServiceProcess]


@pytest.fixture(autouse=True)
def shared_redis(real_redis: str, caplog: pytest.LogCaptureFixture) -> Iterator[str]:
    """The real Redis for this process (so the plugin deletes the test's keys afterwards),
    and the check that no log record of the test holds key material."""
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="appkit_runtime")
    yield real_redis
    assert leaks(record.getMessage() for record in caplog.records) == []


@pytest.fixture
def start_service(tmp_path: Path, real_redis: str) -> Iterator[ServiceFactory]:
    """`start_service(APPKIT_X="...", ...)`: the test service on a free port, on the shared
    Redis and a SQLite file unless told otherwise; killed afterwards, its output checked."""
    services: list[ServiceProcess] = []

    def start(**variables: str) -> ServiceProcess:
        defaults = {
            "APPKIT_REDIS_URL": real_redis,
            "APPKIT_DATABASE_URL": f"sqlite:///{tmp_path}/service.db",
            "APPKIT_METRICS_FLUSH_SECONDS": "0.5",
        }
        env = service_env(**{**defaults, **variables})
        log = tmp_path / f"service-{len(services)}.log"
        services.append(ServiceProcess(free_port(), env, log))
        return services[-1].start()

    yield start
    for service in services:
        service.stop()
    for service in services:
        assert leaks([service.log()]) == [], f"key material in {service.log_path}"


@pytest.fixture
def key_authority() -> Iterator[KeyAuthority]:
    """A running `http` key authority on a loopback port; stopped afterwards."""
    authority = KeyAuthority()
    yield authority
    authority.down()


@pytest.fixture
def pg_proxy() -> Iterator[TcpProxy]:
    """A TCP proxy in front of the real PostgreSQL that the test can cut and restore."""
    target = urlsplit(POSTGRES_URL)
    proxy = TcpProxy((target.hostname or "127.0.0.1", target.port or 5432))
    yield proxy
    proxy.cut()


def proxied_url(proxy: TcpProxy) -> str:
    """`POSTGRES_URL` with its port replaced by the proxy's."""
    parts = urlsplit(POSTGRES_URL)
    netloc = parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc
    return parts._replace(netloc=f"{netloc}:{proxy.port}").geturl()
