"""A rendered service under uvicorn in production: request ids, JSON logs, OTLP traces.

The service asks a key authority of the test's own (so every answer is reachable: 200, 401,
403, 429, 503) and, for traces, exports to an OTLP/HTTP receiver on loopback that the test
starts, stops or makes hang. Every key carries a marker that must appear nowhere: stdout,
stderr, the authority's headers, or any byte exported.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.authority_server import AuthService
from tests.conftest import REDIS_URL, free_port
from tests.helpers import ServiceVenv, service_environ
from tests.otlp_receiver import Receiver
from tests.template.test_service import wait_until_listening

MARKER = "Zq9MARKERq9Z"
GOOD_KEY = f"ok-{MARKER}-1"
UNKNOWN_KEY = f"unknown-{MARKER}"
UNSCOPED_KEY = f"unscoped-{MARKER}"
FAILING_KEY = f"failing-{MARKER}"
TOKEN = {"org_id": "acme", "project_id": "observed", "key_id": "kid-1", "rate_limit": "2/60"}

PROBE_ROUTER = '''"""Routes for the observability tests: protected, one with a scope."""

from appkit_runtime.fastapi import protected
from fastapi import APIRouter

router = APIRouter()


@router.get("/probe/{n}", dependencies=protected())
async def probe(n: int) -> dict[str, int]:
    return {"n": n}


@router.get("/scoped", dependencies=protected(scopes=["admin"]))
async def scoped() -> dict[str, str]:
    return {"ok": "yes"}
'''

ACCESS_FIELDS = {
    "time",
    "level",
    "request_id",
    "method",
    "route",
    "status",
    "duration_ms",
    "org_id",
    "project_id",
    "key_id",
    "ratelimit",
    "ratelimit_remaining",
}


@pytest.fixture
def authority() -> Iterator[AuthService]:
    server = AuthService()
    server.answers[GOOD_KEY] = (200, TOKEN)
    server.answers[UNSCOPED_KEY] = (200, {**TOKEN, "key_id": "kid-2"})
    server.answers[FAILING_KEY] = (500, {"detail": "down"})
    yield server
    server.stop()


@pytest.fixture
def observed_service(service_factory: Any, service_venv: ServiceVenv) -> Path:
    service = service_factory(package_name="svc_observed", include_example=False)
    package = service / "src" / "svc_observed" / "routers"
    (package / "probe.py").write_text(PROBE_ROUTER, encoding="utf-8")
    (package / "__init__.py").write_text(
        "from svc_observed.routers import probe\n\nrouters = [probe.router]\n", encoding="utf-8"
    )
    service_venv.install(service)
    return service


class Served:
    """The service under uvicorn with stdout and stderr in files of their own."""

    def __init__(self, venv: ServiceVenv, service: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.stdout_path = service / f"stdout-{self.port}.log"
        self.stderr_path = service / f"stderr-{self.port}.log"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [venv.python, "-m", "uvicorn", "svc_observed.main:app", "--port", str(self.port)],
                cwd=service,
                env=env,
                stdout=out,
                stderr=err,
            )
        wait_until_listening(self.port, self.process)  # type: ignore[arg-type]
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def get(self, path: str, key: str | None = None, **headers: str) -> httpx.Response:
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return self.client.get(path, headers=headers)

    def stop(self, grace: float = 30) -> tuple[str, str]:
        """SIGTERM (SIGKILL after `grace` s); the process's stdout and stderr."""
        self.client.close()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.stdout_path.read_text(), self.stderr_path.read_text()


def production_env(authority: AuthService, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = service_environ(
        env="production",
        redis_url=REDIS_URL,
        redis_prefix=f"obs-{uuid.uuid4().hex[:10]}",
        database_url=f"sqlite:///{tmp_path}/observed.db",
        auth_backend="http",
        auth_url=authority.url,
        metrics_flush_seconds="0.5",
    )
    env = {k: v for k, v in env.items() if not k.startswith("OTEL_")}
    env.update(extra)
    return env


def every_answer(served: Served) -> list[httpx.Response]:
    """200, 200 (its request id replaced), 429, 401, 403, 503, every key with the marker."""
    return [
        served.get("/probe/1", GOOD_KEY, **{"X-Request-ID": "client-req-1"}),
        served.get("/probe/2", GOOD_KEY, **{"X-Request-ID": "not acceptable!"}),
        served.get("/probe/3", GOOD_KEY),
        served.get("/probe/4", UNKNOWN_KEY),
        served.get("/scoped", UNSCOPED_KEY),
        served.get("/probe/5", FAILING_KEY),
    ]


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """Every stdout line parsed (each must be JSON)."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def access_lines(stdout: str) -> list[dict[str, Any]]:
    return [line for line in json_lines(stdout) if line["logger"] == "appkit_runtime.access"]


@pytest.mark.redis
def test_production_logs_are_json_lines_with_request_ids_and_every_access_field(
    observed_service: Path, service_venv: ServiceVenv, authority: AuthService, tmp_path: Path
) -> None:
    served = Served(service_venv, observed_service, production_env(authority, tmp_path))
    try:
        answers = every_answer(served)
    finally:
        stdout, stderr = served.stop()

    assert [a.status_code for a in answers] == [200, 200, 429, 401, 403, 503], stderr
    assert answers[0].headers["x-request-id"] == "client-req-1"
    replaced = answers[1].headers["x-request-id"]
    assert replaced and replaced != "not acceptable!"
    ids = [a.headers["x-request-id"] for a in answers]
    assert len(set(ids)) == len(ids)
    # The authority's call names the request it was made for.
    assert authority.received[0]["headers"]["X-Request-ID"] == "client-req-1"

    access = access_lines(stdout)
    assert [line["request_id"] for line in access] == ids
    for line in access:
        assert ACCESS_FIELDS <= line.keys(), line
        assert line["level"] == "INFO" and line["method"] == "GET"
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert [line["status"] for line in access] == [200, 200, 429, 401, 403, 503]
    assert [line["route"] for line in access] == ["/probe/{n}"] * 4 + ["/scoped", "/probe/{n}"]
    assert [(line["ratelimit"], line["ratelimit_remaining"]) for line in access] == [
        ("allowed", 1),
        ("allowed", 0),
        ("limited", 0),
        (None, None),
        (None, None),
        (None, None),
    ]
    for line in access[:3]:
        assert (line["org_id"], line["project_id"], line["key_id"]) == ("acme", "observed", "kid-1")
    assert (access[3]["org_id"], access[3]["key_id"]) == (None, None)
    # uvicorn's own lines are JSON too, and its raw-path access line is replaced by ours.
    loggers = {line["logger"] for line in json_lines(stdout)}
    assert "uvicorn.error" in loggers and "uvicorn.access" not in loggers
    assert not [line for line in json_lines(stdout) if "color_message" in line]
    assert MARKER not in stdout + stderr
    assert MARKER not in json.dumps([r["headers"] for r in authority.received])


@pytest.mark.redis
def test_monitor_mode_logs_would_limit(
    observed_service: Path, service_venv: ServiceVenv, authority: AuthService, tmp_path: Path
) -> None:
    env = production_env(authority, tmp_path, APPKIT_RATELIMIT_MODE="monitor")
    served = Served(service_venv, observed_service, env)
    try:
        statuses = [served.get(f"/probe/{n}", GOOD_KEY).status_code for n in range(3)]
    finally:
        stdout, stderr = served.stop()

    assert statuses == [200, 200, 200], stderr
    decisions = [(line["ratelimit"], line["status"]) for line in access_lines(stdout)]
    assert decisions == [("allowed", 200), ("allowed", 200), ("would_limit", 200)]
    assert MARKER not in stdout + stderr


def exporter_processes(endpoint: str) -> list[int]:
    """Span exporter processes still running that export to `endpoint`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if b"span_export_process" in (proc / "cmdline").read_bytes() and (
                endpoint.encode() in (proc / "environ").read_bytes()
            ):
                found.append(int(proc.name))
        except OSError:  # not a process, or gone meanwhile
            continue
    return found


def attributes(span: Any) -> dict[str, Any]:
    values = {}
    for attribute in span.attributes:
        value = attribute.value
        values[attribute.key] = getattr(value, value.WhichOneof("value"))
    return values


@pytest.mark.redis
def test_traces_reach_an_otlp_receiver_with_the_chain_and_no_key(
    observed_service: Path, service_venv: ServiceVenv, authority: AuthService, tmp_path: Path
) -> None:
    receiver = Receiver()
    env = production_env(
        authority,
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        # No batch leaves on its own during the test: what arrives, SIGTERM's shutdown sent.
        OTEL_BSP_SCHEDULE_DELAY="60000",
    )
    served = Served(service_venv, observed_service, env)
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    try:
        answers = every_answer(served)
        # A caller's W3C trace context makes the server span its child.
        continued = served.get(
            "/probe/6", GOOD_KEY, traceparent=f"00-{caller_trace}-{caller_span}-01"
        )
        time.sleep(1.0)  # one usage flush (every 0.5 s) has run
    finally:
        stdout, stderr = served.stop()  # SIGTERM: the lifespan's end flushes the spans
        receiver.stop()

    # The span exporter process, started by the shutdown's flush, left with the server.
    assert exporter_processes(receiver.endpoint) == []

    assert [a.status_code for a in answers] == [200, 200, 429, 401, 403, 503], stderr
    spans = receiver.spans()
    assert spans, stderr
    resource, _ = spans[0]
    service_names = [a.value.string_value for a in resource.attributes if a.key == "service.name"]
    assert service_names == ["svc-observed"]
    servers = [s for _, s in spans if s.kind == s.SPAN_KIND_SERVER]
    assert [s.name for s in servers] == (
        ["GET /probe/{n}"] * 4 + ["GET /scoped"] + ["GET /probe/{n}"] * 2
    )
    assert continued.status_code == 429
    assert (servers[-1].trace_id.hex(), servers[-1].parent_span_id.hex()) == (
        caller_trace,
        caller_span,
    )
    assert servers[0].trace_id.hex() != caller_trace and not servers[0].parent_span_id
    first = servers[0]
    assert {k: v for k, v in attributes(first).items() if k.startswith("appkit.")} == {
        "appkit.org_id": "acme",
        "appkit.project_id": "observed",
        "appkit.ratelimit.decision": "allowed",
        "appkit.ratelimit.remaining": 1,
    }
    assert attributes(servers[2])["appkit.ratelimit.decision"] == "limited"
    assert "appkit.org_id" not in attributes(servers[3])
    # The 403 (a known key without the scope) names its project; the 401 above names none.
    assert (
        attributes(servers[4])["appkit.org_id"],
        attributes(servers[4])["appkit.project_id"],
    ) == ("acme", "observed")
    children = {s.name for _, s in spans if s.parent_span_id == first.span_id}
    assert {"appkit.auth.authority", "appkit.ratelimit.lease"} <= children, children
    names = {s.name for _, s in spans}
    assert {"appkit.auth.cache", "appkit.ratelimit.override", "appkit.usage.flush"} <= names
    assert all(MARKER.encode() not in body for body in receiver.bodies)
    assert MARKER not in stdout + stderr


@pytest.mark.redis
def test_a_hanging_then_stopped_collector_never_slows_a_request(
    observed_service: Path, service_venv: ServiceVenv, authority: AuthService, tmp_path: Path
) -> None:
    # Accepts connections (the kernel's backlog) but never reads or answers one.
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(64)
    endpoint = f"http://127.0.0.1:{hanging.getsockname()[1]}"
    env = production_env(
        authority,
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_TIMEOUT="20",
        OTEL_BSP_SCHEDULE_DELAY="20",
        APPKIT_RATELIMIT_DEFAULT="1000/60",
    )
    authority.answers[GOOD_KEY] = (200, {**TOKEN, "rate_limit": "1000/60"})
    served = Served(service_venv, observed_service, env)
    timings: list[tuple[int, float]] = []

    def call(n: int) -> None:
        started = time.monotonic()
        status = served.get(f"/probe/{n}", GOOD_KEY).status_code
        timings.append((status, time.monotonic() - started))

    try:
        for n in range(40):
            call(n)
            time.sleep(0.02)  # spans keep reaching the exporter stuck on the collector
        hanging.close()  # now the collector is gone: connections are refused
        for n in range(40):
            call(n)
            time.sleep(0.02)
    finally:
        served.stop(grace=5)

    assert [status for status, _ in timings] == [200] * 80
    # An export waits up to 20 s on the hanging collector; no request waited for it.
    assert max(seconds for _, seconds in timings) < 3.0, timings
