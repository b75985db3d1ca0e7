"""The drain worker: usage stream entries into the PostgreSQL sink, each counted exactly once.

A batch goes: read (this consumer's own pending entries after a start, then entries idle
longer than `claim_idle` in dead consumers' hands via XAUTOCLAIM, then new ones) -> one
PostgreSQL transaction that adds the counts and records the flush ids -> XACK. A crash before
the commit leaves the entries pending, to be read again; a crash after it and before the XACK
gets them delivered again, and the recorded flush ids make the sink skip them. So the sink
sees every entry at least once and counts it once. Stop by setting the `stop` event (the CLI
sets it on SIGTERM): the batch in hand is finished and acknowledged first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError, ResponseError

from appkit_runtime import usage_sink
from appkit_runtime.usage_stream import MalformedEntry, UsageEntry, parse_entry

logger = logging.getLogger("appkit_runtime.usage_drain")

# redis-py wraps socket errors in its own; a bare OSError (refused, timed out) is asyncpg's.
REDIS_ERRORS = (RedisError,)
DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
# Two workers adding to the same totals can deadlock; PostgreSQL aborts one, which retries.
RETRIED = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
RETRIES = 5
RETRY_SECONDS = 1.0
LAG_SECONDS = 1.0
PRUNE_SECONDS = 3600.0

ENTRIES_READ = Counter("appkit_usage_drain_entries_read", "Stream entries read", ["group"])
ENTRIES_APPLIED = Counter(
    "appkit_usage_drain_entries_applied", "Entries whose counts were added to the sink", ["group"]
)
ENTRIES_DUPLICATE = Counter(
    "appkit_usage_drain_entries_duplicate",
    "Entries skipped because their flush was applied before",
    ["group"],
)
ENTRIES_LOST = Counter(
    "appkit_usage_drain_entries_lost",
    "Entries acknowledged without counting: trimmed from the stream before read, or unreadable",
    ["group"],
)
BATCHES = Counter("appkit_usage_drain_batches", "Batches committed and acknowledged", ["group"])
LAG = Gauge(
    "appkit_usage_drain_lag_seconds",
    "Age of the oldest entry not yet acknowledged (pending or not yet delivered)",
    ["group"],
)


def default_consumer() -> str:
    """`<host>-<pid>`: unique per running worker. Give a stable `--consumer` to have a
    restarted worker take its own pending entries back at once instead of after `claim_idle`."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class DrainOptions:
    """How a worker drains: its group and consumer name, batch size, and when it stops."""

    database_url: str
    group: str = "billing"
    consumer: str = field(default_factory=default_consumer)
    batch: int = 500
    once: bool = False
    claim_idle: float = 60.0
    idle_wait: float = 0.5
    keep_flush_days: int = 7


@dataclass(slots=True)
class DrainCounts:
    """What a worker did, for its exit line and for tests."""

    read: int = 0
    applied: int = 0
    duplicates: int = 0
    lost: int = 0
    batches: int = 0


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivered entry: its shard, its id, and the usage it carries (None: gone or bad)."""

    key: str
    entry_id: str
    entry: UsageEntry | None


async def drain(
    redis: Any, keys: list[str], options: DrainOptions, stop: asyncio.Event
) -> DrainCounts:
    """Drain `keys` into the sink until `stop` is set (or, with `once`, nothing is left)."""
    return await _Worker(redis, keys, options).run(stop)


async def acknowledge(redis: Any, group: str, deliveries: Iterable[Delivery]) -> None:
    """XACK delivered entries, one call per shard."""
    by_key: dict[str, list[str]] = {}
    for delivery in deliveries:
        by_key.setdefault(delivery.key, []).append(delivery.entry_id)
    for key, ids in by_key.items():
        await redis.xack(key, group, *ids)


class _Worker:
    """One worker's state between batches: where its reads and claims stand."""

    def __init__(self, redis: Any, keys: list[str], options: DrainOptions) -> None:
        self.redis = redis
        self.keys = keys
        self.options = options
        self.counts = DrainCounts()
        self.labels = (options.group,)
        # Served as zeros from the first scrape: a missing series looks like a dead worker.
        for counter in (ENTRIES_READ, ENTRIES_APPLIED, ENTRIES_DUPLICATE, ENTRIES_LOST, BATCHES):
            counter.labels(*self.labels)
        self.own_pending = True
        self.groups_ready = False
        self.claim_cursors = dict.fromkeys(keys, "0-0")
        self.claimed_at = -options.claim_idle
        self.lag_at = -LAG_SECONDS
        self.lag = 0.0
        self.pruned_at = -PRUNE_SECONDS
        self.first_shard = 0
        self.trouble: str | None = None
        redis.set_response_callback("XREADGROUP", _stream_reply)

    async def run(self, stop: asyncio.Event) -> DrainCounts:
        connection: asyncpg.Connection | None = None
        try:
            while not stop.is_set():
                try:
                    if connection is None:
                        connection = await usage_sink.connect(self.options.database_url)
                        await usage_sink.check_tables(connection)
                    found = await self._one_batch(connection)
                    if self.trouble is not None:
                        logger.info("usage drain works again (%s answers)", self.trouble)
                        self.trouble = None
                    if not found:
                        if self.options.once:
                            break
                        await _wait(stop, self.options.idle_wait)
                except REDIS_ERRORS as error:
                    self._failed("Redis", error)
                    await _wait(stop, RETRY_SECONDS)
                except DATABASE_ERRORS as error:
                    self._failed("PostgreSQL", error)
                    if connection is not None:
                        connection.terminate()
                        connection = None
                    await _wait(stop, RETRY_SECONDS)
        finally:
            if connection is not None:
                await connection.close()
        return self.counts

    async def _one_batch(self, connection: asyncpg.Connection) -> bool:
        """Read, apply, acknowledge one batch; False when there was nothing to read."""
        if not self.groups_ready:
            await self._create_groups()
        await self._measure_lag()
        await self._prune(connection)
        deliveries = await self._read()
        if not deliveries:
            return False
        entries = [d.entry for d in deliveries if d.entry is not None]
        applied = await self._apply(connection, entries)
        await acknowledge(self.redis, self.options.group, deliveries)
        self._count(len(deliveries), applied)
        return True

    def _failed(self, what: str, error: BaseException) -> None:
        if self.options.once:
            raise error
        # Whatever this worker had read is still pending: read it again from the start.
        self.own_pending = True
        self.groups_ready = False
        if self.trouble != what:
            self.trouble = what
            logger.warning(
                "usage drain: %s failed, retrying every %.0f s: %r", what, RETRY_SECONDS, error
            )

    async def _create_groups(self) -> None:
        for key in self.keys:
            try:
                await self.redis.xgroup_create(key, self.options.group, id="0", mkstream=True)
            except ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise
        self.groups_ready = True

    async def _read(self) -> list[Delivery]:
        """Up to `batch` entries: own pending ones first, then claimed, then new."""
        wanted = self.options.batch
        shards = self.keys[self.first_shard :] + self.keys[: self.first_shard]
        self.first_shard = (self.first_shard + 1) % len(self.keys)
        found: list[Delivery] = []
        if self.own_pending:
            for key in shards:
                found += await self._read_group(key, "0", wanted - len(found))
                if len(found) >= wanted:
                    return found
            if found:
                return found
            self.own_pending = False
        if time.monotonic() - self.claimed_at >= self.options.claim_idle / 2:
            self.claimed_at = time.monotonic()
            for key in shards:
                found += await self._claim(key, wanted - len(found))
                if len(found) >= wanted:
                    return found
        for key in shards:
            found += await self._read_group(key, ">", wanted - len(found))
            if len(found) >= wanted:
                break
        return found

    async def _read_group(self, key: str, start: str, count: int) -> list[Delivery]:
        reply = await self.redis.xreadgroup(
            self.options.group, self.options.consumer, {key: start}, count=count
        )
        return [self._delivery(key, entry_id, fields) for entry_id, fields in reply]

    async def _claim(self, key: str, count: int) -> list[Delivery]:
        """Take over entries idle in any consumer's hands for `claim_idle` seconds."""
        cursor, entries, *rest = await self.redis.xautoclaim(
            key,
            self.options.group,
            self.options.consumer,
            int(self.options.claim_idle * 1000),
            start_id=self.claim_cursors[key],
            count=count,
        )
        self.claim_cursors[key] = _text(cursor)
        gone = rest[0] if rest else []
        if gone:
            # Redis has already dropped these from the pending list: trimmed before read.
            self._lost(key, [_text(entry_id) for entry_id in gone])
        return [self._delivery(key, _text(i), f) for i, f in entries if i is not None]

    def _delivery(self, key: str, entry_id: Any, fields: Any) -> Delivery:
        entry_id = _text(entry_id)
        if not fields:
            self._lost(key, [entry_id])
            return Delivery(key, entry_id, None)
        try:
            return Delivery(key, entry_id, parse_entry(fields))
        except MalformedEntry as error:
            logger.error("usage drain: entry %s on %s skipped: %s", entry_id, key, error)
            ENTRIES_LOST.labels(*self.labels).inc()
            self.counts.lost += 1
            return Delivery(key, entry_id, None)

    def _lost(self, key: str, ids: list[str]) -> None:
        logger.error(
            "usage drain: %d entries on %s were trimmed before they were counted (%s...); "
            "raise APPKIT_USAGE_STREAM_MAXLEN or add workers",
            len(ids),
            key,
            ids[0],
        )
        ENTRIES_LOST.labels(*self.labels).inc(len(ids))
        self.counts.lost += len(ids)

    async def _apply(self, connection: asyncpg.Connection, entries: list[UsageEntry]) -> int:
        for attempt in range(RETRIES):
            try:
                result = await usage_sink.apply_entries(connection, entries)
                break
            except RETRIED:
                if attempt == RETRIES - 1:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
        self.counts.duplicates += result.duplicates
        ENTRIES_DUPLICATE.labels(*self.labels).inc(result.duplicates)
        return result.applied

    def _count(self, read: int, applied: int) -> None:
        self.counts.read += read
        self.counts.applied += applied
        self.counts.batches += 1
        ENTRIES_READ.labels(*self.labels).inc(read)
        ENTRIES_APPLIED.labels(*self.labels).inc(applied)
        BATCHES.labels(*self.labels).inc()

    async def _measure_lag(self) -> None:
        """Set the lag gauge from the oldest entry not yet acknowledged, at most once a second."""
        if time.monotonic() - self.lag_at < LAG_SECONDS:
            return
        self.lag_at = time.monotonic()
        oldest: list[int] = []
        for key in self.keys:
            pending = await self.redis.xpending(key, self.options.group)
            if pending["pending"]:
                oldest.append(_millis(pending["min"]))
            groups = await self.redis.xinfo_groups(key)
            for group in groups:
                if _text(group["name"]) == self.options.group:
                    after = f"({_text(group['last-delivered-id'])}"
                    undelivered = await self.redis.xrange(key, min=after, count=1)
                    oldest += [_millis(entry_id) for entry_id, _ in undelivered]
        age = time.time() - min(oldest) / 1000 if oldest else 0.0
        self.lag = max(age, 0.0)
        LAG.labels(*self.labels).set(self.lag)

    async def _prune(self, connection: asyncpg.Connection) -> None:
        """Forget applied flush ids older than `keep_flush_days`, hourly. Never while an entry
        that old is still unacknowledged: its id must stay to skip it when it comes back."""
        keep = self.options.keep_flush_days
        if not keep or time.monotonic() - self.pruned_at < PRUNE_SECONDS:
            return
        self.pruned_at = time.monotonic()
        if self.lag >= keep * 86_400:
            logger.warning("usage drain: entries older than %d days pending; not pruning", keep)
            return
        removed = await usage_sink.prune_flushes(connection, keep)
        if removed:
            logger.info("usage drain: forgot %d flush ids applied over %d days ago", removed, keep)


def _stream_reply(response: Any, **options: Any) -> list[tuple[Any, Any]]:
    """XREADGROUP's entries as `(id, {field: value} or None)`; None for an entry still pending
    but trimmed from the stream (redis-py's own parser fails on those)."""
    entries: list[tuple[Any, Any]] = []
    streams = response.items() if isinstance(response, dict) else response or []  # RESP3, RESP2
    for _, stream_entries in streams:
        for entry_id, flat in stream_entries:
            fields = None if flat is None else dict(zip(flat[::2], flat[1::2], strict=True))
            entries.append((entry_id, fields))
    return entries


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        pass


def _millis(entry_id: Any) -> int:
    return int(_text(entry_id).partition("-")[0])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
