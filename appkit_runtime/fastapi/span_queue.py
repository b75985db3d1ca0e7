"""Finished spans' records, held in memory and handed to the export process in batches.

What the SDK's `BatchSpanProcessor` does, for records instead of `ReadableSpan`s, under the
same variables: a thread wakes every `OTEL_BSP_SCHEDULE_DELAY` ms, or as soon as
`OTEL_BSP_MAX_EXPORT_BATCH_SIZE` records wait, and sends what is queued in batches of that
size. A request only appends to a deque; when `OTEL_BSP_MAX_QUEUE_SIZE` records wait (the
export process is not keeping up), a new span is dropped and counted, never waited for.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Mapping

from appkit_runtime.fastapi.span_export_process import ExportProcess
from appkit_runtime.fastapi.span_recorder import SpanRecord

logger = logging.getLogger("appkit_runtime")


def _batch_setting(environ: Mapping[str, str], name: str, default: int) -> int:
    # `tracing_settings.check_otel_variables` has refused a value that is not an integer.
    return int(environ.get(name, "").strip() or default)


class SpanQueue:
    """Records put by the request path, sent to `export` by a thread of this process."""

    def __init__(self, export: ExportProcess, environ: Mapping[str, str] = os.environ) -> None:
        self.export = export
        self.delay = _batch_setting(environ, "OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000
        self.capacity = _batch_setting(environ, "OTEL_BSP_MAX_QUEUE_SIZE", 2048)
        self.batch_size = _batch_setting(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)
        self._forget()
        forget = weakref.WeakMethod(self._forget)
        # A forked worker starts empty, with a thread and an export process of its own.
        os.register_at_fork(after_in_child=lambda: (method := forget()) and method())

    def _forget(self) -> None:
        self._records: deque[SpanRecord] = deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closing = False
        self.dropped = 0
        self._reported = 0

    def put(self, record: SpanRecord) -> None:
        """Queue `record` (a span that ended); drop it when the queue is full."""
        records = self._records
        if len(records) >= self.capacity:
            self.dropped += 1
            return
        records.append(record)
        if self._thread is None:
            self.start()
        if len(records) >= self.batch_size and not self._wake.is_set():
            self._wake.set()

    def close(self) -> None:
        """Send every queued record and close the export process; a later `put` starts
        again."""
        with self._lock:
            thread = self._thread
            if thread is None:
                return
            self._closing = True
            self._wake.set()
        thread.join()
        with self._lock:
            self._thread = None
            self._closing = False

    def start(self) -> None:
        """Start the thread that sends (and, through it, the export process) if it is not
        running."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="appkit-span-queue", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        try:
            self.export.start()
        except OSError as error:  # the next batch tries again
            logger.warning("span exporter process did not start (%s)", error)
        while True:
            self._wake.wait(self.delay)
            self._wake.clear()
            closing = self._closing
            self._send_queued()
            if closing:
                self.export.shutdown()
                return

    def _send_queued(self) -> None:
        records = self._records
        while records:
            batch = [records.popleft() for _ in range(min(self.batch_size, len(records)))]
            try:
                self.export.send(batch)
            except Exception:
                # As the SDK's batch processor: this batch is lost, the thread goes on.
                logger.exception("span batch of %d not sent", len(batch))
        if self.dropped != self._reported:
            self._reported = self.dropped
            logger.warning(
                "span queue full (OTEL_BSP_MAX_QUEUE_SIZE=%d); %d spans dropped so far by pid %d",
                self.capacity,
                self.dropped,
                os.getpid(),
            )
