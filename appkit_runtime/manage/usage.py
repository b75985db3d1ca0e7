"""`usage` commands: create the billing tables, run the drain worker, show a project's usage.

`usage init` creates the sink's tables (idempotent DDL, also printed by `--sql` for teams that
keep their own migrations). The runtime ships no Alembic history of its own: Alembic is not one
of its dependencies, and the sink is often a billing database that the service's own
migrations do not manage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from appkit_runtime import usage_sink
from appkit_runtime.errors import DatabaseUnavailable, StorageError
from appkit_runtime.keys import project_key
from appkit_runtime.log_config import configure_logging
from appkit_runtime.manage.parser import (
    UsageError,
    identifier,
    port_number,
    positive_int,
    whole_number,
)
from appkit_runtime.redis_pools import close_redis_connections
from appkit_runtime.settings import get_async_redis_instance, get_settings
from appkit_runtime.usage import usage_from_hash
from appkit_runtime.usage_drain import (
    DATABASE_ERRORS,
    REDIS_ERRORS,
    DrainOptions,
    default_consumer,
    drain,
)
from appkit_runtime.usage_stream import stream_keys

REDIS_NAME = "metrics"
# How far back `usage show` looks in Redis when APPKIT_USAGE_DAYS_KEPT=0 keeps every day.
DAYS_SHOWN_WHEN_KEPT = 400


def add_parser(commands: Any) -> None:
    """Add `usage init|drain|show`."""
    parser = commands.add_parser("usage", help="usage for billing: the stream's drain worker")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    init = actions.add_parser("init", help="create the usage tables in the sink database")
    _database_option(init)
    init.add_argument("--sql", action="store_true", help="print the DDL instead of running it")
    init.set_defaults(run=run_init)

    worker = actions.add_parser(
        "drain", help="move usage from the Redis stream into PostgreSQL, exactly once"
    )
    _database_option(worker)
    worker.add_argument("--group", default="billing", type=identifier, help="consumer group")
    worker.add_argument(
        "--consumer", type=identifier, help="this worker's name (default: <host>-<pid>)"
    )
    worker.add_argument("--batch", type=positive_int, default=500, help="entries a transaction")
    worker.add_argument("--once", action="store_true", help="drain what is there, then exit")
    worker.add_argument(
        "--claim-idle",
        type=positive_int,
        default=60,
        help="seconds before another consumer's pending entry is taken over",
    )
    worker.add_argument(
        "--keep-flush-days",
        type=whole_number,
        default=7,
        help="days applied flush ids are kept to skip redelivered entries (0: forever)",
    )
    worker.add_argument("--metrics-port", type=port_number, help="serve Prometheus metrics")
    worker.add_argument("--metrics-host", default="0.0.0.0", help="address for --metrics-port")
    worker.set_defaults(run=run_drain)

    show = actions.add_parser("show", help="a project's usage per day")
    show.add_argument("--org-id", required=True, type=identifier)
    show.add_argument("--project-id", required=True, type=identifier)
    show.add_argument(
        "--database-url", help="read the sink's totals (default: the Redis usage hashes)"
    )
    show.add_argument("--json", action="store_true", help="print JSON for scripts")
    show.set_defaults(run=run_show)


def _database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="the PostgreSQL sink (default: APPKIT_DATABASE_URL_USAGE, else APPKIT_DATABASE_URL)",
    )


def _sink_url(args: argparse.Namespace) -> str:
    if args.database_url:
        return args.database_url
    settings = get_settings()
    url = settings.database_url_for("usage")[0] or settings.database_url
    if url is None:
        raise UsageError(
            "--database-url: not given, and neither APPKIT_DATABASE_URL_USAGE nor "
            "APPKIT_DATABASE_URL is set"
        )
    return url


async def _connect(url: str) -> asyncpg.Connection:
    try:
        return await usage_sink.connect(url)
    except DATABASE_ERRORS as error:
        raise DatabaseUnavailable(f"the usage database does not answer: {error}") from None


async def run_init(args: argparse.Namespace) -> int:
    """Create the tables (or print their DDL)."""
    if args.sql:
        print(usage_sink.SCHEMA_SQL, end="")
        return 0
    connection = await _connect(_sink_url(args))
    try:
        await usage_sink.create_tables(connection)
    finally:
        await connection.close()
    print(f"usage tables ready: {usage_sink.TOTALS_TABLE}, {usage_sink.FLUSHES_TABLE}")
    return 0


async def run_drain(args: argparse.Namespace) -> int:
    """Run the worker until SIGTERM or SIGINT (or, with --once, until nothing is left)."""
    settings = get_settings()
    # The service's log format and level (JSON on stdout in production), so one collector
    # reads both; under APPKIT_ENV=test without a format, plain lines on stderr.
    configure_logging(settings)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
    options = DrainOptions(
        database_url=usage_sink.sink_url(_sink_url(args)),
        group=args.group,
        consumer=args.consumer or default_consumer(),
        batch=args.batch,
        once=args.once,
        claim_idle=float(args.claim_idle),
        keep_flush_days=args.keep_flush_days,
    )
    redis = _service_redis()
    # Fail at once, with one line, on a sink without tables or a database that is down.
    connection = await _connect(options.database_url)
    try:
        await usage_sink.check_tables(connection)
    finally:
        await connection.close()
    if args.metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(args.metrics_port, args.metrics_host)
        except OSError as error:
            raise UsageError(f"--metrics-port {args.metrics_port}: {error.strerror}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        counts = await drain(redis, stream_keys(settings.usage_stream_shards), options, stop)
    except REDIS_ERRORS as error:
        raise StorageError(f"the usage stream's Redis failed: {error}") from None
    except DATABASE_ERRORS as error:
        raise DatabaseUnavailable(f"the usage database failed: {error}") from None
    finally:
        await close_redis_connections()
    print(
        f"usage drain {options.group}/{options.consumer}: read {counts.read}, applied "
        f"{counts.applied}, duplicates {counts.duplicates}, lost {counts.lost}, "
        f"in {counts.batches} batches"
    )
    return 0


async def run_show(args: argparse.Namespace) -> int:
    """Print a project's totals per day, from the sink or from the Redis hashes."""
    if args.database_url:
        connection = await _connect(args.database_url)
        try:
            await usage_sink.check_tables(connection)
            rows = await usage_sink.read_totals(connection, args.org_id, args.project_id)
        finally:
            await connection.close()
        totals = [(r.day.isoformat(), r.product, r.kind, r.jobs) for r in rows]
    else:
        try:
            totals = await _totals_in_redis(_service_redis(), args.org_id, args.project_id)
        except REDIS_ERRORS as error:
            raise StorageError(f"Redis does not answer: {error}") from None
        finally:
            await close_redis_connections()
    if args.json:
        keys = ("day", "product", "kind", "jobs")
        print(json.dumps([dict(zip(keys, row, strict=True)) for row in totals]))
    elif not totals:
        print(f"no usage for project {args.org_id}/{args.project_id}")
    else:
        print("\n".join(f"{day}  {product}  {kind}  {jobs}" for day, product, kind, jobs in totals))
    return 0


def _service_redis() -> Any:
    url, variable = get_settings().redis_url_for(REDIS_NAME)
    if url.startswith("memory://"):
        raise UsageError(
            f"{variable} is memory://, a per-process emulation the service cannot see; "
            "point it at the service's Redis"
        )
    return get_async_redis_instance(REDIS_NAME)


async def _totals_in_redis(redis: Any, org_id: str, project_id: str) -> list[tuple[Any, ...]]:
    """The day hashes Redis keeps (`APPKIT_USAGE_DAYS_KEPT` days back, 400 when it keeps all),
    read in one pipeline: they share the project's slot, and no keyspace SCAN is needed."""
    today = datetime.now(UTC).date()
    back = get_settings().usage_days_kept or DAYS_SHOWN_WHEN_KEPT
    days = [today - timedelta(days=n) for n in range(back, -1, -1)]
    async with redis.pipeline(transaction=False) as pipe:
        for day in days:
            pipe.hgetall(project_key("usage", org_id, project_id, "day", day.isoformat()))
        hashes = await pipe.execute()
    totals = []
    for day, fields in zip(days, hashes, strict=True):
        for product, kinds in sorted(usage_from_hash(fields).items()):
            totals += [(day.isoformat(), product, kind, n) for kind, n in sorted(kinds.items())]
    return totals
