"""The JSON access line, encoded with orjson and written straight to the runtime's log stream.

It is the one log line every request writes. Through `logging` it cost the protected request
about 30 µs of CPU under uvicorn in the bench (a `LogRecord`, the filters, python-json-logger's
generic walk over the record's attributes, the handler). Its fields are fixed, so the runtime
encodes them itself, with the keys, time format, stream and lock of every other JSON line; of
`logging` only the `appkit_runtime.access` logger's level check is kept.

A system call per line was most of what is left: under load the first line of a turn of the
event loop is written at once and the turn's later lines together, by a callback at the start
of the next turn, so a client that has its answer (the only request of its turn) finds its
line written, and a busy turn costs two writes, not one a request. Lines go to the stream's
file descriptor as orjson encoded them (the text layer's decode, re-encode and buffer were a
fifth of the line's instructions). A process killed between two turns loses the later lines
of the turn, as one killed inside a write would; a loop closed without another turn has them
written at exit.
"""

from __future__ import annotations

import atexit
import io
import logging
import os
from asyncio import AbstractEventLoop, get_running_loop
from datetime import UTC, datetime
from typing import TextIO

import orjson

ACCESS_LOGGER = "appkit_runtime.access"


def _descriptor(stream: TextIO) -> int | None:
    """`stream`'s file descriptor, or None when it has none (pytest's capture, a StringIO)."""
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


class JsonAccessLine:
    """Writes access lines to `handler`'s stream as the handler would write a record."""

    def __init__(self, handler: logging.StreamHandler[TextIO]) -> None:
        self.handler = handler
        self._stream: TextIO | None = None
        self._fd: int | None = None
        # Set by a failed write, cleared by the next one that succeeds: a closed pipe is
        # reported once, not with a traceback for every later batch.
        self._failing = False
        # Lines waiting for the end of their event loop's turn, written together then.
        self._waiting: dict[AbstractEventLoop, list[bytes]] = {}
        atexit.register(self._write_all_waiting)

    def write(
        self,
        request_id: str,
        method: str,
        route: str,
        status: int,
        duration_ms: float,
        org_id: str | None,
        project_id: str | None,
        key_id: str | None,
        decision: str | None,
        remaining: int | None,
    ) -> None:
        """One line: time, level, logger, request id, the request's fields, then the message;
        at once, unless another line was written in this turn of the event loop."""
        # orjson writes an aware datetime as python-json-logger does (isoformat, +00:00).
        line = orjson.dumps(
            {
                "time": datetime.now(UTC),
                "level": "INFO",
                "logger": ACCESS_LOGGER,
                "request_id": request_id,
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
                "org_id": org_id,
                "project_id": project_id,
                "key_id": key_id,
                "ratelimit": decision,
                "ratelimit_remaining": remaining,
                "message": f"{method} {route} {status}",
            },
            option=orjson.OPT_APPEND_NEWLINE,
        )
        try:
            loop = get_running_loop()
        except RuntimeError:  # no event loop in this thread: nothing to wait for
            self._write(line)
            return
        waiting = self._waiting.get(loop)
        if waiting is None:
            # The turn's first line: out at once; the turn's later ones wait for its end.
            self._waiting[loop] = []
            loop.call_soon(self._write_waiting, loop)
            self._write(line)
        else:
            waiting.append(line)

    def _write_waiting(self, loop: AbstractEventLoop) -> None:
        """The lines `loop`'s requests ended with after the first in its previous turn."""
        waiting = self._waiting.pop(loop, None)
        if waiting:
            self._write(b"".join(waiting))

    def _write_all_waiting(self) -> None:
        """What waits for loops that will not turn again."""
        for loop in list(self._waiting):
            self._write_waiting(loop)

    def _write(self, data: bytes) -> None:
        handler = self.handler
        try:
            with handler.lock:  # type: ignore[union-attr]
                stream = handler.stream
                if stream is not self._stream:  # `setStream` may have swapped it
                    self._stream, self._fd = stream, _descriptor(stream)
                if self._fd is None:
                    stream.write(data.decode())
                    stream.flush()
                    self._failing = False
                    return
                # The handler flushes after each record it writes, so nothing of another
                # line waits in the text layer's buffer to come after these.
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
            self._failing = False
        except Exception:
            # As `logging` does: a broken stream is reported on stderr, never fails a request.
            if not self._failing:
                self._failing = True
                record = logging.makeLogRecord({"msg": data.decode(), "name": ACCESS_LOGGER})
                handler.handleError(record)
