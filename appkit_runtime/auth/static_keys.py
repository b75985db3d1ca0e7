"""The `static` authority: keys from `APPKIT_API_KEYS`, plus keys registered by tests.

Keys are held only as SHA-256 digests. The digest table is built once per settings object
(settings are frozen) and every digest is compared in constant time. Static key sets are
small and misses are cached, so the scan stays off the hot path.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterable, Mapping

from appkit_runtime.auth.credentials import key_digest
from appkit_runtime.settings import RateLimit, Settings, StaticKey, get_settings, parse_rate_limit
from appkit_runtime.tokens import ProjectToken

_table: tuple[Settings, dict[bytes, ProjectToken]] | None = None
_registered: dict[bytes, ProjectToken] = {}
_lock = threading.Lock()


def token_of(entry: StaticKey) -> ProjectToken:
    """The token one `APPKIT_API_KEYS` entry opens."""
    return ProjectToken(
        org_id=entry.org_id,
        project_id=entry.project_id,
        key_id=entry.key_id,
        product=entry.product,
        scopes=frozenset(entry.scopes),
        rate_limit=parse_rate_limit(entry.rate_limit) if entry.rate_limit else None,
    )


def _digest_of(entry: StaticKey) -> bytes:
    if entry.key_sha256 is not None:
        return bytes.fromhex(entry.key_sha256)
    return key_digest(entry.key or "")


def settings_table(settings: Settings) -> dict[bytes, ProjectToken]:
    """`{digest: token}` for the keys of `settings`, built once per settings object."""
    global _table
    cached = _table
    if cached is not None and cached[0] is settings:
        return cached[1]
    table = {_digest_of(entry): token_of(entry) for entry in settings.api_keys}
    _table = (settings, table)
    return table


def register_static_key(
    key: str,
    *,
    org_id: str,
    project_id: str,
    key_id: str | None = None,
    product: str | None = None,
    scopes: Iterable[str] = (),
    rate_limit: str | RateLimit | None = None,
) -> Callable[[], None]:
    """Accept `key` besides the configured ones; returns the function that removes it."""
    if isinstance(rate_limit, str):
        rate_limit = parse_rate_limit(rate_limit)
    token = ProjectToken(org_id, project_id, key_id, product, frozenset(scopes), rate_limit)
    digest = key_digest(key)
    with _lock:
        _registered[digest] = token

    def unregister() -> None:
        with _lock:
            if _registered.get(digest) is token:
                del _registered[digest]

    return unregister


def forget_table() -> None:
    """Drop the digest table; the next lookup rebuilds it from the current settings."""
    global _table
    _table = None


class StaticAuthority:
    """Looks keys up by digest; tokens are cacheable for `APPKIT_AUTH_CACHE_TTL` seconds."""

    def get_project_token(
        self,
        current_product: str | None,
        headers: Mapping[str, str],
        key_token: str,
        kind: str | None,
        request_method: str,
        port: int | None,
    ) -> tuple[ProjectToken | None, float]:
        """The token of `key_token`, or None; the other arguments do not matter here."""
        settings = get_settings()
        digest = key_digest(key_token)
        found: ProjectToken | None = None
        # Every digest is compared, without stopping early, so timing says nothing of matches.
        for table in (settings_table(settings), dict(_registered)):
            for candidate, token in table.items():
                if hmac.compare_digest(candidate, digest):
                    found = token
        if found is None:
            return None, settings.auth_negative_ttl
        return found, settings.auth_cache_ttl


STATIC_AUTHORITY = StaticAuthority()
