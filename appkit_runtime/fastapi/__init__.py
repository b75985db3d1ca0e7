"""FastAPI adapter: the app factory and the ordered auth → rate limit → metrics chain."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import Depends, params

from appkit_runtime.fastapi.authentication import AuthenticateKey
from appkit_runtime.fastapi.metrics import AddJobToMetrics
from appkit_runtime.fastapi.ratelimit import ProjectRateLimiter


def protected(
    product: str | None = None,
    scopes: Iterable[str] = (),
    max_requests: int | None = None,
    expiry: int | None = None,
) -> list[params.Depends]:
    """The protected chain in its one correct order, for `dependencies=protected()`."""
    return [
        Depends(AuthenticateKey(product, scopes=scopes)),
        Depends(ProjectRateLimiter(max_requests=max_requests, expiry=expiry)),
        Depends(AddJobToMetrics(product=product)),
    ]


__all__ = ["AddJobToMetrics", "AuthenticateKey", "ProjectRateLimiter", "protected"]
