"""The span queue batches as the SDK's batch processor does, and never makes a request wait."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest

pytest.importorskip("opentelemetry.sdk")

from appkit_runtime.fastapi.span_queue import SpanQueue
from appkit_runtime.fastapi.span_recorder import SpanRecord


class KeptBatches:
    """Where the queue sends (in place of the export process): keeps each batch; `stall`
    holds `send` until released, as a child stuck on a hanging collector holds the pipe."""

    def __init__(self) -> None:
        self.batches: list[list[SpanRecord]] = []
        self.started = self.shut_down = 0
        self.stall = threading.Event()
        self.stall.set()

    def send(self, records: list[SpanRecord]) -> bool:
        self.stall.wait()
        self.batches.append(list(records))
        return True

    def start(self) -> None:
        self.started += 1

    def shutdown(self) -> None:
        self.shut_down += 1

    def sent(self) -> list[SpanRecord]:
        return [record for batch in self.batches for record in batch]


def queue_of(kept: KeptBatches, **variables: str) -> SpanQueue:
    return SpanQueue(kept, {"OTEL_BSP_SCHEDULE_DELAY": "60000", **variables})  # type: ignore[arg-type]


def wait_for(check, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)
    return check()


def test_a_full_batch_leaves_at_once_in_order() -> None:
    kept = KeptBatches()
    queue = queue_of(kept, OTEL_BSP_MAX_EXPORT_BATCH_SIZE="4")
    for n in range(3):
        queue.put((n,))
    time.sleep(0.2)
    assert kept.batches == []  # under a batch, the schedule delay (60 s here) decides

    queue.put((3,))

    assert wait_for(lambda: len(kept.batches) == 1)
    assert kept.batches == [[(0,), (1,), (2,), (3,)]]
    queue.close()


def test_the_schedule_delay_sends_what_waits() -> None:
    kept = KeptBatches()
    queue = queue_of(kept, OTEL_BSP_SCHEDULE_DELAY="50")
    queue.put(("lone",))
    assert wait_for(lambda: kept.sent() == [("lone",)], seconds=2)
    queue.close()


def test_close_sends_everything_in_batches_and_a_later_span_starts_again() -> None:
    kept = KeptBatches()
    queue = queue_of(kept, OTEL_BSP_MAX_EXPORT_BATCH_SIZE="3", OTEL_BSP_MAX_QUEUE_SIZE="100")
    kept.stall.clear()
    for n in range(8):
        queue.put((n,))
    kept.stall.set()

    queue.close()

    assert kept.sent() == [(n,) for n in range(8)]
    assert max(len(batch) for batch in kept.batches) == 3
    assert (kept.started, kept.shut_down) == (1, 1)  # started with the thread, not per batch
    queue.put(("after",))
    queue.close()
    assert kept.sent()[-1] == ("after",) and kept.shut_down == 2


def test_a_full_queue_drops_new_spans_without_waiting_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kept = KeptBatches()
    kept.stall.clear()  # the export process takes nothing
    queue = queue_of(kept, OTEL_BSP_MAX_EXPORT_BATCH_SIZE="2", OTEL_BSP_MAX_QUEUE_SIZE="5")
    queue.put((0,))
    queue.put((1,))  # a full batch: the thread takes these two and stalls in `send`
    assert wait_for(lambda: len(queue._records) == 0)

    started = time.perf_counter()
    for n in range(2, 12):
        queue.put((n,))
    took = time.perf_counter() - started

    assert took < 0.05
    assert queue.dropped == 5  # (2..6) queued, (7..11) dropped
    with caplog.at_level(logging.WARNING, logger="appkit_runtime"):
        kept.stall.set()
        queue.close()
    assert kept.sent() == [(n,) for n in range(7)]
    assert f"5 spans dropped so far by pid {os.getpid()}" in caplog.text


def test_a_forked_worker_starts_with_an_empty_queue_and_its_own_thread() -> None:
    kept = KeptBatches()
    queue = queue_of(kept)
    queue.put(("parent",))
    pid = os.fork()
    if pid == 0:  # the worker
        fine = len(queue._records) == 0 and queue._thread is None
        queue.put(("worker",))
        fine = fine and queue._thread is not None and queue._thread.is_alive()
        os._exit(0 if fine else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert list(queue._records) == [("parent",)]
    queue.close()
    assert kept.sent() == [("parent",)]


def test_a_batch_that_fails_to_send_is_logged_and_the_next_one_still_leaves(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kept = KeptBatches()
    send = kept.send

    def send_or_fail(records: list[SpanRecord]) -> bool:
        if records[0] == ("bad",):
            raise TypeError("cannot pickle")
        return send(records)

    kept.send = send_or_fail  # type: ignore[method-assign]
    queue = queue_of(kept, OTEL_BSP_MAX_EXPORT_BATCH_SIZE="1")
    with caplog.at_level(logging.ERROR, logger="appkit_runtime"):
        queue.put(("bad",))
        assert wait_for(lambda: "span batch of 1 not sent" in caplog.text)
    queue.put(("good",))
    assert wait_for(lambda: kept.sent() == [("good",)])
    queue.close()
