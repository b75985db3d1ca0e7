"""Reading an API key from request headers, checking its shape, and hashing it."""

from __future__ import annotations

import re
from hashlib import sha256

MAX_KEY_LENGTH = 512
# Printable ASCII without spaces: anything else is refused before hashing or lookup.
_KEY_SHAPE = re.compile(r"[!-~]+")


def extract_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key from `Authorization: Bearer <key>`, else from `X-API-Key`; None when absent."""
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer":
            return credentials.strip()
    if x_api_key is not None:
        return x_api_key.strip()
    return None


def well_formed(key: str) -> bool:
    """Whether `key` may be a key at all: 1 to 512 printable ASCII characters, no spaces."""
    return 0 < len(key) <= MAX_KEY_LENGTH and _KEY_SHAPE.fullmatch(key) is not None


# The scope entry where `UnknownKeyGate` leaves (key, digest) of a key it hashed, so that
# authentication, later in the same request, neither reads the headers nor hashes it again.
PRESENTED_KEY = "appkit.presented_key"


def key_digest(key: str) -> bytes:
    """The SHA-256 of the key: the only form in which keys are stored, cached or named."""
    return sha256(key.encode()).digest()


def presented_key(raw_headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key a request presents, from its ASGI headers (names lower-case): the first
    `Authorization` and `X-API-Key` values, read in one pass instead of two `Headers` lookups
    per request, then `extract_key`."""
    authorization = x_api_key = None
    for name, value in raw_headers:
        if name == b"authorization":
            if authorization is None:
                authorization = value.decode("latin-1")
        elif name == b"x-api-key" and x_api_key is None:
            x_api_key = value.decode("latin-1")
    return extract_key(authorization, x_api_key)
