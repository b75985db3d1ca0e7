"""Side by side: the protected endpoint against the bare one, fastapi-limiter and slowapi.

Run from the repository root: `python -m bench.hot_path` (`--help` for the flags). Each
variant runs in its own uvicorn process (one worker, own loopback port) over one Redis that
the bench starts; rounds are interleaved (A B C D A B C D ...) and ratios are taken within
a round, so the machine's noise cancels. The servers run on the production stack (uvloop and
httptools) unless `--stack h11` asks for asyncio and h11; `public` is the unprotected route of
the `protected` app, so "protected / public" compares two routes of one service.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Callable

from bench._load import LoadResult, run_python, run_wrk, wrk_path, wrk_version
from bench._monitor import Monitor
from bench._redis_server import BenchRedis
from bench._report import VariantRun, machine_lines, table, target_table, targets
from bench._servers import Server
from bench.apps.common import API_KEY, PUBLIC_URL_PATH, URL_PATH, appkit_environment

VARIANTS = {
    "bare": "bench.apps.bare:app",
    "appkit-open": "bench.apps.appkit_open:app",
    "public": "bench.apps.protected:app",
    "protected": "bench.apps.protected:app",
    "three-depends": "bench.apps.three_depends:app",
    "fastapi-limiter": "bench.apps.fastapi_limiter_app:app",
    "slowapi": "bench.apps.slowapi_app:app",
}
# Not run by default: they split the protected chain's cost (`--variants all`).
ANALYSIS_VARIANTS = {
    "noop-deps": "bench.apps.noop_deps:app",
    "evalsha": "bench.apps.evalsha:app",
    "evalsha-blocking": "bench.apps.evalsha:app",
    "evalsha-appkit-script": "bench.apps.evalsha:app",
    "auth-metrics": "bench.apps.appkit_no_limiter:app",
    "combined": "bench.apps.combined_chain:app",
}
ALL_VARIANTS = VARIANTS | ANALYSIS_VARIANTS
APPKIT_VARIANTS = {
    "appkit-open",
    "public",
    "protected",
    "three-depends",
    "auth-metrics",
    "combined",
}
# The path each variant is loaded on; every other variant serves URL_PATH.
URL_PATHS = {"public": PUBLIC_URL_PATH}
# uvicorn flags of each stack: the production one (uvicorn[standard]) and the pure-Python one.
STACKS = {
    "production": ("uvloop", "httptools"),
    "h11": ("asyncio", "h11"),
}
HEADERS = {"Authorization": f"Bearer {API_KEY}"}
WARMUP_REQUESTS = 1_000

Load = Callable[[str, float], LoadResult]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    names = args.variants or list(VARIANTS)
    if names == ["all"]:
        names = list(ALL_VARIANTS)
    if "bare" not in names:
        raise SystemExit("bench: the variants must include bare, the baseline of every ratio")
    load, tool = _load_function(args.load, args.connections)
    uvicorn_args = [*stack_arguments(args.stack), *args.uvicorn_arg]
    uvicorn_line = _uvicorn_line(args.stack, args.uvicorn_arg)
    header = machine_lines(tool, uvicorn_line)
    print("\n".join(header), flush=True)

    runs = {name: VariantRun(name) for name in names}
    with BenchRedis() as redis_server:
        header.append(f"redis-server {redis_server.version()} on its own port")
        servers = {name: server_for(name, redis_server.url, uvicorn_args) for name in names}
        try:
            for server in servers.values():
                server.start()
            for name, server in servers.items():
                server.wait_ready(url_path(name), HEADERS)
            served = dict.fromkeys(names, 1)
            for name, server in servers.items():
                served[name] += _count_run(server, WARMUP_REQUESTS, args.connections).requests
            rss_start = servers["protected"].rss_kib() if "protected" in servers else None

            for number in range(1, args.rounds + 1):
                for name, server in servers.items():
                    result = load(server.base_url + url_path(name), args.seconds)
                    runs[name].rounds.append(result)
                    served[name] += result.requests
                    print(
                        f"round {number} {name:>16}: {result.rps:8,.0f} req/s  "
                        f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                        f"errors {result.errors}",
                        flush=True,
                    )

            for name, server in servers.items():
                redis_server.wait_idle()
                with Monitor(redis_server.port) as tally:
                    result = _count_run(server, args.count_requests, args.connections)
                runs[name].commands, runs[name].counted_requests = tally, result.requests
                served[name] += result.requests

            rss_end = None
            if rss_start is not None and args.memory_requests:
                protected = servers["protected"]
                rps = runs["protected"].rps
                while served["protected"] < args.memory_requests:
                    remaining = args.memory_requests - served["protected"]
                    seconds = min(60.0, max(1.0, remaining / rps + 0.5))
                    served["protected"] += load(protected.base_url + URL_PATH, seconds).requests
                rss_end = protected.rss_kib()
        finally:
            for server in servers.values():
                server.stop()

    growth = None
    lines = ["", *table(runs, "bare"), ""]
    for name, run in runs.items():
        if run.commands is not None:
            client = dict(run.commands.client.most_common())
            script = dict(run.commands.script.most_common())
            lines.append(
                f"- {name}: client-sent {client}; inside scripts {script} "
                f"(over {run.counted_requests} requests)"
            )
    if rss_start is not None and rss_end is not None:
        growth = abs(rss_end - rss_start) / rss_start * 100
        lines.append(
            f"- protected RSS: {rss_start / 1024:.1f} MiB after {WARMUP_REQUESTS + 1:,} "
            f"requests, {rss_end / 1024:.1f} MiB after {served['protected']:,}"
        )
    lines.append(f"- load average at end: {' '.join(f'{n:.2f}' for n in os.getloadavg())}")
    lines += ["", *target_table(targets(runs, growth))]
    print("\n".join(lines))
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write("\n".join(["```", *header, "```", *lines]) + "\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.hot_path", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--count-requests",
        type=int,
        default=2_000,
        help="requests per variant for the Redis command count",
    )
    parser.add_argument(
        "--memory-requests",
        type=int,
        default=100_000,
        help="protected requests before the second RSS reading (0: skip)",
    )
    parser.add_argument(
        "--variants",
        nargs="*",
        choices=[*ALL_VARIANTS, "all"],
        help=f"default: {' '.join(VARIANTS)}; all adds {' '.join(ANALYSIS_VARIANTS)}",
    )
    parser.add_argument("--load", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--stack",
        choices=list(STACKS),
        default="production",
        help="production: uvloop + httptools (uvicorn[standard]); h11: asyncio + h11",
    )
    parser.add_argument(
        "--uvicorn-arg",
        action="append",
        default=[],
        help="extra uvicorn argument, e.g. --uvicorn-arg=--loop=uvloop",
    )
    parser.add_argument("--markdown", help="also write the report to this file")
    return parser


def _load_function(choice: str, connections: int) -> tuple[Load, str]:
    wrk = wrk_path() if choice != "python" else None
    if choice == "wrk" and wrk is None:
        raise SystemExit("bench: wrk not found (apt-get install wrk)")
    if wrk is not None:
        return (
            lambda url, seconds: run_wrk(wrk, url, HEADERS, seconds, connections),
            f"{wrk_version(wrk)} -t1 -c{connections}",
        )
    return (
        lambda url, seconds: run_python(url, HEADERS, seconds=seconds, connections=connections),
        f"bench's Python client, {connections} connections (wrk not found; its figures "
        "are lower and the client competes for the same cores)",
    )


def _count_run(server: Server, count: int, connections: int) -> LoadResult:
    url = server.base_url + url_path(server.name)
    return run_python(url, HEADERS, count=count, connections=connections)


def url_path(name: str) -> str:
    """The path a variant is loaded on."""
    return URL_PATHS.get(name, URL_PATH)


def stack_arguments(stack: str) -> list[str]:
    """uvicorn's `--loop` and `--http` for `stack`; one clear line when a module is missing."""
    loop, http = STACKS[stack]
    for module in (loop, http):
        if module != "asyncio" and importlib.util.find_spec(module) is None:
            raise SystemExit(
                f"bench: --stack {stack} needs {module} (pip install -e '.[bench]', "
                "which installs uvicorn[standard])"
            )
    return ["--loop", loop, "--http", http]


def server_for(name: str, redis_url: str, uvicorn_args: list[str]) -> Server:
    env = {"BENCH_REDIS_URL": redis_url}
    if name.startswith("evalsha-"):
        env["BENCH_EVALSHA"] = name.removeprefix("evalsha-")
    if name in APPKIT_VARIANTS:
        env |= appkit_environment(redis_url)
    return Server(name, ALL_VARIANTS[name], env=env, uvicorn_args=tuple(uvicorn_args))


def _uvicorn_line(stack: str, extra: list[str]) -> str:
    loop, http = STACKS[stack]
    return f"uvicorn, 1 worker, stack {stack}: --loop {loop} --http {http}, no access log" + (
        f", {' '.join(extra)}" if extra else ""
    )


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"bench took {time.monotonic() - started:.0f} s", file=sys.stderr)
    sys.exit(code)
