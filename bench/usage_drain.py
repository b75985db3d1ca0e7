"""Usage entries drained into PostgreSQL per second, and the flush's cost with the stream on.

Run from the repository root: `python -m bench.usage_drain [--projects 500] [--flushes 20]
[--batch 500] --database-url postgresql://postgres@127.0.0.1:5432/postgres`. It starts its own
redis-server, creates a scratch database next to the one named (dropped at the end), times
`--flushes` usage flushes of `--projects` projects with the stream off and on, then one drain
worker (`--once`) moving every entry into the sink, and prints entries per second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from urllib.parse import urlsplit

import asyncpg

from bench._redis_server import BenchRedis


async def _flush_rounds(projects: int, flushes: int) -> float:
    """Seconds per flush of `projects` projects' counts."""
    from appkit_runtime import usage
    from appkit_runtime.tokens import ProjectToken

    tokens = [ProjectToken("bench", f"p{n}") for n in range(projects)]
    spent = 0.0
    for _ in range(flushes):
        for token in tokens:
            usage.count_job(token, None, None, "/bench", "GET")
        started = time.perf_counter()
        assert await usage.flush_usage() is True
        spent += time.perf_counter() - started
    return spent / flushes


async def _run(args: argparse.Namespace, redis_url: str) -> None:
    from appkit_runtime import usage_sink
    from appkit_runtime.redis_pools import close_redis_connections
    from appkit_runtime.settings import get_async_redis_instance, get_settings
    from appkit_runtime.usage_drain import DrainOptions, drain
    from appkit_runtime.usage_stream import stream_keys

    os.environ.update(APPKIT_REDIS_URL=redis_url, APPKIT_USAGE_STREAM_SHARDS=str(args.shards))
    name = f"appkit_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    sink = urlsplit(args.database_url)._replace(path=f"/{name}").geturl()
    try:
        connection = await usage_sink.connect(sink)
        await usage_sink.create_tables(connection)
        await connection.close()
        for stream in ("false", "true"):
            os.environ["APPKIT_USAGE_STREAM"] = stream
            get_settings.cache_clear()
            per_flush = await _flush_rounds(args.projects, args.flushes)
            print(f"flush of {args.projects} projects, stream {stream}: {per_flush * 1000:.1f} ms")
        entries = args.projects * args.flushes
        options = DrainOptions(sink, once=True, batch=args.batch)
        started = time.perf_counter()
        counts = await drain(
            get_async_redis_instance("metrics"), stream_keys(args.shards), options, asyncio.Event()
        )
        took = time.perf_counter() - started
        assert counts.applied == entries, counts
        print(
            f"drain: {entries} entries in {counts.batches} batches of up to {args.batch}: "
            f"{took:.2f} s, {entries / took:,.0f} entries/s"
        )
        await close_redis_connections()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.usage_drain", description=__doc__)
    parser.add_argument("--projects", type=int, default=500)
    parser.add_argument("--flushes", type=int, default=20)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    with BenchRedis() as server:
        asyncio.run(_run(args, server.url))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
