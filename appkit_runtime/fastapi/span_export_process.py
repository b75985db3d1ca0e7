"""Spans encoded and sent by a child process, so the server's own CPU serves requests.

The OTLP encoder builds a protobuf message for every span and attribute: 31 to 53 µs a span
on the bench machine, under the server's GIL when it runs in the server. Here the span queue
hands each batch of records (`span_recorder.SpanRecord`) to `ExportProcess`, which writes them,
pickled, down a pipe to one child process per server process; the child (`python -m` this
module) rebuilds them as the SDK's `ReadableSpan`s, applying the span limits the OTEL
variables set, and exports them with the exporters those variables name. The pipe only ever
joins a process to the child it started.

A child that dies is started again at the next batch; a child that cannot keep up (a
collector that hangs) fills the pipe, then the span queue, which drops spans and never makes
a request wait.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import IO, Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from appkit_runtime.fastapi.span_recorder import ContextFields, SpanRecord

logger = logging.getLogger("appkit_runtime")

_LENGTH = struct.Struct(">I")
# How long a batch may wait for room in the pipe (a child stuck on a hanging collector)
# before it is dropped, and how long shutdown waits for the child to send what it has.
WRITE_SECONDS = 5.0
EXIT_SECONDS = 3.0


def _span_context(fields: ContextFields | None) -> SpanContext | None:
    if fields is None:
        return None
    trace_id, span_id, is_remote, flags, state = fields
    return SpanContext(
        trace_id, span_id, is_remote, TraceFlags(flags), TraceState(list(state)) if state else None
    )


def readable_span(record: SpanRecord, resource: Resource, limits: SpanLimits) -> ReadableSpan:
    """The SDK's `ReadableSpan` for `record`, on `resource`, within `limits` as the SDK's own
    span keeps them (what is over a limit is dropped and counted)."""
    (name, context, parent, kind, start, end, attributes, events, links) = record[:9]
    code, description, scope, dropped = record[9:]
    item_length = limits.max_attribute_length

    def bounded(given: dict[str, Any], count: int | None, length: int | None, dropped: int) -> Any:
        # The recorder gave valid values: the SDK's bounded mapping (each value checked again,
        # under a lock) is needed only where a limit cuts or a count is to be reported.
        if not dropped and length is None and (count is None or len(given) <= count):
            return given
        kept = BoundedAttributes(count, given, immutable=True, max_value_len=length)
        kept.dropped += dropped
        return kept

    def at_most(count: int | None, items: list[Any]) -> Sequence[Any]:
        return items if count is None or len(items) <= count else BoundedList.from_seq(count, items)

    return ReadableSpan(
        name=name,
        context=_span_context(context),
        parent=_span_context(parent),
        resource=resource,
        attributes=bounded(
            attributes, limits.max_span_attributes, limits.max_span_attribute_length, dropped
        ),
        events=at_most(
            limits.max_events,
            [
                Event(n, bounded(a, limits.max_event_attributes, item_length, d), timestamp=t)
                for n, t, a, d in events
            ],
        ),
        links=at_most(
            limits.max_links,
            [
                Link(_span_context(c), bounded(a, limits.max_link_attributes, item_length, d))  # type: ignore[arg-type]
                for c, a, d in links
            ],
        ),
        kind=SpanKind(kind),
        status=Status(StatusCode(code), description),
        start_time=start,
        end_time=end,
        instrumentation_scope=None if scope is None else InstrumentationScope(*scope),
    )


class ExportProcess:
    """This process's child exporter: `send` writes a batch to it, starting it when needed."""

    def __init__(self, resource: Resource, log_style: str | None, log_level: str) -> None:
        self._start = pickle.dumps(
            (dict(resource.attributes), resource.schema_url, log_style, log_level)
        )
        self._child: subprocess.Popen[bytes] | None = None
        self._owner = 0
        self._dropped = 0

    def send(self, records: Sequence[SpanRecord]) -> bool:
        """Write `records` to the child; False (and the spans dropped) when it cannot take
        them within `WRITE_SECONDS` or is gone."""
        payload = pickle.dumps(records, pickle.HIGHEST_PROTOCOL)
        try:
            _write_frame(self._running_child(), payload, time.monotonic() + WRITE_SECONDS)
        except PipeStalled as stalled:
            self._dropped += len(records)
            # Each worker counts its own: the pid tells whose total it is.
            logger.warning(
                "span exporter process is not keeping up; %d spans dropped so far by pid %d",
                self._dropped,
                os.getpid(),
            )
            if stalled.torn:
                # Part of the frame went in: what the child reads next is no longer a frame.
                self._stop_child()
            return False
        except OSError as error:
            logger.warning("span exporter process is gone (%s); a new one starts next", error)
            self._let_go()
            return False
        return True

    def start(self) -> None:
        """Start the child now if none is running for this process."""
        self._running_child()

    def shutdown(self) -> None:
        """Close the pipe: the child sends what it has and exits (killed if it takes longer
        than `EXIT_SECONDS`)."""
        child, self._child = self._child, None
        if child is None or self._owner != os.getpid():
            return
        assert child.stdin is not None
        try:
            child.stdin.close()
        except OSError:
            pass
        try:
            child.wait(EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    def kill(self) -> None:
        """Kill the child at once, whatever it still holds: a shutdown out of time must not
        leave it to retry a collector that hangs after the server is gone."""
        child = self._child
        if child is not None and self._owner == os.getpid():
            child.kill()

    def _stop_child(self) -> None:
        """Kill the current child (its spans are lost) and forget it."""
        child = self._child
        self._let_go()
        if child is not None:
            child.kill()
            child.wait()

    def _running_child(self) -> IO[bytes]:
        # A child started before a fork belongs to the parent: a forked worker starts its own.
        if self._child is None or self._owner != os.getpid() or self._child.poll() is not None:
            self._let_go()
            # The parent's pid goes in the arguments: by the time the child has imported the
            # SDK, a parent killed at once would already be gone and `getppid()` another.
            self._child = subprocess.Popen(
                [sys.executable, "-m", __name__, str(os.getpid())],
                stdin=subprocess.PIPE,
                close_fds=True,
            )
            self._owner = os.getpid()
            assert self._child.stdin is not None
            os.set_blocking(self._child.stdin.fileno(), False)
            _write_frame(self._child.stdin, self._start, time.monotonic() + WRITE_SECONDS)
        assert self._child.stdin is not None
        return self._child.stdin

    def _let_go(self) -> None:
        """Close this process's end of the current child's pipe and forget the child."""
        child, self._child = self._child, None
        if child is not None and child.stdin is not None:
            try:
                child.stdin.close()
            except OSError:
                pass
            if self._owner == os.getpid():
                child.poll()  # reaped, if it has exited


class PipeStalled(TimeoutError):
    """The child read nothing for `WRITE_SECONDS`; `torn` when part of the frame went in."""

    def __init__(self, torn: bool) -> None:
        super().__init__("span exporter process stopped reading")
        self.torn = torn


def _write_frame(pipe: IO[bytes], payload: bytes, deadline: float) -> None:
    """Write `payload` with its length in front to the non-blocking `pipe` by `deadline`."""
    frame = _LENGTH.pack(len(payload)) + payload
    data = memoryview(frame)
    descriptor = pipe.fileno()
    while data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([], [descriptor], [], left)[1]:
            raise PipeStalled(torn=len(data) < len(frame))
        try:
            data = data[os.write(descriptor, data) :]
        except BlockingIOError:
            continue


def _read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame's payload, or None at the end of the stream."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    payload = stream.read(length)
    return payload if len(payload) == length else None


def main() -> None:
    """The child: export every batch its parent writes, until the parent closes the pipe."""
    from appkit_runtime.fastapi.span_resource import OnceHashedResource
    from appkit_runtime.fastapi.tracing import span_exporters
    from appkit_runtime.log_config import install_log_handler

    parent = int(sys.argv[1]) if len(sys.argv) > 1 else os.getppid()
    # The parent's end of the pipe decides when this ends: a Ctrl-C or a SIGTERM sent to the
    # whole process group must not lose the spans the parent still flushes as it stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stream = sys.stdin.buffer
    start = _read_frame(stream)
    if start is None:
        return
    attributes, schema_url, log_style, log_level = pickle.loads(start)
    if log_style is not None:
        install_log_handler(log_style, log_level)
    resource = OnceHashedResource(attributes, schema_url)
    exporters = span_exporters()
    limits = SpanLimits()
    orphaned_until = None
    sent = True
    while (frame := _read_frame(stream)) is not None:
        # A parent killed outright (SIGKILL, or SIGTERM without its lifespan's end) leaves
        # the frames it wrote: send them while the collector takes them, for `EXIT_SECONDS`
        # at most (a collector that is down or hangs would otherwise keep an orphan retrying
        # each frame for the exporter's whole timeout).
        if os.getppid() != parent:
            orphaned_until = orphaned_until or time.monotonic() + EXIT_SECONDS
            if not sent or time.monotonic() > orphaned_until:
                break
        spans = [readable_span(record, resource, limits) for record in pickle.loads(frame)]
        results = [exporter.export(spans) for exporter in exporters]
        sent = all(result is SpanExportResult.SUCCESS for result in results)
    for exporter in exporters:
        exporter.shutdown()


if __name__ == "__main__":
    main()
