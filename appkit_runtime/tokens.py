"""`ProjectToken`: what an API key resolves to, shared by auth, rate limiting and metrics."""

from __future__ import annotations

from dataclasses import dataclass

from appkit_runtime.settings import RateLimit


@dataclass(frozen=True, slots=True)
class ProjectToken:
    """The project an authenticated request acts for, and the limits that apply to it."""

    org_id: str
    project_id: str
    key_id: str | None = None
    product: str | None = None
    scopes: frozenset[str] = frozenset()
    rate_limit: RateLimit | None = None
