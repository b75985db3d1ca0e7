"""The `api_key` fixture: a static key that exists for one test, and the auth cache reset.

The key is registered with the `static` authority (the default `APPKIT_AUTH_BACKEND`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator

import pytest

from appkit_runtime.auth.resolve import reset_auth_caches
from appkit_runtime.auth.static_keys import register_static_key
from appkit_runtime.settings import RateLimit

__all__ = ["api_key", "reset_auth_caches"]

ApiKeyFactory = Callable[..., str]


@pytest.fixture
def api_key() -> Iterator[ApiKeyFactory]:
    """`api_key(org_id="org", project_id="project", *, key_id=None, product=None, scopes=(),
    rate_limit=None) -> str`: registers a fresh static key and returns it in plain text."""
    unregisters: list[Callable[[], None]] = []

    def make(
        org_id: str = "org",
        project_id: str = "project",
        *,
        key_id: str | None = None,
        product: str | None = None,
        scopes: Iterable[str] = (),
        rate_limit: str | RateLimit | None = None,
    ) -> str:
        key = f"ak_test_{secrets.token_urlsafe(24)}"
        unregisters.append(
            register_static_key(
                key,
                org_id=org_id,
                project_id=project_id,
                key_id=key_id,
                product=product,
                scopes=scopes,
                rate_limit=rate_limit,
            )
        )
        return key

    yield make
    for unregister in unregisters:
        unregister()
