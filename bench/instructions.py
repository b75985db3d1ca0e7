"""Instructions per request of each variant, counted by valgrind's callgrind, in process.

Run from the repository root: `python -m bench.instructions [--requests 2000]`. Wall-clock
ratios move with whatever else the machine does; instruction counts do not (the same count
twice, loaded or not). Each variant runs twice under callgrind, with 0 and with N requests
after the same warm-up; the difference over N is its work per request: the app's own
(FastAPI, Starlette, appkit), without the server, the socket or the load generator.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from bench._redis_server import BenchRedis
from bench._report import _markdown, machine_lines
from bench.apps.common import appkit_environment
from bench.hot_path import ALL_VARIANTS, APPKIT_VARIANTS, url_path

DEFAULT_VARIANTS = ["bare", "public", "auth-metrics", "protected", "three-depends"]
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--requests", type=int, default=2_000, help="requests counted (N)")
    parser.add_argument(
        "--variants", nargs="+", choices=list(ALL_VARIANTS), default=DEFAULT_VARIANTS
    )
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("bench: valgrind not found (apt-get install valgrind)")
    if "bare" not in args.variants:
        args.variants.insert(0, "bare")
    print("\n".join(machine_lines()[:3]), flush=True)
    with BenchRedis() as redis_server:
        runs = [(name, n) for name in args.variants for n in (0, args.requests)]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            counted = dict(
                zip(runs, pool.map(lambda run: _count(*run, redis_server.url), runs), strict=True)
            )
    per_request = {
        name: (counted[(name, args.requests)] - counted[(name, 0)]) / args.requests
        for name in args.variants
    }
    bare = per_request["bare"]
    rows = [("variant", "instructions / request", "added over bare", "× bare")]
    for name, count in per_request.items():
        rows.append((name, f"{count:,.0f}", f"{count - bare:+,.0f}", f"{bare / count:.2f}"))
    print("\n".join(_markdown(rows)))
    if "public" in per_request:
        public = per_request["public"]
        for name in ("protected", "three-depends"):
            if name in per_request:
                chain = per_request[name] - public
                print(
                    f"- {name} over public (same app): {public / per_request[name]:.3f}; "
                    f"the chain: {chain:,.0f} instructions per call (goal ≤ 40,000)"
                )
    print(f"- callgrind, {args.requests:,} requests after the same warm-up, in process")
    return 0


def _count(name: str, requests: int, redis_url: str) -> int:
    """Instructions callgrind counts for one run of the in-process driver."""
    env = dict(os.environ, BENCH_REDIS_URL=redis_url)
    if name.startswith("evalsha-"):
        env["BENCH_EVALSHA"] = name.removeprefix("evalsha-")
    if name in APPKIT_VARIANTS:
        env |= appkit_environment(redis_url)
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "bench._in_process",
        ALL_VARIANTS[name],
        str(requests),
        url_path(name),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"bench: {name} failed under callgrind: {done.stderr.strip()[-500:]}")
    return int(found.group(1))


if __name__ == "__main__":
    raise SystemExit(main())
