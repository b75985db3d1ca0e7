"""Checks every answer of every key authority before anything is cached or counted under it.

A token whose ids are not non-empty strings would put unrelated keys under one project's
counters and bill, so anything malformed makes the authority "unavailable" (503); the error
names the field, never the key or the value.
"""

from __future__ import annotations

import math
from typing import Any

from appkit_runtime.errors import AuthorityUnavailable
from appkit_runtime.settings import (
    CONTROL_CHARACTERS,
    MAX_AUTH_TTL_SECONDS,
    MAX_ID_LENGTH,
    RateLimit,
    parse_rate_limit,
)
from appkit_runtime.tokens import ProjectToken

_ID = f"a non-empty string of at most {MAX_ID_LENGTH} characters, without control characters"
_TTL = "a finite number of seconds, at least 0"


class MalformedToken(AuthorityUnavailable):
    """The authority answered something that is not a token; `field` says what is wrong."""

    def __init__(self, field: str, expected: str) -> None:
        super().__init__(f"key authority answered a malformed token: {field} must be {expected}")
        self.field = field


def checked_id(field: str, value: object) -> str:
    """`value` if it is an org or project id the Redis key builders take."""
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_ID_LENGTH
        or CONTROL_CHARACTERS.search(value)
    ):
        raise MalformedToken(field, _ID)
    return value


def checked_optional_str(field: str, value: object) -> str | None:
    """`value` if it is a string without control characters, or None (`product`, `key_id`)."""
    if value is not None and (not isinstance(value, str) or CONTROL_CHARACTERS.search(value)):
        raise MalformedToken(field, "a string without control characters, or null")
    return value


def checked_ttl(value: object) -> float:
    """Seconds to cache an answer, clamped to 0..`MAX_AUTH_TTL_SECONDS` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedToken("ttl", _TTL)
    # An integer beyond float's range (JSON allows `1` followed by 400 zeros) is clamped, not
    # converted: float() would raise OverflowError, a 500 instead of a cached answer.
    seconds = float(min(value, MAX_AUTH_TTL_SECONDS)) if isinstance(value, int) else value
    if not math.isfinite(seconds) or seconds < 0:
        raise MalformedToken("ttl", _TTL)
    return min(seconds, MAX_AUTH_TTL_SECONDS)


def _json_scopes(value: object) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise MalformedToken("scopes", "a list of strings")
    return frozenset(value)


def _json_rate_limit(value: object) -> RateLimit | None:
    if value is None:
        return None
    try:
        if isinstance(value, str):
            return parse_rate_limit(value)
    except ValueError:
        pass
    raise MalformedToken("rate_limit", "N/S, such as 100/60, or null")


def token_from_json(body: Any) -> ProjectToken:
    """The token in an authority's JSON answer; `MalformedToken` when it is not one."""
    if not isinstance(body, dict):
        raise MalformedToken("the answer", "a JSON object")
    return ProjectToken(
        org_id=checked_id("org_id", body.get("org_id")),
        project_id=checked_id("project_id", body.get("project_id")),
        key_id=checked_optional_str("key_id", body.get("key_id")),
        product=checked_optional_str("product", body.get("product")),
        scopes=_json_scopes(body.get("scopes")),
        rate_limit=_json_rate_limit(body.get("rate_limit")),
    )


def _checked_rate_limit(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, RateLimit) or not all(
        type(n) is int and 1 <= n < 2**31 for n in value
    ):
        raise MalformedToken("rate_limit", "a RateLimit of two integers from 1 to 2**31 - 1")


def check_token(token: object) -> ProjectToken:
    """`token` if it is a well-formed `ProjectToken`, whichever authority made it."""
    if not isinstance(token, ProjectToken):
        raise MalformedToken("the token", "a ProjectToken or None")
    checked_id("org_id", token.org_id)
    checked_id("project_id", token.project_id)
    checked_optional_str("key_id", token.key_id)
    checked_optional_str("product", token.product)
    scopes = token.scopes
    if not isinstance(scopes, frozenset | set) or not all(isinstance(s, str) for s in scopes):
        raise MalformedToken("scopes", "a set of strings")
    _checked_rate_limit(token.rate_limit)
    return token


def checked_answer(answer: object) -> tuple[ProjectToken | None, float]:
    """An authority's `(token or None, ttl)` with the token checked and the ttl clamped."""
    if not isinstance(answer, tuple) or len(answer) != 2:
        raise MalformedToken("the answer", "a (token or None, ttl) pair")
    token, ttl = answer
    return (check_token(token) if token is not None else None), checked_ttl(ttl)
