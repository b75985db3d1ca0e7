"""Per-project, per-route limit overrides: one small hash each, plus a per-project index set.

The index lists the routes that have an override, so listing and clearing a project's
overrides never SCAN the keyspace. A write here makes this process's quota leases renew at
their next use; other processes apply it at their next lease call. All functions take the
async Redis client first, as Application Kit's do.
"""

from __future__ import annotations

from typing import Any

from appkit_runtime.ratelimit.keys import make_override_index_key, make_override_key
from appkit_runtime.ratelimit.leases import invalidate_leases
from appkit_runtime.ratelimit.limiter import check_positive_int
from appkit_runtime.ratelimit.results import RateLimitOverride
from appkit_runtime.ratelimit.storage import async_storage_for

# Routes deleted per script call, well under Lua's limit on unpacked arguments.
_DELETE_BATCH = 1000


def check_path(path: object) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"path must be a route template starting with '/', got {path!r}")
    return path


def check_ttl(ttl: object) -> int | None:
    """`ttl` if None or an integer from 1 to `MAX_LIMIT_VALUE` (seconds), else `ValueError`."""
    return None if ttl is None else check_positive_int("ttl", ttl)


def as_override(path: str, fields: list[Any]) -> RateLimitOverride | None:
    max_requests, expiry = fields
    if max_requests is None or expiry is None:
        return None
    return RateLimitOverride(path, int(max_requests), int(expiry))


async def set_rate_limit_override(
    redis: Any,
    org_id: str,
    project_id: str,
    path: str,
    max_requests: int,
    expiry: int,
    ttl: int | None = None,
) -> None:
    """Give a project its own limit on one route template; it wins over every default.

    With `ttl` (seconds) the override removes itself after that time.
    """
    check_path(path)
    check_positive_int("max_requests", max_requests)
    check_positive_int("expiry", expiry)
    await async_storage_for(redis).write_override(
        make_override_key(path, org_id, project_id),
        make_override_index_key(org_id, project_id),
        path,
        max_requests,
        expiry,
        check_ttl(ttl),
    )
    invalidate_leases()


async def get_rate_limit_override(
    redis: Any, org_id: str, project_id: str, path: str
) -> RateLimitOverride | None:
    """The project's override on one route template, or None."""
    check_path(path)
    key = make_override_key(path, org_id, project_id)
    (fields,) = await async_storage_for(redis).read_overrides([key])
    return as_override(path, fields)


async def delete_rate_limit_override(redis: Any, org_id: str, project_id: str, path: str) -> bool:
    """Remove the project's override on one route; whether there was one."""
    check_path(path)
    key = make_override_key(path, org_id, project_id)
    index_key = make_override_index_key(org_id, project_id)
    deleted = await async_storage_for(redis).delete_overrides(index_key, [key], [path])
    invalidate_leases()
    return deleted > 0


async def list_rate_limit_overrides(
    redis: Any, org_id: str, project_id: str
) -> list[RateLimitOverride]:
    """Every override of the project, sorted by route template."""
    storage = async_storage_for(redis)
    paths = await storage.index_members(make_override_index_key(org_id, project_id))
    if not paths:
        return []
    replies = await storage.read_overrides(
        [make_override_key(p, org_id, project_id) for p in paths]
    )
    found = (as_override(path, fields) for path, fields in zip(paths, replies, strict=True))
    return [override for override in found if override is not None]


async def clear_project_rate_limit_overrides(redis: Any, org_id: str, project_id: str) -> int:
    """Remove every override of the project; how many there were."""
    storage = async_storage_for(redis)
    index_key = make_override_index_key(org_id, project_id)
    paths = await storage.index_members(index_key)
    removed = 0
    for start in range(0, len(paths), _DELETE_BATCH):
        batch = paths[start : start + _DELETE_BATCH]
        keys = [make_override_key(path, org_id, project_id) for path in batch]
        removed += await storage.delete_overrides(index_key, keys, batch)
    invalidate_leases()
    return removed
