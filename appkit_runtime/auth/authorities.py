"""The key authority: one synchronous call from a key to a token and how long to cache it.

`get_project_token(current_product, headers, key_token, kind, request_method, port)` has the
reference's signature and returns `(ProjectToken | None, seconds)`; None means the key is
invalid. An authority that cannot answer raises `AuthorityUnavailable`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from appkit_runtime.settings import get_settings
from appkit_runtime.tokens import ProjectToken


class Authority(Protocol):
    """Anything that resolves keys with the reference's signature."""

    def get_project_token(
        self,
        current_product: str | None,
        headers: Mapping[str, str],
        key_token: str,
        kind: str | None,
        request_method: str,
        port: int | None,
    ) -> tuple[ProjectToken | None, float]: ...


def get_authority() -> Authority:
    """The authority `APPKIT_AUTH_BACKEND` names: `static` keys or the `http` service."""
    if get_settings().auth_backend == "http":
        from appkit_runtime.auth.http_authority import http_authority

        return http_authority()
    from appkit_runtime.auth.static_keys import STATIC_AUTHORITY

    return STATIC_AUTHORITY


def get_project_token(
    current_product: str | None,
    headers: Mapping[str, str],
    key_token: str,
    kind: str | None,
    request_method: str,
    port: int | None,
) -> tuple[ProjectToken | None, float]:
    """Ask the configured authority (blocking: run it in a thread from async code)."""
    return get_authority().get_project_token(
        current_product, headers, key_token, kind, request_method, port
    )
