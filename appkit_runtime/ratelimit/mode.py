"""Enforce or monitor: whether a request over its limit is refused or only reported.

Monitor mode runs the very same script (so it counts exactly as enforce mode does and sets
the same headers) but lets every request through, counting in a Prometheus counter those it
would have refused: a team can roll out a new limit and watch that number first.
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import Counter

from appkit_runtime.ratelimit.results import RateLimitResult
from appkit_runtime.settings import get_settings

Mode = Literal["enforce", "monitor"]
MODES = ("enforce", "monitor")

WOULD_REJECT_TOTAL = Counter(
    "appkit_ratelimit_would_reject",
    "Requests over their rate limit let through because the limiter is in monitor mode",
    ["route"],
)


def check_mode(mode: object) -> Mode | None:
    """`mode` if None, "enforce" or "monitor", else `ValueError`."""
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be 'enforce' or 'monitor', got {mode!r}")
    return mode  # type: ignore[return-value]


def effective_mode(mode: Mode | None) -> Mode:
    """The limiter's own mode if it has one, else `APPKIT_RATELIMIT_MODE`."""
    return get_settings().ratelimit_mode if mode is None else mode


def refuses(result: RateLimitResult, mode: Mode | None, route: str) -> bool:
    """Whether to answer 429; in monitor mode an over-limit result is counted instead."""
    if not result.is_over_limit:
        return False
    if effective_mode(mode) == "monitor":
        WOULD_REJECT_TOTAL.labels(route=route).inc()
        return False
    return True
