"""The `static` authority: keys from `APPKIT_API_KEYS`, plus keys registered by tests.

Keys are held only as SHA-256 digests, in a dict keyed by digest: one lookup per key whatever
the number of keys. Comparing digests one by one would buy nothing, since a caller cannot
choose the digest of the key it sends, and it made every miss cost O(number of keys).
The table is built once, with the settings (`APPKIT_API_KEYS` is validated into it), and
`get_settings()` loads once even when threads ask together; the lifespan loads settings at
start-up, so the first requests find the table built.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from appkit_runtime.auth.credentials import MAX_KEY_LENGTH, key_digest, well_formed
from appkit_runtime.settings import (
    RateLimit,
    Settings,
    StaticKey,
    StaticKeys,
    get_settings,
    parse_rate_limit,
)
from appkit_runtime.tokens import ProjectToken

T = TypeVar("T")

_registered: dict[bytes, ProjectToken] = {}
_lock = threading.Lock()


def _digest_of(entry: StaticKey) -> bytes:
    if entry.key_sha256 is not None:
        return bytes.fromhex(entry.key_sha256)
    return key_digest(entry.key or "")


def _entry(index: int, raw: Any) -> StaticKey:
    if isinstance(raw, StaticKey):
        return raw
    try:
        entry = StaticKey.model_validate(raw)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in (index, *first["loc"]))
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ValueError(f"{message} (at {where})") from None
    if entry.key is not None and not well_formed(entry.key):
        # No request could present it: refused here rather than answered 401 forever.
        raise ValueError(
            f"key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters without spaces, "
            f"as a presented key is (at {index}.key)"
        )
    return entry


def build_table(entries: Sequence[Any]) -> StaticKeys:
    """Validate `entries` one at a time into `{digest: token}`, keeping no model per entry.

    Values that repeat (org ids, products, scopes, limits, whole tokens) are stored once:
    large key sets hold many keys of few organisations.
    """
    shared: dict[Any, Any] = {}
    table: dict[bytes, ProjectToken] = {}
    plain = 0
    for index, raw in enumerate(entries):
        entry = _entry(index, raw)
        plain += entry.key is not None
        token = ProjectToken(
            org_id=_text(shared, entry.org_id),
            project_id=_fresh(entry.project_id),
            key_id=_fresh(entry.key_id) if entry.key_id is not None else None,
            product=_text(shared, entry.product) if entry.product is not None else None,
            scopes=_shared(shared, frozenset(_text(shared, s) for s in entry.scopes)),
            rate_limit=_shared(shared, _rate_limit(entry.rate_limit)),
        )
        token = _shared(shared, token)
        found = table.setdefault(_digest_of(entry), token)
        if found is not token and found != token:
            # The dict would keep the last entry: which project a key opens (and bills)
            # would depend on the order of the file. The key itself is never named.
            raise ValueError(f"the same key as an earlier entry, for another token (at {index})")
    return StaticKeys(table, plain)


def _fresh(text: str) -> str:
    # A copy, so the table holds no string of the parsed JSON: then the memory of that JSON
    # (about as large as the table) goes back to the system once it is dropped.
    return text.encode().decode()


def _text(shared: dict[Any, Any], text: str) -> str:
    found = shared.get(text)
    if found is None:
        found = shared[text] = _fresh(text)
    return found  # type: ignore[no-any-return]


def _shared(shared: dict[Any, Any], value: T) -> T:
    return shared.setdefault(value, value)  # type: ignore[no-any-return]


def _rate_limit(text: str | None) -> RateLimit | None:
    return parse_rate_limit(text) if text else None


def settings_table(settings: Settings) -> Mapping[bytes, ProjectToken]:
    """`{digest: token}` for the keys of `settings`, built when they were loaded."""
    return settings.api_keys.by_digest


def load_static_keys() -> int:
    """Load settings, and with them the key table, now (start-up) rather than on the first
    request; returns how many keys the table holds."""
    return len(get_settings().api_keys)


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


def lookup(digest: bytes) -> ProjectToken | None:
    """The token of the key whose SHA-256 is `digest`: configured keys, then registered ones."""
    found = get_settings().api_keys.by_digest.get(digest)
    return found if found is not None else _registered.get(digest)


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
        found = lookup(key_digest(key_token))
        if found is None:
            return None, settings.auth_negative_ttl
        return found, settings.auth_cache_ttl


STATIC_AUTHORITY = StaticAuthority()
