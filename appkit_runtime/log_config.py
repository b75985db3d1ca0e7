"""The process's logging as `APPKIT_LOG_FORMAT` and `APPKIT_LOG_LEVEL` ask: one handler on the
root logger, JSON or text, every line with the request id, uvicorn's loggers through it.

JSON comes from python-json-logger: it is a `logging.Formatter`, so every stdlib logger (the
runtime's, uvicorn's, httpx's, the service's own) writes JSON with no change to their calls,
which structlog would only give through its stdlib bridge and a second configuration. Its
orjson formatter encodes a line in about a third of the standard library's time.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

from appkit_runtime.access_line import JsonAccessLine
from appkit_runtime.request_context import REQUEST_ID
from appkit_runtime.settings import Settings

HANDLER_NAME = "appkit"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
# uvicorn's own loggers; their lines go through the root handler instead of uvicorn's.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error")
# uvicorn's access line shows the raw path and query; the runtime's access line replaces it.
UVICORN_ACCESS_LOGGER = "uvicorn.access"
# uvicorn's `--log-config` for a process whose logging `configure_logging` set up: a config
# that changes nothing, so the supervisor of several workers logs like the workers do.
UVICORN_LOG_CONFIG = Path(__file__).with_name("uvicorn_logging.json")
# Record attributes never written as JSON keys: the standard ones, and uvicorn's
# `color_message` (its message again, with ANSI colour codes, for its own console formatter).
JSON_SKIPPED = (*RESERVED_ATTRS, "color_message")


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or `missing` outside a request) on every record."""

    def __init__(self, missing: str | None = "-") -> None:
        super().__init__()
        self.missing = missing

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get() or self.missing
        return True


def log_formatter(style: str) -> logging.Formatter:
    """JSON lines (`time`, `level`, `logger`, `message`, `request_id`, extras) or text."""
    if style == "json":
        return OrjsonFormatter(
            "{levelname}{name}{message}{request_id}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            reserved_attrs=JSON_SKIPPED,
        )
    return logging.Formatter(TEXT_FORMAT)


def json_access_line() -> JsonAccessLine | None:
    """The access-line writer on the runtime's handler when that writes JSON, else None."""
    for handler in logging.getLogger().handlers:
        if handler.get_name() == HANDLER_NAME and isinstance(handler.formatter, OrjsonFormatter):
            return JsonAccessLine(handler)  # type: ignore[arg-type]
    return None


def configure_logging(settings: Settings) -> None:
    """Install (or replace) the runtime's handler and route uvicorn's loggers through it.

    Under `APPKIT_ENV=test` nothing changes unless `APPKIT_LOG_FORMAT` is set, so pytest's
    own log capture stays in charge of the test process.
    """
    style = settings.installed_log_style
    if style is None:
        return
    install_log_handler(style, settings.log_level)
    uvicorn_access = logging.getLogger(UVICORN_ACCESS_LOGGER)
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False


def install_log_handler(style: str, level: str) -> None:
    """Install (or replace) the runtime's `style` handler on the root logger, at `level`,
    with uvicorn's loggers routed through it (also the span exporter process's logging)."""
    # JSON lines go to stdout, where collectors read a container's events; text stays on
    # stderr, where Python and uvicorn write a developer's console logs.
    handler = logging.StreamHandler(sys.stdout if style == "json" else sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.addFilter(RequestIdFilter(None if style == "json" else "-"))
    handler.setFormatter(log_formatter(style))
    # On the handler too: records that loggers with levels of their own let through (uvicorn
    # sets its loggers to its `--log-level`, INFO by default) reach it by propagation.
    handler.setLevel(level)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # The logging HOWTO's optimisations: no caller frame walk, thread or process lookups per
    # record (neither format shows them); about a third of the access line's cost.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for name in UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
