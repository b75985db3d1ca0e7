"""`ProjectRateLimiter` (step 2 of the protected chain), `PathRateLimiter`, `apply_rate_limit`
and the async override functions.

The project limiter needs the `ProjectToken` that `AuthenticateKey` stores on
`request.state`; counters are keyed by route template. Its requests spend permits from this
process's quota lease (`appkit_runtime.ratelimit.leases`): a Redis round trip only when the
lease runs out, its window ends or the limit is reached; organisation overrides come from an
in-process cache.
"""

from __future__ import annotations

from fastapi import HTTPException, Request, Response

from appkit_runtime.errors import RouteOrderError, StorageError
from appkit_runtime.fastapi.route_template import route_template
from appkit_runtime.ratelimit import (
    RateLimitResult,
    clear_project_rate_limit_overrides,
    delete_rate_limit_override,
    effective_limit,
    get_rate_limit_override,
    list_rate_limit_overrides,
    rate_limit_headers,
    raw_rate_limit_headers,
    rejection_headers,
    set_rate_limit_override,
)
from appkit_runtime.ratelimit.client_address import client_address, warn_if_server_rewrote
from appkit_runtime.ratelimit.decision import DECISION_STATE, Decision
from appkit_runtime.ratelimit.failure import (
    UNAVAILABLE_DETAIL,
    UNAVAILABLE_RETRY_AFTER,
    fails_open,
    record_failure,
)
from appkit_runtime.ratelimit.leases import hit_leased
from appkit_runtime.ratelimit.limiter import check_positive_int, hit_client
from appkit_runtime.ratelimit.mode import Mode, check_mode, refuses
from appkit_runtime.ratelimit.org_overrides import (
    delete_org_rate_limit_override,
    get_org_rate_limit_override,
    list_org_rate_limit_overrides,
    set_org_rate_limit_override,
)
from appkit_runtime.redis_pools import async_client
from appkit_runtime.settings import RateLimit, get_async_redis_instance, get_settings
from appkit_runtime.tokens import ProjectToken

__all__ = [
    "PathRateLimiter",
    "ProjectRateLimiter",
    "apply_rate_limit",
    "clear_project_rate_limit_overrides",
    "delete_org_rate_limit_override",
    "delete_rate_limit_override",
    "get_org_rate_limit_override",
    "get_rate_limit_override",
    "list_org_rate_limit_overrides",
    "list_rate_limit_overrides",
    "set_org_rate_limit_override",
    "set_rate_limit_override",
]

REDIS_NAME = "ratelimit"
RATE_LIMITED_DETAIL = "Rate limit exceeded"


class _Limiter:
    """Options and answers shared by the project and the path limiter."""

    def __init__(
        self,
        max_requests: int | None = None,
        expiry: int | None = None,
        fail_open: bool | None = None,
        *,
        cost: int = 1,
        mode: Mode | None = None,
    ) -> None:
        if max_requests is not None:
            check_positive_int("max_requests", max_requests)
        if expiry is not None:
            check_positive_int("expiry", expiry)
        self.max_requests = max_requests
        self.expiry = expiry
        self.fail_open = fail_open
        self.cost = check_positive_int("cost", cost)
        self.mode = check_mode(mode)

    def limit(self, token_limit: RateLimit | None = None) -> RateLimit:
        """The limit before overrides: the token's, else this limiter's, else the default."""
        return effective_limit(token_limit, self.max_requests, self.expiry)


class ProjectRateLimiter(_Limiter):
    """Limit the authenticated project on this route: 429 past the limit, headers always.

    The limit is the token's, else `max_requests`/`expiry` given here, else
    `APPKIT_RATELIMIT_DEFAULT`; an organisation override wins over those and a project
    override over everything. Each request counts `cost`. `mode` (default
    `APPKIT_RATELIMIT_MODE`) "monitor" never refuses; `fail_open` (default
    `APPKIT_RATELIMIT_FAIL_OPEN`) decides what happens when Redis is down.
    """

    # Read by the start-up check that AuthenticateKey runs before this dependency.
    appkit_chain_role = "ratelimit"
    scope = "project"

    async def __call__(self, request: Request, response: Response) -> None:
        await _limit_project(request, response, self, self.cost, _token_of(request))

    async def hit(self, request: Request, response: Response, token: ProjectToken) -> None:
        """Count this request for `token`'s project (the protected chain passes the token it
        just authenticated, instead of reading it back from `request.state`)."""
        await _limit_project(request, response, self, self.cost, token)

    async def header_fields(
        self, request: Request, token: ProjectToken
    ) -> list[tuple[bytes, bytes]]:
        """Count this request for `token`'s project, for a chain run before FastAPI's solver
        (no sub-response there): the raw header fields for the endpoint's response."""
        result, style = await _decide(request, self, self.cost, token)
        return [] if result is None else raw_rate_limit_headers(result, style)


class PathRateLimiter(_Limiter):
    """Limit each client address on this route, for routes without authentication.

    The address is the peer's, or from `X-Forwarded-For` when the peer is one of
    `APPKIT_TRUSTED_PROXIES`. Same script, headers, modes and fail policy as
    `ProjectRateLimiter`; no overrides apply.
    """

    scope = "client"

    async def __call__(self, request: Request, response: Response) -> None:
        peer = request.client.host if request.client else None
        # Several header lines are one list (RFC 9110 §5.3), in the order the proxies added them.
        forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
        settings = get_settings()
        proxies = settings.trusted_proxies
        warn_if_server_rewrote(peer, forwarded, proxies)
        address = client_address(peer, forwarded, proxies)
        route = route_template(request.scope)
        try:
            result = await hit_client(
                get_async_redis_instance(REDIS_NAME), address, route, self.limit(), self.cost
            )
        except StorageError as error:
            _unavailable(request, error, self.fail_open)
            return
        _record(request, result, self.mode, route, settings.ratelimit_headers)
        _set_headers(response, result, settings.ratelimit_headers)


async def apply_rate_limit(
    request: Request,
    count: int = 1,
    *,
    response: Response | None = None,
    max_requests: int | None = None,
    expiry: int | None = None,
    mode: Mode | None = None,
    fail_open: bool | None = None,
) -> RateLimitResult | None:
    """Count `count` requests of the authenticated project on this route, from a handler.

    For endpoints whose cost is known only inside (a batch of 50 counts 50): raises the 429
    `HTTPException` past the limit (enforce mode), sets the headers on `response` if given,
    and returns the result (None when Redis was down and the request failed open). Use it
    instead of `ProjectRateLimiter` on the route, or the request is counted twice.
    """
    limiter = _Limiter(
        max_requests, expiry, fail_open, cost=check_positive_int("count", count), mode=mode
    )
    return await _limit_project(request, response, limiter, count, _token_of(request))


def _token_of(request: Request) -> ProjectToken:
    """The token AuthenticateKey stored; a route-order error when it has not run."""
    token: ProjectToken | None = getattr(request.state, "project_token", None)
    if token is None:
        raise RouteOrderError(
            f"{request.method} {route_template(request.scope)}: the project rate limiter found "
            "no project token; put AuthenticateKey before it (or use protected())"
        )
    return token


async def _limit_project(
    request: Request,
    response: Response | None,
    limiter: _Limiter,
    cost: int,
    token: ProjectToken,
) -> RateLimitResult | None:
    result, style = await _decide(request, limiter, cost, token)
    if result is not None and response is not None:
        _set_headers(response, result, style)
    return result


async def _decide(
    request: Request, limiter: _Limiter, cost: int, token: ProjectToken
) -> tuple[RateLimitResult | None, str]:
    """Spend `cost` permits of `token`'s project on this route: the result (None when Redis
    is down and the request fails open) and the header style; raises the 429 or the 503."""
    route = route_template(request.scope)
    settings = get_settings()  # read once for the client, the keys, the overrides, the headers
    # A token's own limit wins (`effective_limit`), with no call made for it.
    limit = token.rate_limit if token.rate_limit is not None else limiter.limit()
    try:
        result = await hit_leased(
            async_client(REDIS_NAME, settings),
            token.org_id,
            token.project_id,
            route,
            limit,
            cost,
            settings=settings,
        )
    except StorageError as error:
        _unavailable(request, error, limiter.fail_open)
        return None, settings.ratelimit_headers
    _record(request, result, limiter.mode, route, settings.ratelimit_headers)
    return result, settings.ratelimit_headers


def _record(
    request: Request, result: RateLimitResult, mode: Mode | None, route: str, style: str
) -> None:
    """Raise the 429 when the result refuses the request (headers in `style`, as
    `APPKIT_RATELIMIT_HEADERS`); either way leave the decision on the request's state for
    the access line and the span."""
    # The state's dict itself (the one `request.state` wraps): no `State` object made.
    state = request.scope.setdefault("state", {})
    if result.is_over_limit and refuses(result, mode, route):  # under the limit: no call
        state[DECISION_STATE] = ("limited", 0)
        raise HTTPException(429, RATE_LIMITED_DETAIL, rejection_headers(result, style))
    decision: Decision = "would_limit" if result.is_over_limit else "allowed"
    state[DECISION_STATE] = (decision, result.remaining)


def _set_headers(response: Response, result: RateLimitResult, style: str) -> None:
    """Set the rate-limit fields of `style` on `response`, replacing any it already has."""
    if style == "off":
        return
    if response.raw_headers:
        response.headers.update(rate_limit_headers(result, style))
    else:
        # The usual case, an empty sub-response: append the encoded fields directly.
        response.raw_headers.extend(raw_rate_limit_headers(result, style))


def _unavailable(request: Request, error: StorageError, fail_open: bool | None) -> None:
    """Let the request through (fail open) or answer 503 (fail closed)."""
    failed_open = fails_open(fail_open)
    record_failure(error, failed_open=failed_open)
    setattr(request.state, DECISION_STATE, ("fail_open" if failed_open else "fail_closed", None))
    if not failed_open:
        raise HTTPException(503, UNAVAILABLE_DETAIL, {"Retry-After": UNAVAILABLE_RETRY_AFTER})
