"""What the limiter does when Redis cannot be reached: let the request through or refuse it.

Failing open is counted in a Prometheus counter and logged at most once per interval, so an
outage neither floods the log nor goes unnoticed. A command Redis refused while up is logged
apart, on its own interval.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter

from appkit_runtime.auth.log_throttle import LogThrottle
from appkit_runtime.errors import StorageCommandError, StorageError
from appkit_runtime.settings import get_settings

logger = logging.getLogger("appkit_runtime.ratelimit")

LOG_INTERVAL_SECONDS = 60.0
UNAVAILABLE_RETRY_AFTER = "5"
UNAVAILABLE_DETAIL = "Rate limiting is temporarily unavailable; retry later"

FAIL_OPEN_TOTAL = Counter(
    "appkit_ratelimit_fail_open",
    "Requests let through unlimited because the rate-limit Redis could not be reached",
)

_command_errors = LogThrottle(LOG_INTERVAL_SECONDS)
_last_logged: float | None = None
_unlogged = 0


def fails_open(fail_open: bool | None) -> bool:
    """The limiter's own choice if it made one, else `APPKIT_RATELIMIT_FAIL_OPEN`."""
    return get_settings().ratelimit_fail_open if fail_open is None else fail_open


def record_failure(error: StorageError, *, failed_open: bool) -> None:
    """Count a request that failed open, and log the outage at most once per interval."""
    global _last_logged, _unlogged
    if failed_open:
        FAIL_OPEN_TOTAL.inc()
    policy = "letting requests through" if failed_open else "answering 503"
    if isinstance(error, StorageCommandError):
        # Redis is up: logged as what it is, on its own throttle, so an outage still shows.
        _command_errors.warning(logger, "rate limit not applied, %s: %s", policy, error)
        return
    _unlogged += 1
    now = time.monotonic()
    if _last_logged is not None and now - _last_logged < LOG_INTERVAL_SECONDS:
        return
    logger.warning(
        "rate limiting unavailable, %s (%d requests since the last report): %s",
        policy,
        _unlogged,
        error,
    )
    _last_logged = now
    _unlogged = 0
