"""`rate_limit()` and `apply_rate_limit()`: the project rate limiter for Django views.

Stack `rate_limit()` under `authenticate_key()`, which stores the `ProjectToken` on
`request.project_token`; counters are keyed by the URL pattern (`/items/<int:pk>/`), not the
raw path. Past the limit the limiter raises `RateLimitExceeded(limit, remaining, reset)`,
answered as 429 by the decorator, or by `RateLimitMiddleware` when a view calls
`apply_rate_limit` itself. Same core, script, headers, modes and fail policy as FastAPI's.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin

from appkit_runtime.django.errors import RUNTIME_CONDITIONS, runtime_error_response
from appkit_runtime.errors import AppkitError, RouteOrderError, StorageError
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
from appkit_runtime.ratelimit.mode import Mode, check_mode, refuses
from appkit_runtime.settings import (
    RateLimit,
    get_async_redis_instance,
    get_redis_instance,
    get_settings,
)
from appkit_runtime.tokens import ProjectToken

REDIS_NAME = "ratelimit"
RATE_LIMITED_DETAIL = "Rate limit exceeded"


class RateLimitExceeded(AppkitError):
    """The project is past its limit on this route; `response()` is the 429 to answer."""

    status_code = 429

    def __init__(
        self, limit: int, remaining: int, reset: int, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{RATE_LIMITED_DETAIL}: {limit} allowed, retry in {reset} s")
        self.limit = limit
        self.remaining = remaining
        self.reset = reset
        self.headers = dict(headers or {"Retry-After": str(reset)})

    @classmethod
    def from_result(cls, result: RateLimitResult) -> RateLimitExceeded:
        headers = rejection_headers(result, get_settings().ratelimit_headers)
        return cls(result.effective_max_requests, result.remaining, result.reset_seconds, headers)

    def response(self) -> HttpResponse:
        return JsonResponse({"detail": RATE_LIMITED_DETAIL}, status=429, headers=self.headers)


class RateLimitUnavailable(AppkitError):
    """Redis is down and the limiter fails closed; `response()` is the 503 to answer."""

    status_code = 503

    def response(self) -> HttpResponse:
        headers = {"Retry-After": UNAVAILABLE_RETRY_AFTER}
        return JsonResponse({"detail": UNAVAILABLE_DETAIL}, status=503, headers=headers)


class RateLimitMiddleware(MiddlewareMixin):
    """Answers `RateLimitExceeded` (429), `RateLimitUnavailable` (503) and the runtime's
    conditions (bad settings, authority or Redis down: 503) raised by views, as JSON."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        if isinstance(exception, RateLimitExceeded | RateLimitUnavailable):
            return exception.response()
        if isinstance(exception, RUNTIME_CONDITIONS):
            return runtime_error_response(exception)
        return None


def apply_rate_limit(
    request: HttpRequest,
    count: int = 1,
    *,
    max_requests: int | None = None,
    expiry: int | None = None,
    mode: Mode | None = None,
    fail_open: bool | None = None,
) -> RateLimitResult | None:
    """Count `count` requests of the authenticated project on this route (sync views).

    Raises `RateLimitExceeded` past the limit (enforce mode) and `RateLimitUnavailable` when
    Redis is down and the limiter fails closed; returns the result, or None (failed open).
    """
    token, limit, path = _request_limit(request, max_requests, expiry)
    try:
        result = hit_sync(
            get_redis_instance(REDIS_NAME), token.org_id, token.project_id, path, limit, count
        )
    except StorageError as error:
        return _unavailable(error, fail_open)
    return _checked(result, mode, path)


async def aapply_rate_limit(
    request: HttpRequest,
    count: int = 1,
    *,
    max_requests: int | None = None,
    expiry: int | None = None,
    mode: Mode | None = None,
    fail_open: bool | None = None,
) -> RateLimitResult | None:
    """The async twin of `apply_rate_limit`, for async views."""
    token, limit, path = _request_limit(request, max_requests, expiry)
    try:
        client = get_async_redis_instance(REDIS_NAME)
        result = await hit(client, token.org_id, token.project_id, path, limit, count)
    except StorageError as error:
        return _unavailable(error, fail_open)
    return _checked(result, mode, path)


def rate_limit(
    max_requests: int | None = None,
    expiry: int | None = None,
    fail_open: bool | None = None,
    *,
    cost: int = 1,
    mode: Mode | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Limit the authenticated project on the decorated view (429 past the limit).

    The limit is the token's, else `max_requests`/`expiry`, else `APPKIT_RATELIMIT_DEFAULT`;
    an organisation override wins over those and a project override over everything. Each
    request counts `cost`; `mode` defaults to `APPKIT_RATELIMIT_MODE`, `fail_open` to
    `APPKIT_RATELIMIT_FAIL_OPEN`. Bad settings (a Redis URL the client would misread) raise
    `ConfigurationError` here, naming the variable in one line.
    """
    if max_requests is not None:
        check_positive_int("max_requests", max_requests)
    if expiry is not None:
        check_positive_int("expiry", expiry)
    check_positive_int("cost", cost)
    check_mode(mode)
    get_settings()  # bad settings stop the URLconf's import, not the first request
    options = {"max_requests": max_requests, "expiry": expiry, "mode": mode, "fail_open": fail_open}
    check_sync = functools.partial(apply_rate_limit, count=cost, **options)
    check_async = functools.partial(aapply_rate_limit, count=cost, **options)

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                try:
                    result = await check_async(request)
                except (RateLimitExceeded, RateLimitUnavailable) as refusal:
                    return refusal.response()
                except RUNTIME_CONDITIONS as error:
                    return runtime_error_response(error)
                return _with_headers(await view(request, *args, **kwargs), result)

            return async_view

        @functools.wraps(view)
        def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            try:
                result = check_sync(request)
            except (RateLimitExceeded, RateLimitUnavailable) as refusal:
                return refusal.response()
            except RUNTIME_CONDITIONS as error:
                return runtime_error_response(error)
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


def _checked(result: RateLimitResult, mode: Mode | None, path: str) -> RateLimitResult:
    if refuses(result, mode, path):
        raise RateLimitExceeded.from_result(result)
    return result


def _with_headers(response: Any, result: RateLimitResult | None) -> Any:
    """The view's response with the limit's fields; none when Redis failed open."""
    if result is None:
        return response
    for name, value in rate_limit_headers(result, get_settings().ratelimit_headers).items():
        response[name] = value
    return response


def _unavailable(error: StorageError, fail_open: bool | None) -> None:
    """None to let the request through (fail open), else raise `RateLimitUnavailable`."""
    failed_open = fails_open(fail_open)
    record_failure(error, failed_open=failed_open)
    if not failed_open:
        raise RateLimitUnavailable(UNAVAILABLE_DETAIL)
