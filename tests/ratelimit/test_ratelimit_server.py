"""The client address under the real server: the template's production command, and the warning
when the server's proxy trust differs from `APPKIT_TRUSTED_PROXIES`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from appkit_runtime.ratelimit.client_address import server_rewrote
from tests.conftest import free_port

Serve = Callable[..., tuple[str, Path]]

TEMPLATE = Path(__file__).parents[2] / "template"
DOCKERFILE = TEMPLATE / "Dockerfile.jinja"
SERVER = TEMPLATE / "src" / "{{ package_name }}" / "__main__.py.jinja"

SERVICE = """
from fastapi import Depends
from appkit_runtime.fastapi import PathRateLimiter
from appkit_runtime.fastapi.fastapi import get_fastapi_app

app = get_fastapi_app("xff", databases=())


@app.get("/pub", dependencies=[Depends(PathRateLimiter(max_requests=3, expiry=60))])
async def pub() -> dict[str, bool]:
    return {"ok": True}
"""


def production_command(port: int) -> list[str]:
    """The Dockerfile's CMD for a package named `service`, on a loopback port, one worker."""
    line = next(ln for ln in DOCKERFILE.read_text().splitlines() if ln.startswith("CMD "))
    command = json.loads(line.removeprefix("CMD "))
    assert command == ["python", "-m", "{{ package_name }}"]
    return [sys.executable, "-m", "service", "--host=127.0.0.1", f"--port={port}", "--workers=1"]


@pytest.fixture
def serve(tmp_path: Path, redis_prefix: str) -> Iterator[Serve]:
    """`serve(command, **environ)` starts the tiny service; the base URL and its log file."""
    package = tmp_path / "service"
    package.mkdir()
    (package / "__init__.py").write_text(SERVICE)
    (package / "main.py").write_text("from service import app\n")
    server = SERVER.read_text().replace("{{ package_name }}", "service")
    (package / "__main__.py").write_text(server)
    started: list[subprocess.Popen[bytes]] = []

    def start(command: list[str], port: int, **environ: str) -> tuple[str, Path]:
        log = tmp_path / f"server-{port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("APPKIT_")}
        env |= {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "APPKIT_REDIS_URL": os.environ["APPKIT_REDIS_URL"],
            "APPKIT_REDIS_PREFIX": redis_prefix,
            **environ,
        }
        with log.open("wb") as out:
            process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=out)
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                return base, log
            except httpx.TransportError:
                assert process.poll() is None, log.read_text()
                time.sleep(0.05)
        raise AssertionError(f"the service did not start: {log.read_text()}")

    yield start
    for process in started:
        process.terminate()
        process.wait(10)


def spoofed(base: str, count: int) -> list[int]:
    """Statuses of `count` requests from loopback, each claiming another address."""
    with httpx.Client(base_url=base) as client:
        return [
            client.get("/pub", headers={"X-Forwarded-For": f"10.9.9.{n}"}).status_code
            for n in range(count)
        ]


def test_the_production_command_ignores_forwarded_for_without_trusted_proxies(serve: Serve) -> None:
    port = free_port()
    base, _ = serve(production_command(port), port)

    assert spoofed(base, 6) == [200, 200, 200, 429, 429, 429]


def test_the_production_command_believes_the_trusted_proxies(serve: Serve) -> None:
    port = free_port()
    base, log = serve(production_command(port), port, APPKIT_TRUSTED_PROXIES="127.0.0.0/8, ::1")

    # Loopback is the proxy now: each forwarded address is a client of its own.
    assert spoofed(base, 6) == [200] * 6
    assert "from X-Forwarded-For" not in log.read_text()  # the server and runtime agree


def test_a_server_that_trusts_more_than_the_runtime_is_logged_once(serve: Serve) -> None:
    port = free_port()
    # uvicorn's defaults: X-Forwarded-For is believed from 127.0.0.1.
    command = [sys.executable, "-m", "uvicorn", "service:app", "--port", str(port)]
    base, log = serve(command, port)

    spoofed(base, 2)

    lines = [ln for ln in log.read_text().splitlines() if "from X-Forwarded-For" in ln]
    assert len(lines) == 1
    assert "client address 10.9.9.0" in lines[0]
    assert "APPKIT_TRUSTED_PROXIES (empty) does not allow" in lines[0]


@pytest.mark.parametrize(
    ("peer", "forwarded", "proxies", "rewrote"),
    [
        ("10.9.9.1", "10.9.9.1", (), True),  # uvicorn's default trust, none in the runtime
        ("1.1.1.1", "6.6.6.6, 1.1.1.1", ("10.0.0.0/8",), False),  # both trust the same proxy
        ("6.6.6.6", "6.6.6.6, 1.1.1.1", ("10.0.0.0/8",), True),  # the server trusted 1.1.1.1
        ("10.0.0.1", "1.1.1.1", ("10.0.0.0/8",), False),  # not rewritten: the runtime reads it
        ("1.1.1.1", None, (), False),
    ],
)
def test_server_rewrote(
    peer: str, forwarded: str | None, proxies: tuple[str, ...], rewrote: bool
) -> None:
    assert server_rewrote(peer, forwarded, proxies) is rewrote
