"""The usage stream: where each flush's counts are appended for the billing drain worker.

One entry is one project's flush batch: its identity (`<process id>:<sequence>`, the same
pair the hashes' idempotent flush checks), the org and project, and its cells (product,
kind, UTC day, jobs) as JSON. A project always goes to the same of
`APPKIT_USAGE_STREAM_SHARDS` streams. Each shard's key carries its own Redis Cluster hash tag,
chosen so that shard n's slot sits at the bit-reversal of n (0, 8192, 4096, 12288, ...):
shards spread over the nodes of an evenly split cluster, and a shard's key does not change
when the shard count does.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import time
import zlib
from dataclasses import dataclass
from datetime import date
from importlib.resources import files
from typing import Any

from prometheus_client import Counter
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from appkit_runtime.keys import service_key

logger = logging.getLogger("appkit_runtime.usage")

USAGE_STREAM_ADD_LUA = (
    files("appkit_runtime").joinpath("lua", "usage_stream_add.lua").read_text("utf-8")
)
USAGE_STREAM_ADD_SHA = hashlib.sha1(
    USAGE_STREAM_ADD_LUA.encode(), usedforsecurity=False
).hexdigest()

# At most one "trimmed unread" warning per this many seconds.
TRIM_WARNING_SECONDS = 60.0
USAGE_STREAM_TRIMMED = Counter(
    "appkit_usage_stream_trimmed_unread",
    "Appends to the usage stream whose MAXLEN cap removed entries no consumer group had "
    "acknowledged",
    ["service"],
)
_trim_warned_at = -TRIM_WARNING_SECONDS

ENTRY_VERSION = "1"
# Field/value items of one entry, as `entry_fields` returns them.
ENTRY_WIDTH = 10
# How close to its target slot a shard's hash tag must land (about 250 tries on average).
_SLOT_SPREAD = 64
_SLOT_BITS = 14


@dataclass(frozen=True, slots=True)
class Cell:
    """Jobs of one product and kind on one UTC day."""

    product: str
    kind: str
    day: date
    jobs: int


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """One flush batch of one project, as the stream carries it."""

    flush_id: str
    org_id: str
    project_id: str
    cells: tuple[Cell, ...]


class MalformedEntry(ValueError):
    """A stream entry that is not a usage entry this runtime can read."""


@functools.cache
def shard_tag(shard: int) -> str:
    """The hash tag of shard `shard`: the first `s<n>.<i>` whose slot is near its target."""
    target = int(f"{shard:0{_SLOT_BITS}b}"[::-1], 2)
    for attempt in itertools.count():
        tag = f"s{shard}.{attempt}"
        if (key_slot(tag.encode()) - target) % REDIS_CLUSTER_HASH_SLOTS < _SLOT_SPREAD:
            return tag
    raise AssertionError("unreachable")  # pragma: no cover


def stream_key(shard: int) -> str:
    """`<prefix>:usage-stream:{<tag>}`, the key of one shard."""
    return service_key("usage-stream", f"{{{shard_tag(shard)}}}")


def stream_keys(shards: int) -> list[str]:
    """The keys of shards 0 to `shards - 1`."""
    return [stream_key(shard) for shard in range(shards)]


def shard_of(org_id: str, project_id: str, shards: int) -> int:
    """The shard a project's entries go to (stable, so one project's entries stay in order)."""
    return zlib.crc32(f"{org_id}\0{project_id}".encode()) % shards


def entry_fields(entry: UsageEntry) -> list[str]:
    """The entry as the flat field/value list XADD takes."""
    cells = [[c.product, c.kind, c.day.isoformat(), c.jobs] for c in entry.cells]
    return [
        "v",
        ENTRY_VERSION,
        "flush",
        entry.flush_id,
        "org",
        entry.org_id,
        "project",
        entry.project_id,
        "cells",
        json.dumps(cells, separators=(",", ":")),
    ]


def parse_entry(fields: dict[Any, Any]) -> UsageEntry:
    """A usage entry from the fields XREADGROUP returned; `MalformedEntry` when it is not one."""
    text = {_text(k): _text(v) for k, v in fields.items()}
    if text.get("v") != ENTRY_VERSION:
        raise MalformedEntry(f"unknown entry version {text.get('v')!r}")
    try:
        cells = tuple(
            Cell(str(product), str(kind), date.fromisoformat(day), int(jobs))
            for product, kind, day, jobs in json.loads(text["cells"])
        )
        return UsageEntry(text["flush"], text["org"], text["project"], cells)
    except (KeyError, TypeError, ValueError) as error:
        raise MalformedEntry(f"unreadable usage entry: {error!r}") from None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def report_trimmed_unread(key: str, service: str) -> None:
    """Count an append whose cap dropped unacknowledged entries; warn at most once a minute."""
    global _trim_warned_at
    USAGE_STREAM_TRIMMED.labels(service).inc()
    now = time.monotonic()
    if now - _trim_warned_at >= TRIM_WARNING_SECONDS:
        _trim_warned_at = now
        logger.warning(
            "usage stream %s reached APPKIT_USAGE_STREAM_MAXLEN and dropped entries no drain "
            "worker had acknowledged: that usage will not reach billing; run `usage drain` "
            "or raise the cap",
            key,
        )
