"""The matched route's template as clients call it, with the prefixes it was included under."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.types import Scope

_NOTHING: Mapping[str, Any] = {}


def route_template(scope: Scope, default: str = "") -> str:
    """The template of the route `scope` matched (`default` when none did).

    FastAPI 0.165 and later serve a router included with a prefix through a per-inclusion
    context and leave the route's own path, without that prefix, in `scope["route"]`: two
    inclusions of one router would share a rate-limit counter and a metrics series. The
    context's path has every prefix. A route of a mounted app is named with the mount's
    path in front, for the same reason.
    """
    context = scope.get("fastapi", _NOTHING).get("effective_route_context")
    if context is not None:
        path = context.path
    else:
        path = getattr(scope.get("route"), "path", None)
        if path is None:
            return default
    mounted_at = scope.get("app_root_path")
    if mounted_at is None:
        return path
    # Inside a mounted app: Starlette's mounts add their paths to `root_path`, after the
    # `root_path` the server was given, which they keep in `app_root_path`.
    return scope["root_path"].removeprefix(mounted_at) + path
