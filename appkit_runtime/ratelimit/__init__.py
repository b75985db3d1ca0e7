"""Rate limiting: the Lua script, its keys and results, overrides, and the sync/async core.

Framework-free: the FastAPI and Django adapters are thin layers over `hit`, `hit_sync` and
`hit_client`.
"""

from __future__ import annotations

from appkit_runtime.ratelimit.headers import (
    rate_limit_headers,
    raw_rate_limit_headers,
    rejection_headers,
)
from appkit_runtime.ratelimit.keys import (
    make_client_rate_limit_key,
    make_org_override_key,
    make_override_index_key,
    make_override_key,
    make_rate_limit_key,
    rate_limit_keys,
)
from appkit_runtime.ratelimit.limiter import effective_limit, hit, hit_client, hit_sync
from appkit_runtime.ratelimit.mode import WOULD_REJECT_TOTAL
from appkit_runtime.ratelimit.org_overrides import (
    delete_org_rate_limit_override,
    get_org_rate_limit_override,
    list_org_rate_limit_overrides,
    set_org_rate_limit_override,
)
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
    "WOULD_REJECT_TOTAL",
    "RateLimitOverride",
    "RateLimitResult",
    "clear_project_rate_limit_overrides",
    "delete_org_rate_limit_override",
    "delete_rate_limit_override",
    "effective_limit",
    "get_org_rate_limit_override",
    "get_rate_limit_override",
    "hit",
    "hit_client",
    "hit_sync",
    "list_org_rate_limit_overrides",
    "list_rate_limit_overrides",
    "make_client_rate_limit_key",
    "make_org_override_key",
    "make_override_index_key",
    "make_override_key",
    "make_rate_limit_key",
    "rate_limit_headers",
    "raw_rate_limit_headers",
    "rate_limit_keys",
    "rejection_headers",
    "set_org_rate_limit_override",
    "set_rate_limit_override",
]
