"""Warnings logged at most once per interval, so a failing dependency cannot flood the logs."""

from __future__ import annotations

import logging
from time import monotonic
from typing import Any


class LogThrottle:
    """Lets one warning through per `interval` seconds and drops the rest."""

    __slots__ = ("interval", "_last")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: float | None = None

    def warning(self, logger: logging.Logger, message: str, *args: Any) -> None:
        """Log `message` unless one was logged less than `interval` seconds ago."""
        now = monotonic()
        if self._last is None or now - self._last >= self.interval:
            self._last = now
            logger.warning(message, *args)

    def reset(self) -> None:
        """Let the next warning through."""
        self._last = None
