"""`rate_limit()`: the project rate limiter for Django views, sync and async.

Stack it under `authenticate_key()`, which stores the `ProjectToken` on
`request.project_token`; counters are keyed by the URL pattern (`/items/<int:pk>/`), not the
raw path. Same core, script, headers and fail policy as the FastAPI limiter.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from appkit_runtime.errors import RouteOrderError, StorageError
from appkit_runtime.ratelimit import (
    RateLimitResult,
    effective_limit,
    hit,
    hit_sync,
    rate_limit_headers,
    rejection_headers,
)
from appkit_runtime.ratelimit.failure import (
    UNAVAILABLE_DETAIL,
    UNAVAILABLE_RETRY_AFTER,
    fails_open,
    record_failure,
)
from appkit_runtime.ratelimit.limiter import check_positive_int
from appkit_runtime.settings import (
    RateLimit,
    get_async_redis_instance,
    get_redis_instance,
    get_settings,
)
from appkit_runtime.tokens import ProjectToken

REDIS_NAME = "ratelimit"
RATE_LIMITED_DETAIL = "Rate limit exceeded"


def rate_limit(
    max_requests: int | None = None, expiry: int | None = None, fail_open: bool | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Limit the authenticated project on the decorated view (429 past the limit).

    The limit is the token's, else `max_requests`/`expiry`, else `APPKIT_RATELIMIT_DEFAULT`;
    a stored override for the route wins. `fail_open` defaults to `APPKIT_RATELIMIT_FAIL_OPEN`.
    """
    if max_requests is not None:
        check_positive_int("max_requests", max_requests)
    if expiry is not None:
        check_positive_int("expiry", expiry)

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                token, limit, path = _request_limit(request, max_requests, expiry)
                result: RateLimitResult | None = None
                try:
                    client = get_async_redis_instance(REDIS_NAME)
                    result = await hit(client, token.org_id, token.project_id, path, limit)
                except StorageError as error:
                    refusal = _unavailable(error, fail_open)
                    if refusal is not None:
                        return refusal
                if result is not None and result.is_over_limit:
                    return _too_many(result)
                return _with_headers(await view(request, *args, **kwargs), result)

            return async_view

        @functools.wraps(view)
        def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            token, limit, path = _request_limit(request, max_requests, expiry)
            result: RateLimitResult | None = None
            try:
                client = get_redis_instance(REDIS_NAME)
                result = hit_sync(client, token.org_id, token.project_id, path, limit)
            except StorageError as error:
                refusal = _unavailable(error, fail_open)
                if refusal is not None:
                    return refusal
            if result is not None and result.is_over_limit:
                return _too_many(result)
            return _with_headers(view(request, *args, **kwargs), result)

        return sync_view

    return decorator


def _request_limit(
    request: HttpRequest, max_requests: int | None, expiry: int | None
) -> tuple[ProjectToken, RateLimit, str]:
    """The token, the limit that applies and the route the counter is keyed by."""
    token = getattr(request, "project_token", None)
    if token is None:
        raise RouteOrderError(
            f"{request.method} {request.path}: rate_limit() found no project token; "
            "put @authenticate_key() above it"
        )
    return token, effective_limit(token.rate_limit, max_requests, expiry), _route(request)


def _route(request: HttpRequest) -> str:
    """The URL pattern that matched (`/items/<int:pk>/`), or the path if none is known."""
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    return f"/{route.lstrip('/')}" if route else request.path


def _too_many(result: RateLimitResult) -> HttpResponse:
    headers = rejection_headers(result, get_settings().ratelimit_headers)
    return JsonResponse({"detail": RATE_LIMITED_DETAIL}, status=429, headers=headers)


def _with_headers(response: Any, result: RateLimitResult | None) -> Any:
    """The view's response with the limit's fields; none when Redis failed open."""
    if result is None:
        return response
    for name, value in rate_limit_headers(result, get_settings().ratelimit_headers).items():
        response[name] = value
    return response


def _unavailable(error: StorageError, fail_open: bool | None) -> HttpResponse | None:
    """None to let the request through (fail open), else the 503 to answer."""
    failed_open = fails_open(fail_open)
    record_failure(error, failed_open=failed_open)
    if failed_open:
        return None
    headers = {"Retry-After": UNAVAILABLE_RETRY_AFTER}
    return JsonResponse({"detail": UNAVAILABLE_DETAIL}, status=503, headers=headers)
