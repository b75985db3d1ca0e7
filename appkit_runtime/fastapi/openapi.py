"""The OpenAPI document of rate-limited routes: their limit, their 429, and both key headers.

FastAPI already lists `AuthenticateKey`'s bearer scheme on each operation that depends on it.
A dependency cannot add to its route's operation, so `rate_limit_openapi(app)` wraps
`app.openapi` once: each operation behind a `ProjectRateLimiter` or `PathRateLimiter` gains
an `x-ratelimit` extension and a 429 response, and the `X-API-Key` header is shown as the
alternative to the bearer scheme, as `AuthenticateKey` accepts both.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant

from appkit_runtime.fastapi.authentication import FastAPIAuthenticateBase
from appkit_runtime.fastapi.ratelimit import PathRateLimiter, ProjectRateLimiter
from appkit_runtime.fastapi.route_order import api_routes
from appkit_runtime.ratelimit.mode import effective_mode

HEADER_SCHEME_SUFFIX = "Header"
_STRING = {"schema": {"type": "string"}}
TOO_MANY_REQUESTS = {
    "description": "Rate limit exceeded: retry after the number of seconds in Retry-After",
    "headers": {
        "Retry-After": {"description": "Seconds until the window resets", **_STRING},
        "RateLimit": {"description": "Remaining quota and seconds to reset", **_STRING},
        "RateLimit-Policy": {"description": "Quota and window in seconds", **_STRING},
    },
}


def rate_limit_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` describe each route's rate limit; call once, after `FastAPI()`."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            describe_rate_limits(generate(), app)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def describe_rate_limits(schema: dict[str, Any], app: FastAPI) -> None:
    """Add `x-ratelimit`, the 429 and the header key scheme to `schema`'s operations."""
    for route in api_routes(app):
        if not route.include_in_schema:
            continue
        calls = list(_calls(route.dependant))
        limiters = [c for c in calls if isinstance(c, ProjectRateLimiter | PathRateLimiter)]
        schemes = {c.scheme_name for c in calls if isinstance(c, FastAPIAuthenticateBase)}
        for method in route.methods or ():
            operation = schema.get("paths", {}).get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            if limiters:
                policies = [_policy(limiter) for limiter in limiters]
                operation["x-ratelimit"] = policies[0] if len(policies) == 1 else policies
                operation.setdefault("responses", {}).setdefault("429", TOO_MANY_REQUESTS)
            for scheme in sorted(schemes):
                _add_header_alternative(schema, operation, scheme)


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield from _calls(sub)
        yield sub.call
        # protected()'s one dependency carries the limiter inside it.
        limiter = getattr(sub.call, "limiter", None)
        if isinstance(limiter, ProjectRateLimiter):
            yield limiter


def _policy(limiter: ProjectRateLimiter | PathRateLimiter) -> dict[str, Any]:
    limit = limiter.limit()
    policy: dict[str, Any] = {
        "scope": limiter.scope,
        "max_requests": limit.max_requests,
        "expiry": limit.expiry,
        "cost": limiter.cost,
        "mode": effective_mode(limiter.mode),
    }
    if isinstance(limiter, ProjectRateLimiter):
        # Per-key limits and stored overrides may replace the default shown here.
        policy["overrides"] = ["project", "organisation", "api-key"]
    return policy


def _add_header_alternative(schema: dict[str, Any], operation: dict[str, Any], name: str) -> None:
    """`X-API-Key: <key>` as an alternative to the bearer scheme `name` on `operation`."""
    header_name = f"{name}{HEADER_SCHEME_SUFFIX}"
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes.setdefault(
        header_name,
        {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "An API key."},
    )
    security = operation.setdefault("security", [])
    if {name: []} in security and {header_name: []} not in security:
        security.append({header_name: []})
