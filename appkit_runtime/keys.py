"""Redis key names: the service prefix, then a Redis Cluster hash tag of the project.

Every key of one project shares the tag `{org:project}`, so multi-key scripts and pipelines
stay in one cluster slot. Ids are percent-encoded, so a `:`, `{` or `}` inside one project's
id can never produce another project's key or move the tag.
"""

from __future__ import annotations

from urllib.parse import quote

from appkit_runtime.settings import get_settings


def escape_id(value: str) -> str:
    """Percent-encode everything but letters, digits and `-_.~`."""
    return quote(str(value), safe="")


def project_tag(org_id: str, project_id: str) -> str:
    """The hash tag shared by every key of one project."""
    return f"{{{escape_id(org_id)}:{escape_id(project_id)}}}"


def project_key(kind: str, org_id: str, project_id: str, *rest: str) -> str:
    """`<prefix>:<kind>:{org:project}[:rest...]`, the one shape of every per-project key."""
    tail = "".join(f":{part}" for part in rest)
    return f"{get_settings().redis_prefix}:{kind}:{project_tag(org_id, project_id)}{tail}"


def service_key(kind: str, *rest: str) -> str:
    """`<prefix>:<kind>[:rest...]`, for keys that belong to no project."""
    tail = "".join(f":{part}" for part in rest)
    return f"{get_settings().redis_prefix}:{kind}{tail}"
