"""The billing sink: usage totals in PostgreSQL, each flush batch applied exactly once.

Two tables. `appkit_usage_totals` holds jobs per (org, project, product, kind, UTC day),
added to with `INSERT ... ON CONFLICT DO UPDATE`. `appkit_usage_flushes` holds the id of every
flush batch applied; a batch's totals are added in the same transaction that records its id,
so a stream entry delivered again (a worker killed before its XACK, a claim, a retried flush)
finds its id there and is skipped. `python -m appkit_runtime.manage usage init` creates both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlsplit

import asyncpg

from appkit_runtime.usage_stream import UsageEntry

TOTALS_TABLE = "appkit_usage_totals"
FLUSHES_TABLE = "appkit_usage_flushes"
SCHEMA_SQL = f"""\
CREATE TABLE IF NOT EXISTS {TOTALS_TABLE} (
    org_id text NOT NULL,
    project_id text NOT NULL,
    product text NOT NULL,
    kind text NOT NULL,
    day date NOT NULL,
    jobs bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, project_id, day, product, kind)
);
CREATE TABLE IF NOT EXISTS {FLUSHES_TABLE} (
    flush_id text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS {FLUSHES_TABLE}_applied_at ON {FLUSHES_TABLE} (applied_at);
"""

_Total = tuple[str, str, date, str, str]  # org, project, day, product, kind: the key order


class SinkNotReady(ValueError):
    """The database answers but has no usage tables: `usage init` was not run."""


@dataclass(frozen=True, slots=True)
class Applied:
    """What one batch did: entries whose counts were added, and entries skipped as applied
    before (or twice in the batch: a retried flush appends its batch again)."""

    applied: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class DayTotal:
    """One row of the totals table."""

    day: date
    product: str
    kind: str
    jobs: int


def sink_url(url: str) -> str:
    """The URL asyncpg takes; `ValueError` naming the problem unless it is PostgreSQL."""
    scheme = urlsplit(url).scheme
    if scheme not in ("postgresql", "postgres", "postgresql+asyncpg"):
        raise ValueError(
            f"--database-url: the usage sink is PostgreSQL; got a {scheme or 'schemeless'} URL"
        )
    return "postgresql" + url[len(scheme) :]


async def connect(url: str) -> asyncpg.Connection:
    """A connection to the sink."""
    return await asyncpg.connect(sink_url(url))


async def create_tables(connection: asyncpg.Connection) -> None:
    """Create the usage tables if they are missing (`usage init`); safe to run again."""
    async with connection.transaction():
        await connection.execute(SCHEMA_SQL)


async def check_tables(connection: asyncpg.Connection) -> None:
    """Raise `SinkNotReady` unless both tables exist."""
    found = await connection.fetchval(
        "SELECT count(*) FROM pg_tables WHERE tablename = ANY($1::text[])"
        " AND schemaname = ANY(current_schemas(false))",
        [TOTALS_TABLE, FLUSHES_TABLE],
    )
    if found != 2:
        raise SinkNotReady(
            "the database has no usage tables; run `python -m appkit_runtime.manage usage init "
            "--database-url ...` once"
        )


async def apply_entries(connection: asyncpg.Connection, entries: Iterable[UsageEntry]) -> Applied:
    """Add the counts of every entry not applied before, and record their ids: one transaction."""
    entries = list(entries)
    by_flush = {entry.flush_id: entry for entry in entries}
    async with connection.transaction():
        fresh = await record_flushes(connection, sorted(by_flush))
        totals: dict[_Total, int] = {}
        for flush_id in fresh:
            entry = by_flush[flush_id]
            for cell in entry.cells:
                key = (entry.org_id, entry.project_id, cell.day, cell.product, cell.kind)
                totals[key] = totals.get(key, 0) + cell.jobs
        await add_totals(connection, totals)
    return Applied(len(fresh), len(entries) - len(fresh))


async def record_flushes(connection: asyncpg.Connection, flush_ids: list[str]) -> set[str]:
    """Record flush ids; the ones not recorded before. A concurrent transaction recording the
    same id makes this one wait for its outcome, so two workers never both apply it."""
    rows = await connection.fetch(
        f"INSERT INTO {FLUSHES_TABLE} (flush_id) SELECT unnest($1::text[])"
        " ON CONFLICT DO NOTHING RETURNING flush_id",
        flush_ids,
    )
    return {row["flush_id"] for row in rows}


async def add_totals(connection: asyncpg.Connection, totals: dict[_Total, int]) -> None:
    """Add jobs to the totals, in key order so that concurrent workers lock rows alike."""
    if not totals:
        return
    keys = sorted(totals)
    await connection.execute(
        f"INSERT INTO {TOTALS_TABLE} (org_id, project_id, day, product, kind, jobs)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::text[], $5::text[],"
        " $6::bigint[])"
        " ON CONFLICT (org_id, project_id, day, product, kind) DO UPDATE"
        f" SET jobs = {TOTALS_TABLE}.jobs + EXCLUDED.jobs, updated_at = now()",
        *(list(column) for column in zip(*keys, strict=True)),
        [totals[key] for key in keys],
    )


async def prune_flushes(connection: asyncpg.Connection, days: int) -> int:
    """Delete the ids of flushes applied over `days` days ago; how many went. A flush is sent
    again only within a day (its process's retries) or while its entry is pending."""
    status = await connection.execute(
        f"DELETE FROM {FLUSHES_TABLE} WHERE applied_at < now() - make_interval(days => $1)", days
    )
    return int(status.rsplit(" ", 1)[1])


async def read_totals(
    connection: asyncpg.Connection, org_id: str, project_id: str
) -> list[DayTotal]:
    """A project's totals per day, product and kind, oldest day first."""
    rows = await connection.fetch(
        f"SELECT day, product, kind, jobs FROM {TOTALS_TABLE}"
        " WHERE org_id = $1 AND project_id = $2 ORDER BY day, product, kind",
        org_id,
        project_id,
    )
    return [DayTotal(row["day"], row["product"], row["kind"], row["jobs"]) for row in rows]
