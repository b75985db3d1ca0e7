"""Framework-free authentication core: keys to `ProjectToken`s, through caches, to authorities.

The FastAPI dependency (`appkit_runtime.fastapi.authentication`) and the Django decorator
(`appkit_runtime.django.decorators`) are thin adapters over this package.
"""

from __future__ import annotations

from appkit_runtime.auth.authorities import Authority, get_authority, get_project_token
from appkit_runtime.auth.credentials import extract_key, key_digest, well_formed
from appkit_runtime.auth.decisions import Denial, authorize
from appkit_runtime.auth.resolve import reset_auth_caches, resolve_async, resolve_sync
from appkit_runtime.auth.static_keys import register_static_key

__all__ = [
    "Authority",
    "Denial",
    "authorize",
    "extract_key",
    "get_authority",
    "get_project_token",
    "key_digest",
    "register_static_key",
    "reset_auth_caches",
    "resolve_async",
    "resolve_sync",
    "well_formed",
]
