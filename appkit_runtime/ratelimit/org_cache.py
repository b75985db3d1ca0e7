"""Each process's copy of the organisation overrides, so the hot path never reads them.

The limiter passes an organisation's override to the script in ARGV; the script still lets a
project override win, so the priority is decided in one atomic step while a request costs one
Redis command. The copy is read at first use (and after a write made by this process), then
read again in the background every `REFRESH_SECONDS / 2`: by the service's lifespan on a timer
(`org_override_refresher`), and behind the first request past that age. No request is
answered from a copy older than `REFRESH_SECONDS`: one that finds such a copy waits for the
read, so another process's change applies within that bound even after the process idled.
A failed refresh keeps the last copy.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import unquote

from appkit_runtime.errors import StorageError
from appkit_runtime.loop_cache import LoopCache
from appkit_runtime.ratelimit.keys import make_org_override_index_key, org_override_key
from appkit_runtime.ratelimit.storage import IndexedOverride, async_storage_for, storage_for
from appkit_runtime.settings import RateLimit, Settings, get_settings

logger = logging.getLogger("appkit_runtime.ratelimit")

# The bound: no request is answered from an older copy. Refreshes come at half of it.
REFRESH_SECONDS = 5.0


class Unread(Enum):
    """No copy has been read for the current settings yet."""

    UNREAD = "unread"


UNREAD = Unread.UNREAD

_Entry = tuple[RateLimit, float | None]  # the limit and when it expires (monotonic), if ever


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The organisation overrides as read at `loaded_at`, for one settings object."""

    settings: Settings
    loaded_at: float
    limits: dict[tuple[str, str], _Entry] = field(default_factory=dict)

    def lookup(self, org_id: str, path: str) -> RateLimit | None:
        entry = self.limits.get((org_id, path))
        if entry is None:
            return None
        limit, expires_at = entry
        if expires_at is not None and time.monotonic() >= expires_at:
            return None
        return limit


def snapshot_of(rows: list[IndexedOverride], settings: Settings, now: float) -> Snapshot:
    """A snapshot from the read script's rows, sent at `now`; vanished overrides are skipped.

    TTLs count from when the read was sent, so the copy drops an override no later than Redis.
    """
    limits: dict[tuple[str, str], _Entry] = {}
    for member, (max_requests, expiry, pttl) in rows:
        if max_requests is None or expiry is None:
            continue
        org, _, path = member.partition(":")
        expires_at = now + int(pttl) / 1000 if int(pttl) > 0 else None
        limits[(unquote(org), path)] = (RateLimit(int(max_requests), int(expiry)), expires_at)
    return Snapshot(settings, now, limits)


class OrgOverrideCache:
    """The process-wide copy; `limit_for` (async) and `limit_for_sync` serve the limiter."""

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None
        self._loading: dict[asyncio.AbstractEventLoop, asyncio.Task[Snapshot]] = {}
        self._sync_lock = threading.Lock()
        self._generation = 0
        self._clients: LoopCache[Any] = LoopCache()  # the client each loop last read with

    def invalidate(self) -> None:
        """Forget the copy, so the next request reads it again (after a write of ours).

        A read already in flight may predate the write: its result is neither stored nor
        shared with later requests.
        """
        self._generation += 1
        self._snapshot = None
        self._loading.clear()

    async def settled(self) -> None:
        """Wait for this loop's read in flight, if any (tests, and a clean shutdown)."""
        task = self._loading.get(asyncio.get_running_loop())
        if task is not None:
            await asyncio.wait([task])

    async def limit_for(self, client: Any, org_id: str, path: str) -> RateLimit | None:
        """The organisation's override on `path`, or None; reads Redis only when it must."""
        found = self.cached_limit(client, org_id, path)
        if found is not UNREAD:
            return found
        # Shielded: a request that goes away must not cancel the read others wait on.
        snapshot = await asyncio.shield(self._load(client, get_settings()))
        return snapshot.lookup(org_id, path)

    def cached_limit(
        self, client: Any, org_id: str, path: str, settings: Settings | None = None
    ) -> RateLimit | None | Unread:
        """`limit_for` without awaiting: UNREAD when there is no copy yet, or only one older
        than `REFRESH_SECONDS` (on a running loop); past half that age a read starts behind.
        `settings`: the current ones, when the caller has read them already."""
        if settings is None:
            settings = get_settings()
        snapshot = self._snapshot
        if snapshot is None or snapshot.settings is not settings:
            return UNREAD
        age = time.monotonic() - snapshot.loaded_at
        if age >= REFRESH_SECONDS:
            return UNREAD
        if age >= REFRESH_SECONDS / 2:
            self._load(client, snapshot.settings).add_done_callback(_log_failure)
        return snapshot.lookup(org_id, path)

    def fixed_limit(
        self, org_id: str, path: str, settings: Settings
    ) -> tuple[Snapshot, RateLimit | None, float] | None:
        """What `cached_limit` answers while it needs no read, for a caller that keeps the
        answer: the copy it comes from, the override (or None) and until when (monotonic) it
        stands; None when `cached_limit` would read or start a read now. The answer holds
        while `answers_from(copy, now)` and `now` is before that time."""
        snapshot = self._snapshot
        now = time.monotonic()
        if not self.answers_from(snapshot, now) or snapshot.settings is not settings:
            return None
        entry = snapshot.limits.get((org_id, path))
        if entry is None or (entry[1] is not None and now >= entry[1]):
            return snapshot, None, float("inf")
        limit, expires_at = entry
        return snapshot, limit, float("inf") if expires_at is None else expires_at

    def answers_from(self, snapshot: Snapshot | None, now: float) -> bool:
        """Whether `cached_limit` answers from `snapshot` at `now` without starting a read:
        it is still the copy, younger than half of `REFRESH_SECONDS`, or younger than that
        bound while this loop's read is already in flight (which `cached_limit` would only
        find again)."""
        if snapshot is None or snapshot is not self._snapshot:
            return False
        age = now - snapshot.loaded_at
        if age < REFRESH_SECONDS / 2:
            return True
        if age >= REFRESH_SECONDS:
            return False
        task = self._loading.get(asyncio.get_running_loop())
        return task is not None and not task.done()

    async def refresh(self) -> None:
        """Read the copy again with the client this loop last used, if it has read one."""
        client = self._clients.current().get("client")
        snapshot = self._snapshot
        if client is None or snapshot is None or snapshot.settings is not get_settings():
            return
        task = self._load(client, snapshot.settings)
        await asyncio.wait([task])
        _log_failure(task)

    def limit_for_sync(self, client: Any, org_id: str, path: str) -> RateLimit | None:
        """The synchronous twin: a copy past the bound is read again before the answer (one
        thread reads, the others wait for it); past half of it one thread reads, others go on."""
        snapshot = self._snapshot
        settings = get_settings()
        if snapshot is None or not _fresh(snapshot, settings):
            with self._sync_lock:
                snapshot = self._snapshot
                if snapshot is None or not _fresh(snapshot, settings):
                    snapshot = self._read_again_sync(client, settings, snapshot)
        elif time.monotonic() - snapshot.loaded_at >= REFRESH_SECONDS / 2:
            if self._sync_lock.acquire(blocking=False):
                try:
                    snapshot = self._read_again_sync(client, settings, snapshot)
                finally:
                    self._sync_lock.release()
        return snapshot.lookup(org_id, path)

    def _read_again_sync(
        self, client: Any, settings: Settings, previous: Snapshot | None
    ) -> Snapshot:
        """A new copy; the previous one (for the same settings) when Redis cannot be read."""
        generation = self._generation
        try:
            return self._store(_read_sync(client, settings), generation)
        except StorageError as error:
            if previous is None or previous.settings is not settings:
                raise
            return self._keep(previous, error)

    def _load(self, client: Any, settings: Settings) -> asyncio.Task[Snapshot]:
        """The running loop's read in flight, started if there is none (single flight)."""
        loop = asyncio.get_running_loop()
        self._clients.current()["client"] = client
        task = self._loading.get(loop)
        if task is None or task.done():
            task = self._loading[loop] = loop.create_task(self._read(client, settings))
        return task

    async def _read(self, client: Any, settings: Settings) -> Snapshot:
        generation = self._generation
        sent = time.monotonic()
        try:
            storage = async_storage_for(client)
            rows = await storage.read_indexed_overrides(
                make_org_override_index_key(), org_override_key
            )
        except StorageError as error:
            previous = self._snapshot
            if previous is not None and previous.settings is settings:
                return self._keep(previous, error)
            raise
        finally:
            loop = asyncio.get_running_loop()
            if self._loading.get(loop) is asyncio.current_task():
                del self._loading[loop]
        return self._store(snapshot_of(rows, settings, sent), generation)

    def _store(self, snapshot: Snapshot, generation: int) -> Snapshot:
        """Keep `snapshot` unless a write of ours happened since its read began."""
        if generation == self._generation:
            self._snapshot = snapshot
        return snapshot

    def _keep(self, previous: Snapshot, error: StorageError) -> Snapshot:
        """After a failed refresh, keep the last copy and try again an interval later."""
        logger.warning("organisation rate-limit overrides not refreshed: %s", error)
        self._snapshot = Snapshot(previous.settings, time.monotonic(), previous.limits)
        return self._snapshot


def _fresh(snapshot: Snapshot, settings: Settings) -> bool:
    """Whether `snapshot` may answer a request: read for `settings`, within the bound."""
    return snapshot.settings is settings and time.monotonic() - snapshot.loaded_at < REFRESH_SECONDS


def _read_sync(client: Any, settings: Settings) -> Snapshot:
    sent = time.monotonic()
    rows = storage_for(client).read_indexed_overrides(
        make_org_override_index_key(), org_override_key
    )
    return snapshot_of(rows, settings, sent)


def _log_failure(task: asyncio.Task[Snapshot]) -> None:
    # A background refresh has no awaiter: retrieve its error so asyncio does not log it.
    if not task.cancelled() and task.exception() is not None:
        logger.debug("organisation override refresh failed: %s", task.exception())


ORG_OVERRIDES = OrgOverrideCache()


@asynccontextmanager
async def org_override_refresher() -> AsyncIterator[None]:
    """Refresh the copy every `REFRESH_SECONDS / 2` while the body (a service's life) runs,
    so requests after an idle spell neither wait nor see an old copy.

    Stopped by an event, not cancelled, like the usage flusher: a cancel landing inside a read
    can be swallowed by the Redis client's own timeouts.
    """
    stop = asyncio.Event()
    task = asyncio.create_task(_refresh_until(stop), name="appkit-org-override-refresher")
    try:
        yield
    finally:
        stop.set()
        await task


async def _refresh_until(stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            async with asyncio.timeout(REFRESH_SECONDS / 2):
                await stop.wait()
        except TimeoutError:
            await ORG_OVERRIDES.refresh()
