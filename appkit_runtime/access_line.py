"""The JSON access line, encoded with orjson and written straight to the runtime's log stream.

It is the one log line every request writes. Through `logging` it cost the protected request
about 30 µs of CPU under uvicorn in the bench (a `LogRecord`, the filters, python-json-logger's
generic walk over the record's attributes, the handler). Its fields are fixed, so the runtime
encodes them itself, with the keys, time format, stream and lock of every other JSON line; of
`logging` only the `appkit_runtime.access` logger's level check is kept. orjson's bytes go to
the stream's file descriptor as they are: the text layer's decode, re-encode and buffer were
a fifth of the line's instructions.
"""

from __future__ import annotations

import io
import logging
import os
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
        """One line: time, level, logger, request id, the request's fields, then the message."""
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
        handler = self.handler
        try:
            with handler.lock:  # type: ignore[union-attr]
                stream = handler.stream
                if stream is not self._stream:  # `setStream` may have swapped it
                    self._stream, self._fd = stream, _descriptor(stream)
                if self._fd is None:
                    stream.write(line.decode())
                    stream.flush()
                    return
                # The handler flushes after each record it writes, so nothing of another
                # line waits in the text layer's buffer to come after this one.
                view = memoryview(line)
                while view:
                    view = view[os.write(self._fd, view) :]
        except Exception:
            # As `logging` does: a broken stream is reported on stderr, never fails a request.
            record = logging.makeLogRecord({"msg": line.decode(), "name": ACCESS_LOGGER})
            handler.handleError(record)
