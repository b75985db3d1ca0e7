"""The in-process TTL caches in front of Redis and the authority: valid keys and invalid keys
apart, so that a flood of unknown keys can only push out other unknown keys.

An entry is `(token or None, expires_at)` by key digest; None marks a key known to be invalid.
The hit path is one or two dict lookups and one clock read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from time import monotonic

from prometheus_client import Counter

from appkit_runtime.tokens import ProjectToken

Entry = tuple[ProjectToken | None, float]
MAX_ENTRIES = 100_000
# Expired entries dropped from the oldest end on each write: a bound, so that no single
# request pays for a whole expired cache, yet more than one, so expiry outpaces writes.
SWEEP_PER_PUT = 8

EVICTIONS = Counter(
    "appkit_auth_cache_evictions",
    "Live entries dropped from the in-process key cache because it was full",
    ["cache"],
)


class TTLCache:
    """A bounded map of entries that expire; expired entries leave as new ones arrive, and
    the oldest entry goes first when it is full (counted in `appkit_auth_cache_evictions`)."""

    __slots__ = ("_entries", "_lock", "max_entries", "_evictions")

    def __init__(self, max_entries: int = MAX_ENTRIES, *, name: str = "valid") -> None:
        # OrderedDict, not dict: dropping the oldest entry is O(1) however many went before.
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()
        self._lock = threading.Lock()  # writers only (Django threads); reads need none
        self.max_entries = max_entries
        self._evictions = EVICTIONS.labels(cache=name)

    def get(self, digest: bytes) -> Entry | None:
        """The live entry of `digest`, or None when it is absent or expired."""
        entry = self._entries.get(digest)
        if entry is not None and entry[1] > monotonic():
            return entry
        return None

    def put(self, digest: bytes, token: ProjectToken | None, ttl: float) -> None:
        """Keep `token` (None: invalid key) for `ttl` seconds; a ttl of 0 or less keeps nothing."""
        with self._lock:
            now = monotonic()
            self._entries.pop(digest, None)  # a renewed entry moves to the newest end
            self._sweep(now)
            if ttl <= 0:
                return
            while len(self._entries) >= self.max_entries:
                self._entries.popitem(last=False)
                self._evictions.inc()
            self._entries[digest] = (token, now + ttl)

    def discard(self, digest: bytes) -> None:
        """Forget the entry of `digest`, if any."""
        with self._lock:
            self._entries.pop(digest, None)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _sweep(self, now: float) -> None:
        entries = self._entries
        for _ in range(SWEEP_PER_PUT):
            if not entries:
                return
            oldest = next(iter(entries))
            if entries[oldest][1] > now:
                return
            del entries[oldest]


class KeyCache:
    """Valid keys and invalid keys in two `TTLCache`s, read as one, and the digests of the
    keys last found valid, kept after their entries expire (`seen_valid`)."""

    __slots__ = ("valid", "invalid", "_seen_valid", "_lock")

    def __init__(self) -> None:
        self.valid = TTLCache(name="valid")
        self.invalid = TTLCache(name="invalid")
        # Digests only, oldest first, at most MAX_ENTRIES: the key gate lets a key whose
        # entry expired go straight to its lookup instead of queueing with unknown keys.
        self._seen_valid: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def seen_valid(self, digest: bytes) -> bool:
        """Whether `digest` was among the last `MAX_ENTRIES` keys found valid and has not been
        found invalid since."""
        return digest in self._seen_valid

    def get(self, digest: bytes) -> Entry | None:
        """The live entry of `digest` in either cache, or None."""
        entry = self.valid.get(digest)
        return entry if entry is not None else self.invalid.get(digest)

    def put(
        self, digest: bytes, token: ProjectToken | None, ttl: float, *, max_invalid: int
    ) -> None:
        """Keep the answer in the cache for its kind; `max_invalid` is
        `APPKIT_AUTH_NEGATIVE_CACHE_MAX`, passed in since settings may change (tests)."""
        if token is None:
            self.valid.discard(digest)
            with self._lock:
                self._seen_valid.pop(digest, None)
            self.invalid.max_entries = max_invalid
            self.invalid.put(digest, None, ttl)
        else:
            self.invalid.discard(digest)
            self.valid.put(digest, token, ttl)
            with self._lock:
                self._seen_valid[digest] = None
                self._seen_valid.move_to_end(digest)
                if len(self._seen_valid) > MAX_ENTRIES:
                    self._seen_valid.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        self.valid.clear()
        self.invalid.clear()
        with self._lock:
            self._seen_valid.clear()

    def __len__(self) -> int:
        return len(self.valid) + len(self.invalid)


def local_ttl(
    token: ProjectToken | None, ttl: float, cache_ttl: float, negative_ttl: float
) -> float:
    """How long this process keeps an answer: the authority's ttl, capped by the settings."""
    return min(ttl, cache_ttl if token is not None else negative_ttl)


LOCAL = KeyCache()
