"""The in-process TTL cache in front of Redis and the authority, holding invalid keys too.

An entry is `(token or None, expires_at)` by key digest; None marks a key known to be invalid.
The hit path is one dict lookup and one clock read.
"""

from __future__ import annotations

import threading
from time import monotonic

from appkit_runtime.tokens import ProjectToken

Entry = tuple[ProjectToken | None, float]
MAX_ENTRIES = 100_000


class TTLCache:
    """A bounded dict of entries that expire; the oldest entry goes first when it is full."""

    __slots__ = ("_entries", "_lock", "max_entries")

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: dict[bytes, Entry] = {}
        self._lock = threading.Lock()  # writers only (Django threads); reads need none
        self.max_entries = max_entries

    def get(self, digest: bytes) -> Entry | None:
        """The live entry of `digest`, or None when it is absent or expired."""
        entry = self._entries.get(digest)
        if entry is not None and entry[1] > monotonic():
            return entry
        return None

    def put(self, digest: bytes, token: ProjectToken | None, ttl: float) -> None:
        """Keep `token` (None: invalid key) for `ttl` seconds; a ttl of 0 or less keeps nothing."""
        with self._lock:
            if ttl <= 0:
                self._entries.pop(digest, None)
                return
            if digest not in self._entries and len(self._entries) >= self.max_entries:
                self._make_room()
            self._entries[digest] = (token, monotonic() + ttl)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _make_room(self) -> None:
        now = monotonic()
        for digest in [d for d, (_, expires) in self._entries.items() if expires <= now]:
            del self._entries[digest]
        if len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]


def local_ttl(
    token: ProjectToken | None, ttl: float, cache_ttl: float, negative_ttl: float
) -> float:
    """How long this process keeps an answer: the authority's ttl, capped by the settings."""
    return min(ttl, cache_ttl if token is not None else negative_ttl)


LOCAL = TTLCache()
