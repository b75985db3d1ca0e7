"""Per-project usage: counted in process memory, flushed to Redis in one pipeline.

Counting a job is a dict increment under a lock, so the request path makes no Redis call.
`usage_flusher()` sends the counts every `APPKIT_METRICS_FLUSH_SECONDS` and once more on
exit. Each project's counts go through an idempotent script (a per-process sequence number
is checked and stored in the project's slot), so a flush whose outcome is unknown is retried
as is and never counted twice. Usage is kept as an all-time hash and one hash per UTC day,
both keyed `{product}|{kind}`; the day is the one the job was counted in, not flushed in. A
day's hash expires `APPKIT_USAGE_DAYS_KEPT` days after the day ends, so Redis holds a bounded
number of them per project. With `APPKIT_USAGE_STREAM=true` each project's batch is also
appended to the usage stream (`usage_stream`) in the same pipeline (one script call per
shard), for the billing drain worker; a batch is confirmed only once both are stored, so the
stream gets it at least once.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib.resources import files
from typing import Any
from urllib.parse import quote, unquote
from uuid import uuid4

import redis as sync_redis
import redis.asyncio as async_redis
from prometheus_client import Counter
from redis.exceptions import NoScriptError, RedisError

from appkit_runtime.job_counts import JOB_COUNTS
from appkit_runtime.keys import project_key
from appkit_runtime.settings import get_async_redis_instance, get_redis_instance, get_settings
from appkit_runtime.tokens import ProjectToken
from appkit_runtime.tracing import traced
from appkit_runtime.usage_stream import (
    ENTRY_WIDTH,
    USAGE_STREAM_ADD_LUA,
    USAGE_STREAM_ADD_SHA,
    Cell,
    UsageEntry,
    entry_fields,
    report_trimmed_unread,
    shard_of,
    stream_key,
)

logger = logging.getLogger("appkit_runtime.usage")

DEFAULT_NAME = "default"
# A flush's sequence marker lives this long; a batch retried later than this could count twice.
MARKER_TTL_SECONDS = 86_400
FLUSH_TIMEOUT_SECONDS = 10.0
_DAY_SECONDS = 86_400
FLUSH_ERRORS = (RedisError, OSError, TimeoutError)

USAGE_FLUSH_LUA = files("appkit_runtime").joinpath("lua", "usage_flush.lua").read_text("utf-8")
USAGE_FLUSH_SHA = hashlib.sha1(USAGE_FLUSH_LUA.encode(), usedforsecurity=False).hexdigest()
_SCRIPTS = {USAGE_FLUSH_SHA: USAGE_FLUSH_LUA, USAGE_STREAM_ADD_SHA: USAGE_STREAM_ADD_LUA}

USAGE_FLUSH_FAILURES = Counter(
    "appkit_usage_flush_failures",
    "Usage flushes that failed; their counts are retried",
    ["service"],
)

_Project = tuple[str, str]
_Cell = tuple[str, str, int]  # product, kind, epoch day
_Call = tuple[str, list[str], list[Any]]  # script SHA, keys, arguments


@dataclass(frozen=True, slots=True)
class _Batch:
    seq: int
    counts: dict[_Cell, int]


class UsageCounts:
    """Counts not yet in Redis: pending ones, and per project at most one unconfirmed batch.

    A project's next batch is formed only once its previous one is confirmed, so batches
    reach Redis in sequence order and the script's `seq <= last` check is exact.
    """

    def __init__(self) -> None:
        self.process_id = uuid4().hex
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str, str, str, int], int] = {}
        self._unconfirmed: dict[_Project, _Batch] = {}
        self._seq = itertools.count(1)

    def add(self, org_id: str, project_id: str, product: str, kind: str, n: int = 1) -> None:
        """Count `n` jobs; the hot path, so nothing but a dict increment."""
        key = (org_id, project_id, product, kind, int(time.time()) // _DAY_SECONDS)
        with self._lock:
            self._pending[key] = self._pending.get(key, 0) + n

    def take_round(self) -> tuple[dict[_Project, _Batch], bool]:
        """The batches to send now (unconfirmed ones again, else each project's pending counts),
        and whether some projects' pending counts wait for their unconfirmed batch."""
        with self._lock:
            pending, self._pending = self._pending, {}
            grouped: dict[_Project, dict[_Cell, int]] = {}
            held_back = False
            for (org_id, project_id, product, kind, day), n in pending.items():
                grouped.setdefault((org_id, project_id), {})[(product, kind, day)] = n
            for project, counts in grouped.items():
                if project in self._unconfirmed:
                    held_back = True
                    for (product, kind, day), n in counts.items():
                        self._pending[(*project, product, kind, day)] = n
                else:
                    self._unconfirmed[project] = _Batch(next(self._seq), counts)
            return dict(self._unconfirmed), held_back

    def confirm(self, project: _Project, seq: int) -> None:
        """Forget a batch Redis has applied (or had already applied)."""
        with self._lock:
            batch = self._unconfirmed.get(project)
            if batch is not None and batch.seq == seq:
                del self._unconfirmed[project]

    def total(self) -> int:
        """Jobs counted here and not yet confirmed in Redis."""
        with self._lock:
            unconfirmed = sum(sum(b.counts.values()) for b in self._unconfirmed.values())
            return sum(self._pending.values()) + unconfirmed


usage_counts = UsageCounts()


def _fresh_counts_in_child() -> None:
    # A forked worker must not flush its parent's counts again nor share its sequence.
    global usage_counts
    usage_counts = UsageCounts()


os.register_at_fork(after_in_child=_fresh_counts_in_child)

_failing = False


def reset_usage() -> None:
    """Drop every count not yet flushed and zero the usage metrics (tests start from zero)."""
    global _failing
    _fresh_counts_in_child()
    JOB_COUNTS.clear()
    USAGE_FLUSH_FAILURES.clear()
    _failing = False


def count_job(
    token: ProjectToken, product: str | None, kind: str | None, route: str, method: str
) -> None:
    """Count one job for the token's project and in the Prometheus counter (no ids as labels)."""
    JOB_COUNTS.add((get_settings().service_name, route, method))
    usage_counts.add(
        token.org_id,
        token.project_id,
        product or token.product or DEFAULT_NAME,
        kind or DEFAULT_NAME,
    )


async def flush_usage(redis: Any = None) -> bool:
    """Send every count not yet in Redis, normally in one pipeline; False keeps them for later."""
    for _ in range(2):
        batches, held_back = usage_counts.take_round()
        if not batches:
            return True
        client = redis if redis is not None else get_async_redis_instance("metrics")
        calls, needs = _script_calls(batches)
        try:
            async with asyncio.timeout(FLUSH_TIMEOUT_SECONDS):
                results = await _send(client, calls)
                if any(isinstance(result, NoScriptError) for result in results):
                    for sha in {sha for sha, _, _ in calls}:
                        await client.script_load(_SCRIPTS[sha])
                    results = await _send(client, calls)
        except FLUSH_ERRORS as error:
            return _failed(error)
        ok = _settle(batches, needs, calls, results)
        if not ok or not held_back:
            return ok
    return True


def flush_usage_sync(redis: Any = None) -> bool:
    """`flush_usage` for code without an event loop (Django's flush thread)."""
    for _ in range(2):
        batches, held_back = usage_counts.take_round()
        if not batches:
            return True
        client = redis if redis is not None else get_redis_instance("metrics")
        calls, needs = _script_calls(batches)
        try:
            results = _send_sync(client, calls)
            if any(isinstance(result, NoScriptError) for result in results):
                for sha in {sha for sha, _, _ in calls}:
                    client.script_load(_SCRIPTS[sha])
                results = _send_sync(client, calls)
        except FLUSH_ERRORS as error:
            return _failed(error)
        ok = _settle(batches, needs, calls, results)
        if not ok or not held_back:
            return ok
    return True


@traced("appkit.usage.flush")
async def _send(client: Any, calls: list[_Call]) -> list[Any]:
    if isinstance(client, async_redis.RedisCluster):
        # redis-py refuses EVALSHA in cluster pipelines: every call at once, each routed to
        # its key's slot (a project's, or a stream shard's).
        return list(
            await asyncio.gather(
                *(client.evalsha(sha, len(k), *k, *a) for sha, k, a in calls),
                return_exceptions=True,
            )
        )
    async with client.pipeline(transaction=False) as pipe:
        for sha, keys, args in calls:
            pipe.evalsha(sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))


def _send_sync(client: Any, calls: list[_Call]) -> list[Any]:
    if isinstance(client, sync_redis.RedisCluster):
        return [_evalsha_or_error(client, *call) for call in calls]
    with client.pipeline(transaction=False) as pipe:
        for sha, keys, args in calls:
            pipe.evalsha(sha, len(keys), *keys, *args)
        return list(pipe.execute(raise_on_error=False))


def _evalsha_or_error(client: Any, sha: str, keys: list[str], args: list[Any]) -> Any:
    try:
        return client.evalsha(sha, len(keys), *keys, *args)
    except RedisError as error:
        return error


def _settle(
    batches: dict[_Project, _Batch],
    needs: list[list[int]],
    calls: list[_Call],
    results: list[Any],
) -> bool:
    """Confirm the batches Redis stored in full (hashes, and stream when on); True when all were."""
    for (project, batch), need in zip(batches.items(), needs, strict=True):
        if not any(isinstance(results[i], Exception) for i in need):
            usage_counts.confirm(project, batch.seq)
    for (sha, keys, _), result in zip(calls, results, strict=True):
        if sha == USAGE_STREAM_ADD_SHA and not isinstance(result, Exception) and int(result[1]):
            report_trimmed_unread(keys[0], get_settings().service_name)
    errors = [result for result in results if isinstance(result, Exception)]
    if errors:
        _failed(errors[0])
        return False
    global _failing
    if _failing:
        _failing = False
        logger.info("usage flush works again")
    return True


def _script_calls(batches: dict[_Project, _Batch]) -> tuple[list[_Call], list[list[int]]]:
    """The calls to send: each batch's hashes' flush and, when the stream is on, one append per
    shard holding its batches' entries. With them, per batch, the calls it needs to succeed."""
    settings = get_settings()
    process_id = usage_counts.process_id
    calls: list[_Call] = []
    needs: list[list[int]] = []
    appends: dict[int, int] = {}  # shard -> index of its append call
    for project, batch in batches.items():
        keys, args = _script_call(project, batch, process_id, settings.usage_days_kept)
        calls.append((USAGE_FLUSH_SHA, keys, args))
        needs.append([len(calls) - 1])
        if settings.usage_stream:
            shard = shard_of(*project, settings.usage_stream_shards)
            if shard not in appends:
                appends[shard] = len(calls)
                append_args = [settings.usage_stream_maxlen, ENTRY_WIDTH]
                calls.append((USAGE_STREAM_ADD_SHA, [stream_key(shard)], append_args))
            calls[appends[shard]][2].extend(entry_fields(_entry(project, batch, process_id)))
            needs[-1].append(appends[shard])
    return calls, needs


def _entry(project: _Project, batch: _Batch, process_id: str) -> UsageEntry:
    cells = tuple(
        Cell(product, kind, _day_date(day), n) for (product, kind, day), n in batch.counts.items()
    )
    return UsageEntry(f"{process_id}:{batch.seq}", *project, cells)


def _script_call(
    project: _Project, batch: _Batch, process_id: str, days_kept: int
) -> tuple[list[str], list[Any]]:
    org_id, project_id = project
    days = sorted({day for _, _, day in batch.counts})
    keys = [
        project_key("usage", org_id, project_id, "flushed", process_id),
        project_key("usage", org_id, project_id),
        *(project_key("usage", org_id, project_id, "day", _day_text(day)) for day in days),
    ]
    args: list[Any] = [batch.seq, MARKER_TTL_SECONDS]
    # A day's hash lives `days_kept` days after the day ends; 0 keeps it.
    args += [(day + 1 + days_kept) * _DAY_SECONDS if days_kept else 0 for day in days]
    for (product, kind, day), n in batch.counts.items():
        args += [days.index(day) + 1, f"{quote(product, safe='')}|{quote(kind, safe='')}", n]
    return keys, args


def _failed(error: BaseException) -> bool:
    global _failing
    USAGE_FLUSH_FAILURES.labels(get_settings().service_name).inc()
    if not _failing:
        _failing = True
        logger.warning("usage flush failed, counts kept for the next one: %r", error)
    return False


def _day_date(day: int) -> date:
    return datetime.fromtimestamp(day * _DAY_SECONDS, UTC).date()


def _day_text(day: int | date | str) -> str:
    if isinstance(day, int):
        return _day_date(day).isoformat()
    if isinstance(day, date):
        return day.isoformat()
    return date.fromisoformat(day).isoformat()


@asynccontextmanager
async def usage_flusher() -> AsyncIterator[None]:
    """Flush usage every `metrics_flush_seconds` while the body runs, and once more on exit.

    The loop is stopped by an event, not cancelled: a cancel landing inside a flush can be
    swallowed by the Redis client's own timeouts, which left shutdown waiting forever.
    """
    stop = asyncio.Event()
    task = asyncio.create_task(_flush_until(stop), name="appkit-usage-flusher")
    try:
        yield
    finally:
        stop.set()
        await task
        if not await flush_usage():
            logger.error(
                "usage flush at shutdown failed: %d jobs not recorded", usage_counts.total()
            )


async def _flush_until(stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            async with asyncio.timeout(get_settings().metrics_flush_seconds):
                await stop.wait()
        except TimeoutError:
            await flush_usage()


async def get_project_usage(
    redis: Any, org_id: str, project_id: str, day: date | str | None = None
) -> dict[str, dict[str, int]]:
    """A project's usage in Redis as `{product: {kind: jobs}}`: all time, or one UTC day.

    Counts still in a process's memory (at most one flush interval old) are not included.
    """
    if day is None:
        key = project_key("usage", org_id, project_id)
    else:
        key = project_key("usage", org_id, project_id, "day", _day_text(day))
    return usage_from_hash(await redis.hgetall(key))


def usage_from_hash(fields: dict[Any, Any]) -> dict[str, dict[str, int]]:
    """A usage hash's `{product|kind: jobs}` fields as `{product: {kind: jobs}}`."""
    usage: dict[str, dict[str, int]] = {}
    for field, value in fields.items():
        text = field.decode() if isinstance(field, bytes) else field
        product, _, kind = text.partition("|")
        usage.setdefault(unquote(product), {})[unquote(kind)] = int(value)
    return usage
