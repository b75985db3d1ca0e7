"""Where a protected request's time goes: py-spy samples a uvicorn worker under wrk load.

Run from the repository root: `python -m bench.profile_hot_path [--variant protected]`.
py-spy reads the server's stacks from outside (no hook in the process, so the figures are
not skewed towards code that makes many calls; it pauses the process for each sample, so
stacks are whole, and needs ptrace, e.g. root). Samples are
ranked by component and by function (self time); idle samples, the event loop waiting in
`select()` for sockets, are counted too.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

from bench._load import LoadResult, run_python, run_wrk, wrk_path
from bench._redis_server import BenchRedis
from bench.apps.common import URL_PATH
from bench.hot_path import ALL_VARIANTS, HEADERS, server_for

# First match wins: (component, fragments of "function (file:line)"); specific ones first.
COMPONENTS = (
    ("appkit auth", ("appkit_runtime/auth/", "appkit_runtime/fastapi/authentication.py")),
    ("appkit rate limit", ("appkit_runtime/ratelimit/", "appkit_runtime/fastapi/ratelimit.py")),
    (
        "appkit metrics and usage",
        (
            "appkit_runtime/fastapi/request_metrics.py",
            "appkit_runtime/fastapi/metrics.py",
            "appkit_runtime/usage.py",
            "(prometheus_client/",
        ),
    ),
    ("appkit other", ("appkit_runtime/",)),
    ("redis-py client", ("(redis/", "(hiredis")),
    ("uvicorn and h11 (HTTP)", ("(uvicorn/", "(h11/", "(httptools/")),
    ("fastapi (dependencies, routing, encoding)", ("(fastapi/",)),
    ("starlette (routing, requests, responses)", ("(starlette/",)),
    ("pydantic", ("(pydantic/", "(pydantic_core/")),
    ("opentelemetry context (FastAPI's telemetry hooks)", ("(opentelemetry/",)),
    ("anyio", ("(anyio/",)),
    ("idle: waiting in select()", ("select (selectors.py",)),
    ("asyncio event loop and sockets", ("(asyncio/", "(selectors.py", "(socket.py")),
    ("contextlib (FastAPI's exit stacks)", ("(contextlib.py",)),
)
_LINE_NO = re.compile(r":\d+\)$")


def component(frame: str) -> str:
    for name, fragments in COMPONENTS:
        if any(fragment in frame for fragment in fragments):
            return name
    return f"other: {frame}"


def rank(collapsed: str, top: int) -> str:
    """The event loop's samples: self time (innermost frame) by component and by function,
    and time on the stack (inclusive) by function."""
    by_component: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack.startswith("Thread._bootstrap"):
            continue  # threadpool workers: idle but for the rare key-cache refresh
        frames = [_LINE_NO.sub(")", frame) for frame in stack.split(";")]
        by_component[component(frames[-1])] += int(count)
        by_function[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    total = sum(by_component.values()) or 1
    trunk = {frame for frame, n in inclusive.items() if n > 0.97 * total}
    lines = [f"{total} samples of the event-loop thread", "", "by component (self time):"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in by_component.most_common(top)]
    lines += ["", f"top {top} functions (self time):"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in by_function.most_common(top)]
    lines += ["", f"top {top} functions on the stack (inclusive; the common trunk left out):"]
    ranked = [(frame, n) for frame, n in inclusive.most_common() if frame not in trunk]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in ranked[:top]]
    return "\n".join(lines)


def _load(url: str, seconds: float) -> LoadResult:
    wrk = wrk_path()
    if wrk is None:
        return run_python(url, HEADERS, seconds=seconds, connections=32)
    return run_wrk(wrk, url, HEADERS, seconds, 32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_hot_path", description=__doc__)
    parser.add_argument("--variant", choices=list(ALL_VARIANTS), default="protected")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=499, help="samples per second")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--flamegraph", help="also write py-spy's SVG flame graph here")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise SystemExit("bench: py-spy not found (pip install '.[bench]')")
    with BenchRedis() as redis_server, tempfile.TemporaryDirectory() as scratch:
        server = server_for(args.variant, redis_server.url, [])
        server.start()
        try:
            server.wait_ready(URL_PATH, HEADERS)
            url = server.base_url + URL_PATH
            run_python(url, HEADERS, count=1_000, connections=32)
            assert server.process is not None
            raw = Path(os.environ.get("BENCH_KEEP_STACKS", Path(scratch, "stacks.txt")))
            record = [
                py_spy,
                "record",
                "--pid",
                str(server.process.pid),
                "--rate",
                str(args.rate),
                "--duration",
                str(args.seconds),
                "--idle",
                "--nonblocking",
            ]
            recorder = subprocess.Popen(
                [*record, "--format", "raw", "--output", str(raw)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            svg = None
            if args.flamegraph:
                svg = subprocess.Popen(
                    [*record, "--output", args.flamegraph],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            result: list[LoadResult] = []
            loader = threading.Thread(target=lambda: result.append(_load(url, args.seconds)))
            loader.start()
            loader.join()
            recorder.wait(args.seconds + 30)
            if svg is not None:
                svg.wait(args.seconds + 30)
        finally:
            server.stop()
        print(
            f"{args.variant} under py-spy: {result[0].rps:,.0f} req/s, "
            f"p99 {result[0].p99_ms:.2f} ms, {result[0].errors} errors"
        )
        print(rank(raw.read_text(), args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
