"""FastAPI adapter: the app factory and the ordered auth → rate limit → metrics chain."""

from __future__ import annotations

from appkit_runtime.fastapi.authentication import AuthenticateKey
from appkit_runtime.fastapi.chain import ProtectedChain, protected
from appkit_runtime.fastapi.metrics import AddJobToMetrics
from appkit_runtime.fastapi.ratelimit import PathRateLimiter, ProjectRateLimiter, apply_rate_limit

__all__ = [
    "AddJobToMetrics",
    "AuthenticateKey",
    "PathRateLimiter",
    "ProjectRateLimiter",
    "ProtectedChain",
    "apply_rate_limit",
    "protected",
]
