"""Rate-limit key names, built only here on top of `appkit_runtime.keys`.

The project's hash tag comes first (`<prefix>:rl:{org:project}:<route template>`), so both
keys of one script call share a cluster slot and a route's own `{item_id}` is never the tag.
Organisation overrides all share one tag (`{org-overrides}`): they are few, written by
operators and read in one go by each process's cache, never per request.
"""

from __future__ import annotations

from functools import lru_cache

from appkit_runtime.keys import escape_id, project_key, service_key
from appkit_runtime.settings import Settings, get_settings

COUNTER_KIND = "rl"
OVERRIDE_KIND = "rlo"
OVERRIDE_INDEX_KIND = "rloi"
CLIENT_COUNTER_KIND = "rlc"
ORG_OVERRIDE_KIND = "rlorg"
ORG_OVERRIDE_INDEX_KIND = "rlorgi"
ORG_OVERRIDES_TAG = "{org-overrides}"


def make_rate_limit_key(endpoint_name: str, organization_id: str, project_id: str) -> str:
    """The fixed-window counter of one project on one route template."""
    return project_key(COUNTER_KIND, organization_id, project_id, endpoint_name)


def make_override_key(endpoint_name: str, organization_id: str, project_id: str) -> str:
    """The override hash (`max_requests`, `expiry`) of one project on one route template."""
    return project_key(OVERRIDE_KIND, organization_id, project_id, endpoint_name)


def make_override_index_key(organization_id: str, project_id: str) -> str:
    """The set of route templates that have an override, so list and clear never SCAN."""
    return project_key(OVERRIDE_INDEX_KIND, organization_id, project_id)


def make_org_override_key(endpoint_name: str, organization_id: str) -> str:
    """The override hash of every project of an organisation on one route template."""
    return org_override_key(org_override_member(organization_id, endpoint_name))


def org_override_key(member: str) -> str:
    """The override hash of an index member `<escaped org>:<route>`."""
    return service_key(ORG_OVERRIDE_KIND, ORG_OVERRIDES_TAG, member)


def make_org_override_index_key() -> str:
    """The set of `<org>:<route>` members that have an organisation override."""
    return service_key(ORG_OVERRIDE_INDEX_KIND, ORG_OVERRIDES_TAG)


def org_override_member(organization_id: str, endpoint_name: str) -> str:
    """`<escaped org>:<route>`; the org is percent-encoded, so the first `:` splits it."""
    return f"{escape_id(organization_id)}:{endpoint_name}"


def make_client_rate_limit_key(endpoint_name: str, client: str) -> str:
    """The counter of one client address on one route (`PathRateLimiter`), tagged by client."""
    return service_key(CLIENT_COUNTER_KIND, f"{{{escape_id(client)}}}", endpoint_name)


def rate_limit_keys(
    org_id: str, project_id: str, path: str, *, settings: Settings | None = None
) -> tuple[str, str]:
    """`(counter_key, override_key)`, the KEYS of `PROJECT_RATE_LIMITER_LUA`; `settings` when
    the caller has them in hand (the request path reads them once)."""
    prefix = (get_settings() if settings is None else settings).redis_prefix
    return _rate_limit_keys(prefix, org_id, project_id, path)


@lru_cache(maxsize=4096)
def _rate_limit_keys(prefix: str, org_id: str, project_id: str, path: str) -> tuple[str, str]:
    # `prefix` is only part of the cache key, so a changed APPKIT_REDIS_PREFIX is never
    # answered from the cache; the keys themselves read it from the settings.
    return (
        make_rate_limit_key(path, org_id, project_id),
        make_override_key(path, org_id, project_id),
    )
