"""JSON answers for the runtime conditions the Django decorators meet, never HTML 500s.

A misconfigured setting answers 503 (the log names the variable; the client sees no config),
as does an unreachable authority or Redis. A decorator stacked in the wrong order is a bug in
the view's code, not a condition: its `RouteOrderError` still propagates.
"""

from __future__ import annotations

import logging

from django.http import JsonResponse

from appkit_runtime.auth.log_throttle import LogThrottle
from appkit_runtime.errors import AuthorityUnavailable, ConfigurationError, StorageError

logger = logging.getLogger("appkit_runtime.django")
MISCONFIGURED_DETAIL = "Service misconfigured; retry later"
RETRY_AFTER_SECONDS = "5"
misconfigured_log = LogThrottle(60.0)
# What the decorators answer themselves; anything else propagates as Django would have it.
RUNTIME_CONDITIONS = (ConfigurationError, AuthorityUnavailable, StorageError)


def runtime_error_response(error: Exception) -> JsonResponse:
    """The 503 JSON answer for a runtime condition a decorator met, logged without keys."""
    if isinstance(error, ConfigurationError):
        misconfigured_log.warning(logger, "appkit: %s", error)
        return _json(503, MISCONFIGURED_DETAIL, retry_after=RETRY_AFTER_SECONDS)
    if isinstance(error, AuthorityUnavailable):
        return _json(503, "Key authority unavailable, retry later", retry_after="1")
    logger.warning("appkit: %s", error)
    return _json(503, "A dependency is unavailable; retry later", RETRY_AFTER_SECONDS)


def _json(status: int, detail: str, retry_after: str | None = None) -> JsonResponse:
    headers = {"Retry-After": retry_after} if retry_after else None
    return JsonResponse({"detail": detail}, status=status, headers=headers)
