"""Static keys at scale and a random-key flood (issue 22): `python -m bench.static_keys`.

Scaling: one production server per key-set size (1, 10k, 100k hashed keys in a file):
settings-and-table build time, RSS over the one-key server, 32 concurrent first requests
with distinct keys, and the server's CPU per unknown-key request.
Flood: random keys from another process (at full speed, or paced) while one valid key is
polled: its p99 alone and during the flood, side by side in one run, the server's RSS, the
load average and the Redis commands the flood made; against the `static` backend (one
hashed key in a file) and the `http` backend (a stand-in authority that counts calls and
the most in flight).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import json
import multiprocessing
import os
import secrets
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

from bench._load import _percentile, _read_response
from bench._redis_server import BenchRedis
from bench._report import machine_lines
from bench._servers import Server
from bench.apps.common import API_KEY, MAX_REQUESTS, URL_PATH, WINDOW_SECONDS

SIZES = (1, 10_000, 100_000)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _request(key: str) -> bytes:
    return f"GET {URL_PATH} HTTP/1.1\r\nHost: bench\r\nX-API-Key: {key}\r\n\r\n".encode()


def write_keys(directory: Path, count: int) -> Path:
    """A JSON file of `count` hashed keys: the bench key and `scale-<n>` keys."""
    keys = [API_KEY, *(f"scale-{n}" for n in range(count - 1))]
    entries = [
        {
            "key_sha256": hashlib.sha256(key.encode()).hexdigest(),
            "org_id": f"org-{n % 1000}",
            "project_id": f"project-{n}",
            "key_id": f"key-{n}",
            "rate_limit": f"{MAX_REQUESTS}/{WINDOW_SECONDS}",
        }
        for n, key in enumerate(keys)
    ]
    path = directory / f"keys-{count}.json"
    path.write_text(json.dumps(entries))
    return path


def server_env(redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "APPKIT_ENV": "production",
        "APPKIT_SERVICE_NAME": "bench",
        "APPKIT_REDIS_URL": redis_url,
        "APPKIT_REDIS_PREFIX": "bench",
        **extra,
    }


def uvicorn_args() -> list[str]:
    """uvloop and httptools when installed, as the production command runs."""
    args = []
    if importlib.util.find_spec("uvloop"):
        args.append("--loop=uvloop")
    if importlib.util.find_spec("httptools"):
        args.append("--http=httptools")
    return args


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def _hammer(
    port: int, keys: list[str] | None, seconds: float, connections: int, rate: float = 0
) -> dict:
    """Requests over `connections` keep-alive sockets for `seconds`: the given keys once each
    (first requests), or a fresh random key per request when `keys` is None; at full speed,
    or paced to about `rate` requests a second in all when `rate` is given."""
    interval = connections / rate if rate else 0.0
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    queue = list(keys) if keys is not None else None

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                if queue is not None:
                    if not queue:
                        return
                    key = queue.pop()
                else:
                    key = "rnd-" + secrets.token_hex(12)
                sent = time.perf_counter()
                writer.write(_request(key))
                statuses[await _read_response(reader)] += 1
                latencies.append(time.perf_counter() - sent)
                if interval:
                    await asyncio.sleep(max(0.0, sent + interval - time.perf_counter()))
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    latencies.sort()
    return {
        "statuses": dict(statuses),
        "requests": len(latencies),
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "max_ms": (latencies[-1] if latencies else 0) * 1000,
    }


async def _poll(port: int, key: str, seconds: float) -> list[float]:
    """One valid-key request at a time on one connection; latencies in ms, sorted."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies = []
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            writer.write(_request(key))
            status = await _read_response(reader)
            if status != 200:
                raise SystemExit(f"bench: the valid key got {status}")
            latencies.append((time.perf_counter() - sent) * 1000)
            await asyncio.sleep(0.002)  # a steady poll, not a second flood
    finally:
        writer.close()
    return sorted(latencies)


def _flood_process(
    port: int, seconds: float, connections: int, rate: float, out: multiprocessing.Queue
) -> None:
    out.put(asyncio.run(_hammer(port, None, seconds, connections, rate)))


def scaling(redis_url: str, directory: Path, miss_seconds: float) -> list[dict]:
    from appkit_runtime.settings import load_settings

    rows = []
    base_rss = None
    for size in SIZES:
        path = write_keys(directory, size)
        started = time.perf_counter()
        load_settings(api_keys=str(path), env="development")
        build = time.perf_counter() - started
        server = Server(
            f"keys-{size}",
            "bench.apps.protected:app",
            env=server_env(redis_url, APPKIT_API_KEYS=str(path)),
            uvicorn_args=tuple(uvicorn_args()),
        )
        started = time.perf_counter()
        server.start()
        try:
            server.wait_ready("/healthz", {}, timeout=120)
            ready = time.perf_counter() - started
            rss = server.rss_kib() / 1024
            base_rss = rss if base_rss is None else base_rss
            firsts = [f"scale-{n}" for n in range(min(32, size - 1))] or [API_KEY] * 32
            first = asyncio.run(_hammer(server.port, firsts, 30, 32))
            cpu_before = cpu_seconds(server.process.pid)  # type: ignore[union-attr]
            misses = asyncio.run(_hammer(server.port, None, miss_seconds, 16))
            cpu = cpu_seconds(server.process.pid) - cpu_before  # type: ignore[union-attr]
        finally:
            server.stop()
        rows.append(
            {
                "keys": size,
                "build_s": build,
                "ready_s": ready,
                "rss_mb": rss,
                "rss_growth_mb": rss - base_rss,
                "first_statuses": first["statuses"],
                "first_max_ms": first["max_ms"],
                "miss_rps": misses["requests"] / miss_seconds,
                "miss_statuses": misses["statuses"],
                "miss_cpu_ms": cpu * 1000 / max(1, misses["requests"]),
            }
        )
        print(rows[-1], flush=True)
    return rows


def _redis_calls(redis: BenchRedis) -> int:
    """Commands the bench's own Redis has run so far (INFO commandstats, every command)."""
    return sum(stat["calls"] for stat in redis.client.info("commandstats").values())


def flood(
    redis: BenchRedis,
    directory: Path,
    backend: str,
    seconds: float,
    connections: int,
    rate: float,
    bound: int,
) -> dict:
    authority = None
    if backend == "http":
        authority = Server(
            "authority",
            "bench.apps.key_authority:app",
            env={"BENCH_VALID_KEY": API_KEY},
            uvicorn_args=tuple(uvicorn_args()),
        )
        authority.start()
        authority.wait_ready("/stats", {})
        env = server_env(
            redis.url,
            APPKIT_AUTH_BACKEND="http",
            APPKIT_AUTH_URL=f"{authority.base_url}/",
            APPKIT_AUTH_MAX_CONCURRENT=str(bound),
        )
    else:
        keys = write_keys(directory, 1)
        env = server_env(redis.url, APPKIT_AUTH_BACKEND="static", APPKIT_API_KEYS=str(keys))
    server = Server(
        f"flooded-{backend}",
        "bench.apps.protected:app",
        env=env,
        uvicorn_args=tuple(uvicorn_args()),
    )
    server.start()
    try:
        server.wait_ready(URL_PATH, {"X-API-Key": API_KEY})
        calls_before = _redis_calls(redis)
        quiet = asyncio.run(_poll(server.port, API_KEY, seconds / 2))
        # What one valid request costs in Redis (the limiter's script and the commands it
        # runs, the usage flushes): measured alone, then taken out of the flood's count.
        per_valid = (_redis_calls(redis) - calls_before) / len(quiet)
        rss_before = server.rss_kib() / 1024
        out: multiprocessing.Queue = multiprocessing.Queue()
        flooder = multiprocessing.Process(
            target=_flood_process, args=(server.port, seconds, connections, rate, out)
        )
        load_before = os.getloadavg()[0]
        calls_before = _redis_calls(redis)
        cpu_before = cpu_seconds(server.process.pid)  # type: ignore[union-attr]
        flooder.start()
        rss: list[float] = []

        async def poll_and_sample() -> list[float]:
            async def sample() -> None:
                while flooder.is_alive():
                    rss.append(server.rss_kib() / 1024)
                    await asyncio.sleep(1.0)

            polled, _ = await asyncio.gather(_poll(server.port, API_KEY, seconds), sample())
            return polled

        loud = asyncio.run(poll_and_sample())
        flooded = out.get(timeout=60)
        flooder.join()
        cpu = cpu_seconds(server.process.pid) - cpu_before  # type: ignore[union-attr]
        redis_calls = _redis_calls(redis) - calls_before
        load_after = os.getloadavg()[0]
        stats = {"calls": 0, "max_in_flight": 0}
        if authority is not None:
            with urllib.request.urlopen(f"{authority.base_url}/stats") as response:
                stats = json.load(response)
    finally:
        server.stop()
        if authority is not None:
            authority.stop()
    flood_redis = max(0.0, redis_calls - per_valid * len(loud))
    result = {
        "backend": backend,
        "valid_p50_quiet_ms": _percentile(quiet, 0.5),
        "valid_p99_quiet_ms": _percentile(quiet, 0.99),
        "valid_p50_flood_ms": _percentile(loud, 0.5),
        "valid_p99_flood_ms": _percentile(loud, 0.99),
        "valid_requests_flood": len(loud),
        "flood_rps": flooded["requests"] / seconds,
        "server_cpu_share": cpu / seconds,
        "server_cpu_per_flood_request_ms": cpu * 1000 / max(1, flooded["requests"]),
        "flood_statuses": flooded["statuses"],
        "redis_calls": redis_calls,
        "redis_calls_per_flood_request": flood_redis / max(1, flooded["requests"]),
        "load_average": (load_before, load_after),
        "rss_before_mb": rss_before,
        "rss_each_second_mb": [round(x, 1) for x in rss],
        "authority_calls": stats["calls"],
        "authority_max_in_flight": stats["max_in_flight"],
        "bound": bound,
    }
    print(result, flush=True)
    return result


def report(rows: list[dict], floods: list[dict], args: argparse.Namespace) -> list[str]:
    loop = " + ".join(a.split("=")[1] for a in uvicorn_args()) or "asyncio + h11"
    lines = [
        "```",
        *machine_lines("bench's own asyncio client", f"uvicorn, 1 worker, {loop}"),
        "```",
    ]
    if rows:
        lines += [
            "",
            "| keys | settings + table build s | start to /healthz s | RSS MB | RSS over 1 key MB "
            "| 32 first requests | slowest first ms | misses/s | server CPU per miss ms |",
            "| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
        ]
        for row in rows:
            lines.append(
                f"| {row['keys']:,} | {row['build_s']:.2f} | {row['ready_s']:.2f} "
                f"| {row['rss_mb']:.1f} | {row['rss_growth_mb']:.1f} | {row['first_statuses']} "
                f"| {row['first_max_ms']:.1f} | {row['miss_rps']:,.0f} | {row['miss_cpu_ms']:.3f} |"
            )
        one, most = rows[0], rows[-1]
        lines += [
            "",
            f"Miss cost, {most['keys']:,} keys / 1 key: "
            f"{most['miss_cpu_ms'] / one['miss_cpu_ms']:.2f} (goal within 10 %).",
        ]
    for flooded in floods:
        lines += _flood_lines(flooded, args)
    return lines


def _flood_lines(flooded: dict, args: argparse.Namespace) -> list[str]:
    quiet_p50, quiet_p99 = flooded["valid_p50_quiet_ms"], flooded["valid_p99_quiet_ms"]
    loud_p50, loud_p99 = flooded["valid_p50_flood_ms"], flooded["valid_p99_flood_ms"]
    backend = flooded["backend"]
    load = " → ".join(f"{n:.2f}" for n in flooded["load_average"])
    lines = [
        "",
        f"Flood, `{backend}` backend: {args.flood_seconds:.0f} s of random keys over "
        f"{args.flood_connections} connections (another process), "
        + (f"paced to {args.flood_rate:,.0f} req/s" if args.flood_rate else "at full speed")
        + (f", APPKIT_AUTH_MAX_CONCURRENT={flooded['bound']}." if backend == "http" else "."),
        "",
        "| valid key | p50 ms | p99 ms |",
        "| --- | ---: | ---: |",
        f"| alone | {quiet_p50:.2f} | {quiet_p99:.2f} |",
        f"| during the flood | {loud_p50:.2f} | {loud_p99:.2f} |",
        "",
        f"- p99 during / alone: {loud_p99 / quiet_p99:.2f} (goal ≤ 3); "
        f"1-minute load average {load} over the flood",
        f"- flood: {flooded['flood_rps']:,.0f} req/s, answers {flooded['flood_statuses']}; "
        f"the server got {flooded['server_cpu_share']:.0%} of a core, "
        f"{flooded['server_cpu_per_flood_request_ms']:.3f} ms of CPU per flood request",
        f"- Redis commands per flood request: {flooded['redis_calls_per_flood_request']:.2f}",
        f"- server RSS before: {flooded['rss_before_mb']:.1f} MB; each second of the flood: "
        f"{flooded['rss_each_second_mb']}",
    ]
    if backend == "http":
        lines.append(
            f"- authority: {flooded['authority_calls']:,} calls, at most "
            f"{flooded['authority_max_in_flight']} in flight (bound {flooded['bound']})"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miss-seconds", type=float, default=4.0)
    parser.add_argument("--flood-seconds", type=float, default=12.0)
    parser.add_argument("--flood-connections", type=int, default=64)
    parser.add_argument(
        "--flood-rate", type=float, default=0, help="req/s in all (default: full speed)"
    )
    parser.add_argument("--bound", type=int, default=8, help="APPKIT_AUTH_MAX_CONCURRENT")
    parser.add_argument(
        "--backend",
        choices=("static", "http", "both"),
        default="both",
        help="the key authority of the flood runs",
    )
    parser.add_argument("--flood-only", action="store_true", help="skip the key-set scaling")
    parser.add_argument("--markdown", type=Path, help="also write the report to this file")
    args = parser.parse_args()
    backends = ("static", "http") if args.backend == "both" else (args.backend,)
    with BenchRedis() as redis, tempfile.TemporaryDirectory(prefix="appkit-bench-keys-") as tmp:
        rows = [] if args.flood_only else scaling(redis.url, Path(tmp), args.miss_seconds)
        floods = []
        for backend in backends:
            redis.client.flushall()
            floods.append(
                flood(
                    redis,
                    Path(tmp),
                    backend,
                    args.flood_seconds,
                    args.flood_connections,
                    args.flood_rate,
                    args.bound,
                )
            )
    text = "\n".join(report(rows, floods, args))
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
