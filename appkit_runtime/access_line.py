"""The JSON access line, encoded with orjson and written straight to the runtime's log stream.

It is the one log line every request writes. Through `logging` it cost the protected request
about 30 µs of CPU under uvicorn in the bench (a `LogRecord`, the filters, python-json-logger's
generic walk over the record's attributes, the handler), this about 13. Its fields are fixed,
so the runtime encodes them itself, with the keys, time format, stream and lock of every other
JSON line; of `logging` only the `appkit_runtime.access` logger's level check is kept.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

ACCESS_LOGGER = "appkit_runtime.access"


class JsonAccessLine:
    """Writes access lines to `handler`'s stream as the handler would write a record."""

    def __init__(self, handler: logging.StreamHandler[Any]) -> None:
        self.handler = handler

    def write(self, request_id: str, message: str, fields: dict[str, Any]) -> None:
        """One line: time, level, logger and request id, then `fields`, then `message`."""
        # orjson writes an aware datetime as python-json-logger does (isoformat, +00:00).
        line = orjson.dumps(
            {
                "time": datetime.now(UTC),
                "level": "INFO",
                "logger": ACCESS_LOGGER,
                "request_id": request_id,
                **fields,
                "message": message,
            },
            option=orjson.OPT_APPEND_NEWLINE,
        ).decode()
        handler = self.handler
        try:
            with handler.lock:  # type: ignore[union-attr]
                stream = handler.stream
                stream.write(line)
                stream.flush()
        except Exception:
            # As `logging` does: a broken stream is reported on stderr, never fails a request.
            handler.handleError(logging.makeLogRecord({"msg": message, "name": ACCESS_LOGGER}))
