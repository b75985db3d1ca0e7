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
    context's path has every prefix.
    """
    context = scope.get("fastapi", _NOTHING).get("effective_route_context")
    if context is not None:
        return context.path
    return getattr(scope.get("route"), "path", default)
