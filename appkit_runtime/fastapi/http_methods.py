"""HTTP's methods as OpenTelemetry's semantic conventions know them, shared by the server span
and the access line, so that neither carries a method a client made up."""

from __future__ import annotations

KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)
# What the conventions record for any other method.
OTHER_METHOD = "_OTHER"


def known_method(method: str) -> str:
    """`method`, or `_OTHER` when the conventions do not know it."""
    return method if method in KNOWN_METHODS else OTHER_METHOD
