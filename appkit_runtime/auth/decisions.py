"""What the adapters answer when a request may not pass, shared by FastAPI and Django."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from appkit_runtime.tokens import ProjectToken

RETRY_AFTER_SECONDS = 1
_BEARER = MappingProxyType({"WWW-Authenticate": "Bearer"})


@dataclass(frozen=True, slots=True)
class Denial:
    """An HTTP status, a detail safe to show (never key material) and the headers to add."""

    status: int
    detail: str
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


MISSING_KEY = Denial(401, "Missing API key", _BEARER)
INVALID_KEY = Denial(401, "Invalid API key", _BEARER)
WRONG_PRODUCT = Denial(403, "API key is not valid for this product")
MISSING_SCOPE = Denial(403, "API key lacks a required scope")
AUTHORITY_UNAVAILABLE = Denial(
    503,
    "Key authority unavailable, retry later",
    MappingProxyType({"Retry-After": str(RETRY_AFTER_SECONDS)}),
)


def authorize(token: ProjectToken, product: str | None, scopes: frozenset[str]) -> Denial | None:
    """None when `token` may use an endpoint of `product` that needs `scopes`, else why not.

    A token without a product is valid for every product.
    """
    if product is not None and token.product is not None and token.product != product:
        return WRONG_PRODUCT
    if scopes and not scopes <= token.scopes:
        return MISSING_SCOPE
    return None
