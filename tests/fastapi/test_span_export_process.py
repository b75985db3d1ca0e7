"""Spans recorded in the server and exported from a child process arrive as the SDK's own
tracer and exporter would send them."""

from __future__ import annotations

import asyncio
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
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.span import TraceState

from appkit_runtime.fastapi import span_export_process
from appkit_runtime.fastapi import tracing as fastapi_tracing
from appkit_runtime.fastapi.fastapi import get_fastapi_app
from appkit_runtime.fastapi.span_export_process import ExportProcess, readable_span
from appkit_runtime.fastapi.span_queue import SpanQueue
from appkit_runtime.fastapi.span_recorder import SpanRecord, SpanRecorder
from appkit_runtime.fastapi.span_resource import service_resource
from appkit_runtime.tracing import use_tracer
from tests.otlp_receiver import Receiver

RESOURCE = service_resource("svc-spans")
SCOPE = ("appkit_runtime", "1.2.3", None)


class CountingIds(IdGenerator):
    """Ids 1, 2, 3…: two tracers given one each make the same ids in the same order."""

    def __init__(self) -> None:
        self.last = 0

    def generate_span_id(self) -> int:
        self.last += 1
        return self.last

    def generate_trace_id(self) -> int:
        self.last += 1
        return self.last


def run_spans(tracer: trace.Tracer) -> None:
    """A server span continuing a caller's trace (with its tracestate), tagged as the runtime
    tags one, with a child that failed (an exception event), a linked span with an event, and
    a root span with what the SDK cleans or drops and counts: a list (an array), keys that
    are not strings or are empty, links to nothing."""
    caller = SpanContext(
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "abc")]),
    )
    server = tracer.start_span(
        "GET /orders",
        context=trace.set_span_in_context(trace.NonRecordingSpan(caller)),
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "GET"},
        start_time=1_000,
    )
    server.update_name("GET /orders/{id}")
    server.set_attributes(
        {"appkit.org_id": "acme", "appkit.ratelimit.remaining": 7, "tags": ("a", "b")}
    )
    with trace.use_span(server):
        with pytest.raises(ConnectionError):
            with tracer.start_as_current_span("appkit.ratelimit.lease", start_time=2_000):
                raise ConnectionError("redis went away")
        linked = tracer.start_span(
            "linked", links=[Link(caller, {"why": "batch"})], start_time=3_000
        )
        linked.add_event("note", {"n": 1, "ok": True, "ratio": 0.5}, timestamp=3_500)
        linked.set_status(trace.StatusCode.OK)
        linked.set_status(trace.StatusCode.ERROR, "ignored: OK is final")
        linked.end(4_000)
    server.set_status(trace.Status(trace.StatusCode.ERROR, "boom"))
    server.end(5_000)
    server.set_attribute("after.end", "ignored")
    odd = tracer.start_span(
        "odd",
        context=trace.set_span_in_context(trace.INVALID_SPAN),
        links=[Link(trace.INVALID_SPAN_CONTEXT), Link(trace.INVALID_SPAN_CONTEXT, {"k": 1})],
    )
    odd.set_attribute("list", [1, 2])
    odd.set_attribute(123, "a key that is not a string")  # type: ignore[arg-type]
    odd.set_attributes({"": "an empty key", "kept": "yes"})
    odd.add_link(None)  # type: ignore[arg-type]
    odd.add_event("bad keys", {"": 1, "fine": 2}, timestamp=5_500)
    odd.set_attribute("none", None)  # type: ignore[arg-type]
    odd.set_attribute("dict", {"a": 1})  # type: ignore[arg-type]
    odd.end(6_000)


def sdk_spans() -> list[ReadableSpan]:
    kept = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE, id_generator=CountingIds())
    provider.add_span_processor(SimpleSpanProcessor(kept))
    run_spans(provider.get_tracer(*SCOPE))
    return list(kept.get_finished_spans())


def recorded(sampler=None) -> list[SpanRecord]:
    records: list[SpanRecord] = []
    provider = TracerProvider(sampler=sampler)
    run_spans(SpanRecorder(records.append, provider.sampler, CountingIds(), SCOPE))
    return records


def encoded(spans: list[ReadableSpan]) -> ExportTraceServiceRequest:
    """The OTLP request for `spans`, the one clock reading the test cannot give (the
    exception event's) and the stack trace (its frames name each tracer's module) cleared."""
    request = encode_spans(spans)
    for span in request.resource_spans[0].scope_spans[0].spans:
        for event in span.events:
            if event.name == "exception":
                event.time_unix_nano = 0
                kept = [a for a in event.attributes if a.key != "exception.stacktrace"]
                del event.attributes[:]
                event.attributes.extend(kept)
        if span.name == "appkit.ratelimit.lease":
            span.end_time_unix_nano = 0
        if span.name == "odd":
            span.start_time_unix_nano = 0
    return request


def test_recorded_spans_encode_exactly_as_the_sdks_own() -> None:
    records = recorded()
    limits = SpanLimits()
    rebuilt = [readable_span(r, RESOURCE, limits) for r in pickle.loads(pickle.dumps(records))]

    assert encoded(rebuilt) == encoded(sdk_spans())
    spans = encoded(rebuilt).resource_spans[0].scope_spans[0].spans
    assert [s.name for s in spans] == [
        "appkit.ratelimit.lease", "linked", "GET /orders/{id}", "odd"
    ]  # fmt: skip
    failed = spans[0]
    assert (failed.status.code, [e.name for e in failed.events]) == (
        failed.status.STATUS_CODE_ERROR,
        ["exception"],
    )
    odd = {a.key: a.value for a in spans[3].attributes}
    assert [v.int_value for v in odd["list"].array_value.values] == [1, 2]
    assert (list(odd), spans[3].dropped_attributes_count) == (["list", "kept", "none", "dict"], 2)
    assert [len(link.attributes) for link in spans[3].links] == [1]
    assert spans[3].events[0].dropped_attributes_count == 1


def test_the_span_limits_apply_in_the_export_process_as_in_the_sdk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "2")
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "2")
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "0")
    rebuilt = [readable_span(r, RESOURCE, SpanLimits()) for r in recorded()]

    assert encoded(rebuilt) == encoded(sdk_spans())
    server = next(s for s in rebuilt if s.name.startswith("GET"))
    assert (server.dropped_attributes, dict(server.attributes)) == (
        2,
        {"appkit.ratelimit.remaining": 7, "tags": ("a", "b")},
    )
    assert [(len(s.events), s.dropped_events) for s in rebuilt[:2]] == [(0, 1), (0, 1)]


def test_the_sampler_the_otel_variables_name_decides() -> None:
    never = recorded(ParentBased(TraceIdRatioBased(0.0)))
    # The caller's sampled trace is followed; the new root trace ("odd") is not sampled.
    assert [r[0] for r in never] == ["appkit.ratelimit.lease", "linked", "GET /orders/{id}"]


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
    exporter = ExportProcess(RESOURCE, None, "INFO")
    spans = recorded()
    try:
        assert exporter.send(spans)
        assert sorted(received_names(receiver, 4)) == sorted(s[0] for s in spans)
        first = exporter._child
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        first.wait()

        assert exporter.send(spans[:1])
        assert received_names(receiver, 5).count("appkit.ratelimit.lease") == 2
        assert exporter._child is not None and exporter._child.pid != first.pid
    finally:
        exporter.shutdown()
    resource, sent = receiver.spans()[-1]
    names = [a.value.string_value for a in resource.attributes if a.key == "service.name"]
    assert (names, sent.trace_id) == (["svc-spans"], spans[0][1][0].to_bytes(16, "big"))


def test_shutdown_sends_what_is_left_and_the_child_exits(receiver: Receiver) -> None:
    exporter = ExportProcess(RESOURCE, None, "INFO")
    assert exporter.send(recorded())
    child = exporter._child
    assert child is not None

    exporter.shutdown()

    assert child.poll() == 0
    assert len(receiver.spans()) == 4


def test_a_stuck_child_costs_a_bounded_wait_and_a_torn_frame_a_new_child(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(span_export_process, "WRITE_SECONDS", 0.3)
    exporter = ExportProcess(RESOURCE, None, "INFO")
    spans = recorded()
    assert exporter.send(spans)
    assert len(received_names(receiver, 4)) == 4
    stuck = exporter._child
    assert stuck is not None
    os.kill(stuck.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        # Over 100 KB (each copy with its own attribute: pickle writes a repeated object
        # once): more than the pipe holds, so the frame is cut short.
        copies = [(*r[:6], {"n": f"{n:0128}"}, *r[7:]) for n in range(800) for r in spans]
        sent = exporter.send(copies)
        took = time.monotonic() - started
    finally:
        if stuck.poll() is None:
            os.kill(stuck.pid, signal.SIGCONT)
    assert (sent, took < 2.0) == (False, True)
    assert stuck.poll() is not None  # killed: its stream no longer starts at a frame

    try:
        assert exporter.send(spans)
        assert len(received_names(receiver, 8)) == 8
    finally:
        exporter.shutdown()


def test_shutdown_gives_a_stuck_child_a_bounded_time(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(span_export_process, "EXIT_SECONDS", 0.3)
    exporter = ExportProcess(RESOURCE, None, "INFO")
    assert exporter.send(recorded())
    child = exporter._child
    assert child is not None
    os.kill(child.pid, signal.SIGSTOP)

    started = time.monotonic()
    exporter.shutdown()

    assert time.monotonic() - started < 2.0
    assert child.poll() == -signal.SIGKILL


async def test_a_shutdown_flush_out_of_time_kills_the_exporter_process(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collector that hangs keeps the child from reading: the flush gives up at its
    deadline and the child goes with the server, instead of retrying alone."""
    monkeypatch.setattr(span_export_process, "WRITE_SECONDS", 30.0)
    export = ExportProcess(RESOURCE, None, "INFO")
    queue = SpanQueue(export, {"OTEL_BSP_SCHEDULE_DELAY": "60000"})
    assert export.send(recorded())
    child = export._child
    assert child is not None
    os.kill(child.pid, signal.SIGSTOP)
    record = recorded()[0]
    for n in range(1500):  # 300 KB of distinct names: more than the pipe holds
        queue.put((f"{n:0200}", *record[1:]))
    monkeypatch.setattr(fastapi_tracing, "_queue", queue)
    monkeypatch.setattr(fastapi_tracing, "_provider", None)

    started = time.monotonic()
    await fastapi_tracing.flush_traces(seconds=1.0)

    assert time.monotonic() - started < 3.0
    assert child.wait(5) == -signal.SIGKILL


def child_of(export: ExportProcess, seconds: float = 10.0) -> subprocess.Popen[bytes] | None:
    """The export process's child once it has one (None after `seconds`)."""
    deadline = time.monotonic() + seconds
    while export._child is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return export._child


@pytest.mark.parametrize("export", ["process", "thread"])
async def test_the_lifespans_end_sends_the_queued_spans_and_stops_the_child(
    export: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """uvicorn re-raises SIGTERM after shutting down, so exit handlers never run: the
    lifespan's end is the one place left to send what is queued."""
    monkeypatch.setenv("APPKIT_DATABASE_URL", f"sqlite:///{tmp_path}/app.db")
    monkeypatch.setenv("APPKIT_TRACE_EXPORT", export)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # nothing leaves on its own
    for made in ("_tracer", "_queue", "_provider"):
        monkeypatch.setattr(fastapi_tracing, made, None)
    app = get_fastapi_app("flushed", databases=())

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    try:
        async with LifespanManager(app) as manager:
            queue = fastapi_tracing._queue
            started_child = None
            if queue is not None:  # the queue's thread starts it
                started_child = await asyncio.to_thread(child_of, queue.export)
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                statuses = [(await client.get("/ping")).status_code for _ in range(3)]
            assert receiver.spans() == []
            if export == "process":  # started with the app, before any span
                assert fastapi_tracing._queue is not None
                assert started_child is not None and started_child.poll() is None
        assert statuses == [200] * 3
        assert [s.name for _, s in receiver.spans()].count("GET /ping") == 3
        queue = fastapi_tracing._queue
        if export == "process":
            assert queue is not None and queue._thread is None  # a next span starts it again
            assert queue.export._child is None
        else:
            assert queue is None
    finally:
        use_tracer(None)
        if fastapi_tracing._provider is not None:
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
from appkit_runtime.fastapi.span_export_process import ExportProcess
from appkit_runtime.fastapi.span_resource import service_resource
from tests.fastapi.test_span_export_process import recorded
exporter = ExportProcess(service_resource("svc-orphan"), None, "INFO")
spans = recorded()
for _ in range(30):
    exporter.send(spans)
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
    # Not `run`: the child keeps the parent's stdout open, and waiting for its end would
    # wait for the child.
    parent = subprocess.Popen(
        [sys.executable, "-c", ORPHANING_PARENT],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert parent.wait(60) == 0
    started = time.monotonic()
    while running(child) and time.monotonic() - started < 30:
        time.sleep(0.1)
    parent.stdout.close()
    # 30 frames at up to 1 s each without the limit; the frame in hand, and then no more
    # once an export fails, with it.
    assert time.monotonic() - started < 8, "the orphaned exporter process is still running"
