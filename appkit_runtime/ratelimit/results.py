"""Value objects shared by the sync and async paths and by both framework adapters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    """The limiter script's reply: `[is_over_limit, request_count, ttl_ms, max, expiry]`."""

    is_over_limit: bool
    request_count: int
    ttl_ms: int
    effective_max_requests: int
    effective_expiry_s: int

    @classmethod
    def from_reply(cls, reply: Sequence[int]) -> RateLimitResult:
        over, count, ttl_ms, max_requests, expiry = reply
        return cls(bool(over), int(count), int(ttl_ms), int(max_requests), int(expiry))

    @property
    def remaining(self) -> int:
        """Requests left in the current window."""
        return remaining_requests(self.effective_max_requests, self.request_count)

    @property
    def reset_seconds(self) -> int:
        """Whole seconds until the window resets, at least 1 (Redis's PTTL, rounded up)."""
        return reset_seconds(self.ttl_ms)


def remaining_requests(max_requests: int, count: int) -> int:
    """Requests left in a window of `max_requests` after `count`."""
    return max(0, max_requests - count)


def reset_seconds(ttl_ms: int) -> int:
    """Whole seconds in `ttl_ms`, rounded up, at least 1."""
    return max(1, -(-ttl_ms // 1000))


@dataclass(frozen=True, slots=True)
class RateLimitOverride:
    """A project's own limit for one route template, stored in Redis."""

    path: str
    max_requests: int
    expiry: int
