"""Response header fields for a limiter result, in the styles `APPKIT_RATELIMIT_HEADERS` names.

`draft` is draft-ietf-httpapi-ratelimit-headers (07 and later): `RateLimit-Policy` and
`RateLimit` structured fields; `legacy` is the older `RateLimit-Limit/-Remaining/-Reset`.
"""

from __future__ import annotations

from functools import lru_cache

from appkit_runtime.ratelimit.results import RateLimitResult

POLICY_NAME = "default"
_POLICY = POLICY_NAME.encode("latin-1")


def rate_limit_headers(result: RateLimitResult, style: str) -> dict[str, str]:
    """The header fields for `result`; `style` is draft, legacy, both or off."""
    if style == "off":
        return {}
    limit = result.effective_max_requests
    remaining = result.remaining
    reset = result.reset_seconds
    headers: dict[str, str] = {}
    if style != "legacy":
        headers["RateLimit-Policy"] = f'"{POLICY_NAME}";q={limit};w={result.effective_expiry_s}'
        headers["RateLimit"] = f'"{POLICY_NAME}";r={remaining};t={reset}'
    if style != "draft":
        headers["RateLimit-Limit"] = str(limit)
        headers["RateLimit-Remaining"] = str(remaining)
        headers["RateLimit-Reset"] = str(reset)
    return headers


def raw_rate_limit_headers(result: RateLimitResult, style: str) -> list[tuple[bytes, bytes]]:
    """The same fields as ASGI raw headers (lower-case latin-1 names), ready to append;
    formatted as bytes directly, with no dict of strings made first (every request)."""
    return raw_header_fields(
        style,
        result.effective_max_requests,
        result.effective_expiry_s,
        result.remaining,
        result.reset_seconds,
    )


def raw_header_fields(
    style: str, limit: int, window: int, remaining: int, reset: int
) -> list[tuple[bytes, bytes]]:
    """`raw_rate_limit_headers` from the numbers themselves (the chain's fast path has no
    result object to read them from)."""
    if style == "off":
        return []
    raw: list[tuple[bytes, bytes]] = []
    if style != "legacy":
        raw.append(_raw_policy(limit, window))
        raw.append((b"ratelimit", b'"%s";r=%d;t=%d' % (_POLICY, remaining, reset)))
    if style != "draft":
        raw.append((b"ratelimit-limit", b"%d" % limit))
        raw.append((b"ratelimit-remaining", b"%d" % remaining))
        raw.append((b"ratelimit-reset", b"%d" % reset))
    return raw


@lru_cache(maxsize=256)
def _raw_policy(limit: int, window: int) -> tuple[bytes, bytes]:
    # A route's policy is the same on every request: formatted once per limit, not per request.
    return (b"ratelimit-policy", b'"%s";q=%d;w=%d' % (_POLICY, limit, window))


def rejection_headers(result: RateLimitResult, style: str) -> dict[str, str]:
    """The fields of a 429: those of `style` plus `Retry-After`, the seconds to the reset."""
    headers = rate_limit_headers(result, style)
    headers["Retry-After"] = str(result.reset_seconds)
    return headers
