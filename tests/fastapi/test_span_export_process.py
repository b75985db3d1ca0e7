"""Spans exported from a child process arrive as the SDK's own exporter would send them."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.span import TraceState

from appkit_runtime.fastapi import span_export_process
from appkit_runtime.fastapi import tracing as fastapi_tracing
from appkit_runtime.fastapi.fastapi import get_fastapi_app
from appkit_runtime.fastapi.span_export_process import (
    ProcessSpanExporter,
    readable_span,
    span_record,
)
from appkit_runtime.fastapi.span_resource import service_resource
from appkit_runtime.tracing import use_tracer
from tests.otlp_receiver import Receiver

RESOURCE = service_resource("svc-spans")


def made_spans() -> list[ReadableSpan]:
    """A server span continuing a caller's trace (with its tracestate), tagged as the runtime
    tags one, with a child that failed (an exception event) and a linked span."""
    kept = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(kept))
    tracer = provider.get_tracer("appkit_runtime", "1.2.3")
    caller = SpanContext(
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "abc")]),
    )
    server = tracer.start_span(
        "GET /orders/{id}",
        context=trace.set_span_in_context(trace.NonRecordingSpan(caller)),
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "GET", "http.response.status_code": 200},
    )
    server.set_attributes(
        {"appkit.org_id": "acme", "appkit.ratelimit.remaining": 7, "tags": ("a", "b")}
    )
    with trace.use_span(server, end_on_exit=True):
        with pytest.raises(ConnectionError):
            with tracer.start_as_current_span("appkit.ratelimit.lease"):
                raise ConnectionError("redis went away")
        linked = tracer.start_span("linked", links=[Link(caller, {"why": "batch"})])
        linked.add_event("note", {"n": 1, "ok": True, "ratio": 0.5})
        linked.end()
    return list(kept.get_finished_spans())


def test_a_record_rebuilds_the_span_the_otlp_encoder_sends_unchanged() -> None:
    spans = made_spans()
    assert [s.name for s in spans] == ["appkit.ratelimit.lease", "linked", "GET /orders/{id}"]

    rebuilt = [
        readable_span(r, RESOURCE)
        for r in pickle.loads(pickle.dumps([span_record(s) for s in spans]))
    ]

    assert encode_spans(rebuilt) == encode_spans(spans)
    failed = encode_spans(rebuilt).resource_spans[0].scope_spans[0].spans[0]
    assert failed.status.code == failed.status.STATUS_CODE_ERROR
    assert [e.name for e in failed.events] == ["exception"]


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A collector the child exports to: the OTLP variables are inherited by the child."""
    found = Receiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", found.endpoint)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL", raising=False)
    yield found
    found.stop()


def received_names(receiver: Receiver, count: int, seconds: float = 20.0) -> list[str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(receiver.spans()) < count:
        time.sleep(0.05)
    return [span.name for _, span in receiver.spans()]


def test_the_child_sends_the_spans_and_a_dead_child_is_replaced(receiver: Receiver) -> None:
    exporter = ProcessSpanExporter(RESOURCE, None, "INFO")
    spans = made_spans()
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        assert sorted(received_names(receiver, 3)) == sorted(s.name for s in spans)
        first = exporter._child
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        first.wait()

        assert exporter.export(spans[:1]) is SpanExportResult.SUCCESS
        assert received_names(receiver, 4).count("appkit.ratelimit.lease") == 2
        assert exporter._child is not None and exporter._child.pid != first.pid
    finally:
        exporter.shutdown()
    resource, sent = receiver.spans()[-1]
    names = [a.value.string_value for a in resource.attributes if a.key == "service.name"]
    assert (names, sent.trace_id) == (["svc-spans"], spans[0].context.trace_id.to_bytes(16, "big"))


def test_shutdown_sends_what_is_left_and_the_child_exits(receiver: Receiver) -> None:
    exporter = ProcessSpanExporter(RESOURCE, None, "INFO")
    assert exporter.export(made_spans()) is SpanExportResult.SUCCESS
    child = exporter._child
    assert child is not None

    exporter.shutdown()

    assert child.poll() == 0
    assert len(receiver.spans()) == 3


def test_a_stuck_child_costs_a_bounded_wait_and_a_torn_frame_a_new_child(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(span_export_process, "WRITE_SECONDS", 0.3)
    exporter = ProcessSpanExporter(RESOURCE, None, "INFO")
    spans = made_spans()
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert len(received_names(receiver, 3)) == 3
    stuck = exporter._child
    assert stuck is not None
    os.kill(stuck.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        # About 90 KB: more than the pipe holds, so the frame is cut short.
        result = exporter.export(spans * 200)
        took = time.monotonic() - started
    finally:
        if stuck.poll() is None:
            os.kill(stuck.pid, signal.SIGCONT)
    assert (result, took < 2.0) == (SpanExportResult.FAILURE, True)
    assert stuck.poll() is not None  # killed: its stream no longer starts at a frame

    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        assert len(received_names(receiver, 6)) == 6
    finally:
        exporter.shutdown()


def test_shutdown_gives_a_stuck_child_a_bounded_time(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(span_export_process, "EXIT_SECONDS", 0.3)
    exporter = ProcessSpanExporter(RESOURCE, None, "INFO")
    assert exporter.export(made_spans()) is SpanExportResult.SUCCESS
    child = exporter._child
    assert child is not None
    os.kill(child.pid, signal.SIGSTOP)

    started = time.monotonic()
    exporter.shutdown()

    assert time.monotonic() - started < 2.0
    assert child.poll() == -signal.SIGKILL


async def test_the_lifespans_end_sends_the_queued_spans_and_stops_the_child(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """uvicorn re-raises SIGTERM after shutting down, so exit handlers never run: the
    lifespan's end is the one place left to send what is queued."""
    monkeypatch.setenv("APPKIT_DATABASE_URL", f"sqlite:///{tmp_path}/app.db")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # nothing leaves on its own
    monkeypatch.setattr(fastapi_tracing, "_provider", None)
    monkeypatch.setattr(fastapi_tracing, "_process_exporters", [])
    app = get_fastapi_app("flushed", databases=())

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                statuses = [(await client.get("/ping")).status_code for _ in range(3)]
            assert receiver.spans() == []
            (exporter,) = fastapi_tracing._process_exporters
        # Checked before the provider's own shutdown below, which would flush them too.
        assert statuses == [200] * 3
        assert [s.name for _, s in receiver.spans()].count("GET /ping") == 3
        assert exporter._child is None  # closed; a next batch would start a new one
    finally:
        use_tracer(None)
        fastapi_tracing._provider.shutdown()


def running(pid: int) -> bool:
    """Whether `pid` runs (an exited process its new parent has not reaped yet does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


ORPHANING_PARENT = """
import os, sys
from appkit_runtime.fastapi.span_export_process import ProcessSpanExporter
from appkit_runtime.fastapi.span_resource import service_resource
from tests.fastapi.test_span_export_process import made_spans
exporter = ProcessSpanExporter(service_resource("svc-orphan"), None, "INFO")
spans = made_spans()
for _ in range(30):
    exporter.export(spans)
print(exporter._child.pid, flush=True)
os._exit(0)  # as if killed: no shutdown, the frames left in the pipe
"""


def test_an_orphaned_child_gives_up_within_seconds(tmp_path) -> None:
    """Its server killed outright and the collector down, the child would otherwise retry
    each frame left in the pipe for the exporter's whole timeout."""
    refused = Receiver()
    refused.stop()  # a port nobody listens on now
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": refused.endpoint,
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    env.pop("OTEL_TRACES_EXPORTER", None)
    done = subprocess.run(
        [sys.executable, "-c", ORPHANING_PARENT],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    child = int(done.stdout)
    started = time.monotonic()
    while running(child) and time.monotonic() - started < 20:
        time.sleep(0.1)
    # 30 frames at up to 1 s each without the limit; 3 s and the frame in hand with it.
    assert time.monotonic() - started < 8, "the orphaned exporter process is still running"
