"""The raw header fields the protected chain appends are exactly `rate_limit_headers`, encoded."""

from __future__ import annotations

import pytest

from appkit_runtime.ratelimit.headers import rate_limit_headers, raw_rate_limit_headers
from appkit_runtime.ratelimit.results import RateLimitResult

RESULTS = [
    RateLimitResult(False, 1, 59_001, 100, 60),
    RateLimitResult(True, 250, 1, 200, 3600),  # over the limit: remaining 0, reset 1 s
    RateLimitResult(False, 0, 0, 1_000_000_000, 1),
]


@pytest.mark.parametrize("style", ["draft", "legacy", "both", "off"])
@pytest.mark.parametrize("result", RESULTS)
def test_raw_fields_are_the_encoded_fields_in_order(result: RateLimitResult, style: str) -> None:
    expected = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in rate_limit_headers(result, style).items()
    ]
    assert raw_rate_limit_headers(result, style) == expected


def test_draft_fields_read_as_the_draft_spells_them() -> None:
    raw = dict(raw_rate_limit_headers(RESULTS[0], "draft"))
    assert raw == {
        b"ratelimit-policy": b'"default";q=100;w=60',
        b"ratelimit": b'"default";r=99;t=60',
    }
