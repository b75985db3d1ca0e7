"""Organisation overrides: one limit for every project of an organisation on one route.

Priority is project override → organisation override → default. They live in one cluster slot
with their index (`{org-overrides}`), so each write is one atomic script, and every process
reads them all in one go into its cache (`org_cache`), never per request. A write made here
makes this process's cache read them again at once; others see it within their refresh.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from appkit_runtime.ratelimit.keys import (
    make_org_override_index_key,
    make_org_override_key,
    org_override_key,
    org_override_member,
)
from appkit_runtime.ratelimit.limiter import check_positive_int
from appkit_runtime.ratelimit.org_cache import ORG_OVERRIDES
from appkit_runtime.ratelimit.overrides import as_override, check_path, check_ttl
from appkit_runtime.ratelimit.results import RateLimitOverride
from appkit_runtime.ratelimit.storage import async_storage_for


def _check_org(org_id: object) -> str:
    if not isinstance(org_id, str) or not org_id:
        raise ValueError(f"org_id must be a non-empty string, got {org_id!r}")
    return org_id


async def set_org_rate_limit_override(
    redis: Any,
    org_id: str,
    path: str,
    max_requests: int,
    expiry: int,
    ttl: int | None = None,
) -> None:
    """Give every project of an organisation a limit on one route (a project override wins).

    With `ttl` (seconds) the override removes itself after that time.
    """
    _check_org(org_id)
    check_path(path)
    check_positive_int("max_requests", max_requests)
    check_positive_int("expiry", expiry)
    await async_storage_for(redis).write_override(
        make_org_override_key(path, org_id),
        make_org_override_index_key(),
        org_override_member(org_id, path),
        max_requests,
        expiry,
        check_ttl(ttl),
    )
    ORG_OVERRIDES.invalidate()


async def get_org_rate_limit_override(
    redis: Any, org_id: str, path: str
) -> RateLimitOverride | None:
    """The organisation's override on one route template, or None."""
    _check_org(org_id)
    check_path(path)
    (fields,) = await async_storage_for(redis).read_overrides([make_org_override_key(path, org_id)])
    return as_override(path, fields)


async def delete_org_rate_limit_override(redis: Any, org_id: str, path: str) -> bool:
    """Remove the organisation's override on one route; whether there was one."""
    _check_org(org_id)
    check_path(path)
    removed = await async_storage_for(redis).delete_overrides(
        make_org_override_index_key(),
        [make_org_override_key(path, org_id)],
        [org_override_member(org_id, path)],
    )
    ORG_OVERRIDES.invalidate()
    return removed > 0


async def list_org_rate_limit_overrides(redis: Any, org_id: str) -> list[RateLimitOverride]:
    """Every override of the organisation, sorted by route template."""
    _check_org(org_id)
    rows = await async_storage_for(redis).read_indexed_overrides(
        make_org_override_index_key(), org_override_key
    )
    found = []
    for member, (max_requests, expiry, _) in rows:
        org, _, path = member.partition(":")
        if unquote(org) == org_id:
            override = as_override(path, [max_requests, expiry])
            if override is not None:
                found.append(override)
    return sorted(found, key=lambda override: override.path)
