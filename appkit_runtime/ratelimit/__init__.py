"""Per-project rate limiting: the Lua script, its keys and results, and the sync/async core.

Framework-free: the FastAPI and Django adapters are thin layers over `hit` and `hit_sync`.
"""

from __future__ import annotations

from appkit_runtime.ratelimit.headers import rate_limit_headers, rejection_headers
from appkit_runtime.ratelimit.keys import (
    make_override_index_key,
    make_override_key,
    make_rate_limit_key,
    rate_limit_keys,
)
from appkit_runtime.ratelimit.limiter import effective_limit, hit, hit_sync
from appkit_runtime.ratelimit.overrides import (
    clear_project_rate_limit_overrides,
    delete_rate_limit_override,
    get_rate_limit_override,
    list_rate_limit_overrides,
    set_rate_limit_override,
)
from appkit_runtime.ratelimit.results import RateLimitOverride, RateLimitResult
from appkit_runtime.ratelimit.scripts import PROJECT_RATE_LIMITER_LUA

__all__ = [
    "PROJECT_RATE_LIMITER_LUA",
    "RateLimitOverride",
    "RateLimitResult",
    "clear_project_rate_limit_overrides",
    "delete_rate_limit_override",
    "effective_limit",
    "get_rate_limit_override",
    "hit",
    "hit_sync",
    "list_rate_limit_overrides",
    "make_override_index_key",
    "make_override_key",
    "make_rate_limit_key",
    "rate_limit_headers",
    "rate_limit_keys",
    "rejection_headers",
    "set_rate_limit_override",
]
