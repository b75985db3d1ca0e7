"""`ProjectRateLimiter`, step 2 of the protected chain, and the async override functions.

The limiter needs the `ProjectToken` that `AuthenticateKey` stores on `request.state`; it
keys counters by route template and costs one Redis round trip (the script) per request.
"""

from __future__ import annotations

from fastapi import HTTPException, Request, Response

from appkit_runtime.errors import RouteOrderError, StorageError
from appkit_runtime.ratelimit import (
    clear_project_rate_limit_overrides,
    delete_rate_limit_override,
    effective_limit,
    get_rate_limit_override,
    hit,
    list_rate_limit_overrides,
    rate_limit_headers,
    rejection_headers,
    set_rate_limit_override,
)
from appkit_runtime.ratelimit.failure import (
    UNAVAILABLE_DETAIL,
    UNAVAILABLE_RETRY_AFTER,
    fails_open,
    record_failure,
)
from appkit_runtime.ratelimit.limiter import check_positive_int
from appkit_runtime.settings import get_async_redis_instance, get_settings

__all__ = [
    "ProjectRateLimiter",
    "clear_project_rate_limit_overrides",
    "delete_rate_limit_override",
    "get_rate_limit_override",
    "list_rate_limit_overrides",
    "set_rate_limit_override",
]

REDIS_NAME = "ratelimit"
RATE_LIMITED_DETAIL = "Rate limit exceeded"


class ProjectRateLimiter:
    """Limit the authenticated project on this route: 429 past the limit, headers always.

    The limit is the token's, else `max_requests`/`expiry` given here, else
    `APPKIT_RATELIMIT_DEFAULT`; a stored override for the route wins over all of them.
    `fail_open` (default `APPKIT_RATELIMIT_FAIL_OPEN`) decides what happens when Redis is down.
    """

    # Read by the start-up check that AuthenticateKey runs before this dependency.
    appkit_chain_role = "ratelimit"

    def __init__(
        self,
        max_requests: int | None = None,
        expiry: int | None = None,
        fail_open: bool | None = None,
    ) -> None:
        if max_requests is not None:
            check_positive_int("max_requests", max_requests)
        if expiry is not None:
            check_positive_int("expiry", expiry)
        self.max_requests = max_requests
        self.expiry = expiry
        self.fail_open = fail_open

    async def __call__(self, request: Request, response: Response) -> None:
        token = getattr(request.state, "project_token", None)
        if token is None:
            raise RouteOrderError(
                f"{request.method} {request.scope['route'].path}: ProjectRateLimiter found no "
                "project token; put AuthenticateKey before it (or use protected())"
            )
        limit = effective_limit(token.rate_limit, self.max_requests, self.expiry)
        try:
            result = await hit(
                get_async_redis_instance(REDIS_NAME),
                token.org_id,
                token.project_id,
                request.scope["route"].path,
                limit,
            )
        except StorageError as error:
            self._unavailable(error)
            return
        style = get_settings().ratelimit_headers
        if result.is_over_limit:
            raise HTTPException(429, RATE_LIMITED_DETAIL, rejection_headers(result, style))
        if style != "off":
            response.headers.update(rate_limit_headers(result, style))

    def _unavailable(self, error: StorageError) -> None:
        """Let the request through (fail open) or answer 503 (fail closed)."""
        failed_open = fails_open(self.fail_open)
        record_failure(error, failed_open=failed_open)
        if not failed_open:
            raise HTTPException(503, UNAVAILABLE_DETAIL, {"Retry-After": UNAVAILABLE_RETRY_AFTER})
