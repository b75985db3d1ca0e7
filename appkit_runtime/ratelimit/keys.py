"""Rate-limit key names, built only here on top of `appkit_runtime.keys.project_key`.

The project's hash tag comes first (`<prefix>:rl:{org:project}:<route template>`), so both
keys of one script call share a cluster slot and a route's own `{item_id}` is never the tag.
"""

from __future__ import annotations

from functools import lru_cache

from appkit_runtime.keys import project_key
from appkit_runtime.settings import get_settings

COUNTER_KIND = "rl"
OVERRIDE_KIND = "rlo"
OVERRIDE_INDEX_KIND = "rloi"


def make_rate_limit_key(endpoint_name: str, organization_id: str, project_id: str) -> str:
    """The fixed-window counter of one project on one route template."""
    return project_key(COUNTER_KIND, organization_id, project_id, endpoint_name)


def make_override_key(endpoint_name: str, organization_id: str, project_id: str) -> str:
    """The override hash (`max_requests`, `expiry`) of one project on one route template."""
    return project_key(OVERRIDE_KIND, organization_id, project_id, endpoint_name)


def make_override_index_key(organization_id: str, project_id: str) -> str:
    """The set of route templates that have an override, so list and clear never SCAN."""
    return project_key(OVERRIDE_INDEX_KIND, organization_id, project_id)


def rate_limit_keys(org_id: str, project_id: str, path: str) -> tuple[str, str]:
    """`(counter_key, override_key)`, the KEYS of `PROJECT_RATE_LIMITER_LUA`."""
    return _rate_limit_keys(get_settings().redis_prefix, org_id, project_id, path)


@lru_cache(maxsize=4096)
def _rate_limit_keys(prefix: str, org_id: str, project_id: str, path: str) -> tuple[str, str]:
    # `prefix` is only part of the cache key, so a changed APPKIT_REDIS_PREFIX is never
    # answered from the cache; the keys themselves read it from the settings.
    return (
        make_rate_limit_key(path, org_id, project_id),
        make_override_key(path, org_id, project_id),
    )
