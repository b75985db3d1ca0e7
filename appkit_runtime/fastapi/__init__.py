"""FastAPI adapter: the app factory and the ordered auth → rate limit → metrics chain."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import Depends, params

from appkit_runtime.fastapi.authentication import AuthenticateKey
from appkit_runtime.fastapi.metrics import AddJobToMetrics
from appkit_runtime.fastapi.ratelimit import PathRateLimiter, ProjectRateLimiter, apply_rate_limit
from appkit_runtime.ratelimit.mode import Mode


def protected(
    product: str | None = None,
    scopes: Iterable[str] = (),
    max_requests: int | None = None,
    expiry: int | None = None,
    *,
    cost: int = 1,
    mode: Mode | None = None,
) -> list[params.Depends]:
    """The protected chain in its one correct order, for `dependencies=protected()`."""
    limiter = ProjectRateLimiter(max_requests=max_requests, expiry=expiry, cost=cost, mode=mode)
    return [
        Depends(AuthenticateKey(product, scopes=scopes)),
        Depends(limiter),
        Depends(AddJobToMetrics(product=product)),
    ]


__all__ = [
    "AddJobToMetrics",
    "AuthenticateKey",
    "PathRateLimiter",
    "ProjectRateLimiter",
    "apply_rate_limit",
    "protected",
]
