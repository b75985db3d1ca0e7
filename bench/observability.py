"""What logs and traces cost the protected endpoint: JSON access lines, OpenTelemetry spans.

Run from the repository root: `python -m bench.observability` (`--help` for the flags). The
`protected` app runs in one uvicorn process per variant on one Redis the bench starts, its
output going to a file (as a container's log pipe); rounds are interleaved and each ratio is
the median of its per-round ratios to `quiet`. Beside req/s it reads each server's CPU time
(`/proc/<pid>/stat`) per request answered: on a machine shared with other work, throughput
swings with the neighbours while CPU per request barely moves, and a one-worker server at
saturation keeps `cpu(quiet) / cpu(variant)` of its throughput.
The span exporter process a traced server starts is read apart (its own column): its CPU
is off the server's core, not off the machine.

| variant | what differs |
| --- | --- |
| `quiet` | JSON log format, no access line: the baseline |
| `json-access` | one JSON access line per request |
| `traced` | no access line; OpenTelemetry on, exporting to a receiver that answers 200 |
| `traced-json` | both |

`--before DIR` runs the same four variants from another checkout too (`DIR`'s
`appkit_runtime` and `bench`, such as `git worktree add /tmp/before main`), interleaved
with this one's, so a change is measured against what it changes in one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench._load import LoadResult, run_python, run_wrk, wrk_path, wrk_version
from bench._redis_server import BenchRedis
from bench._report import machine_lines
from bench._servers import REPO, Server
from bench.apps.common import API_KEY, URL_PATH, appkit_environment

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
APP = "bench.apps.protected:app"
WARMUP_REQUESTS = 1_000
# Issue 18's floors: throughput kept with the feature on, as a share of `quiet`'s.
FLOORS = {"json-access": 0.9, "traced": 0.7}
VARIANTS = ("quiet", "json-access", "traced", "traced-json")
QUIET = ("quiet", "before quiet")


def quiet_of(name: str) -> str:
    """The baseline a variant is measured against: its own checkout's quiet server."""
    return "before quiet" if name.startswith("before ") else "quiet"


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP collector stand-in: reads each export, answers 200, counts the bytes."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Answer)
        self.received_bytes = 0
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Answer(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        self.server.received_bytes += len(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds(pid: int) -> float:
    """CPU time of process `pid`'s children alive now: the span exporter process, whose
    encoding and sending a traced server moved off its own CPU, but not off the machine's."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                total += cpu_seconds(int(child))
            except FileNotFoundError:  # exited meanwhile
                pass
    return total


def variant_env(name: str, redis_url: str, collector: str) -> dict[str, str]:
    env = appkit_environment(redis_url) | {"APPKIT_LOG_FORMAT": "json"}
    env["APPKIT_ACCESS_LOG"] = "true" if name in ("json-access", "traced-json") else "false"
    if name.startswith("traced"):
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.observability", description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--before", type=Path, help="another checkout whose variants run beside these"
    )
    parser.add_argument(
        "--together",
        action="store_true",
        help="load each variant at the same time as its quiet server, not one after the other",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS[1:],
        default=VARIANTS[1:],
        help="the variants run beside quiet (fewer: shorter rounds, closer in time)",
    )
    args = parser.parse_args(argv)
    chosen = ("quiet", *args.variants)
    if args.together and args.seconds < 2:
        parser.error("--together needs --seconds 2 or more: both loads must overlap")
    if args.before is not None and not (args.before / "appkit_runtime").is_dir():
        parser.error(f"--before {args.before}: no appkit_runtime there")
    wrk = wrk_path()
    tool = f"{wrk_version(wrk)} -t1 -c{args.connections}" if wrk else "bench's Python client"
    print("\n".join(machine_lines(tool, "uvicorn, 1 worker, output to a file")), flush=True)

    def load(url: str) -> LoadResult:
        if wrk is not None:
            return run_wrk(wrk, url, HEADERS, args.seconds, args.connections)
        return run_python(url, HEADERS, seconds=args.seconds, connections=args.connections)

    variants = {name: (name, REPO) for name in chosen}
    if args.before is not None:
        variants |= {f"before {name}": (name, args.before) for name in chosen}
    names = list(variants)
    rounds: dict[str, list[LoadResult]] = {name: [] for name in names}
    cpu_ms: dict[str, list[float]] = {name: [] for name in names}
    child_ms: dict[str, list[float]] = {name: [] for name in names}
    # With --together: each variant's quiet run, measured at the same time as its own.
    beside: dict[str, list[tuple[LoadResult, float]]] = {name: [] for name in names}
    receiver = Receiver()
    logs = Path(tempfile.mkdtemp(prefix="appkit-bench-logs-"))
    with BenchRedis() as redis_server:
        servers = {
            name: Server(
                name.replace(" ", "-"),
                APP,
                env=variant_env(variant, redis_server.url, receiver.endpoint),
                output=logs / f"{name.replace(' ', '-')}.log",
                source=source,
            )
            for name, (variant, source) in variants.items()
        }
        try:
            for server in servers.values():
                server.start()
            for server in servers.values():
                server.wait_ready(URL_PATH, HEADERS)
                run_python(
                    server.base_url + URL_PATH, HEADERS, count=WARMUP_REQUESTS, connections=8
                )

            def measure(number: int, name: str) -> tuple[LoadResult, float]:
                """One load run of `name`'s server; its result and CPU ms a request."""
                server = servers[name]
                assert server.process is not None
                pid = server.process.pid
                before, children_before = cpu_seconds(pid), children_cpu_seconds(pid)
                result = load(server.base_url + URL_PATH)
                spent = cpu_seconds(pid) - before
                children_spent = children_cpu_seconds(pid) - children_before
                cpu = spent * 1000 / max(1, result.requests)
                child_ms[name].append(children_spent * 1000 / max(1, result.requests))
                print(
                    f"round {number} {name:>19}: {result.rps:8,.0f} req/s  "
                    f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                    f"cpu {cpu * 1000:6.1f} us/req  "
                    f"exporter {child_ms[name][-1] * 1000:5.1f} us/req  errors {result.errors}",
                    flush=True,
                )
                return result, cpu

            for number in range(1, args.rounds + 1):
                # Every other round backwards, so no variant always runs first or last.
                order = names if number % 2 else names[::-1]
                for name in order:
                    if not args.together:
                        result, cpu = measure(number, name)
                        rounds[name].append(result)
                        cpu_ms[name].append(cpu)
                    elif name not in QUIET:
                        quiet = quiet_of(name)
                        with ThreadPoolExecutor(max_workers=2) as pool:
                            pair = list(pool.map(measure, (number, number), (quiet, name)))
                        for measured, (result, cpu) in zip((quiet, name), pair, strict=True):
                            rounds[measured].append(result)
                            cpu_ms[measured].append(cpu)
                        beside[name].append(pair[0])
        finally:
            for server in servers.values():
                server.stop()
            receiver.shutdown()

    print()
    print(
        "| variant | req/s | p99 ms | req/s ratio to quiet | CPU µs/request | CPU ratio "
        "| exporter process CPU µs/request |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    ratios, cpu_ratios = {}, {}
    for name in names:
        # Each checkout's variants against its own quiet server: the run beside it with
        # --together, else the same round's.
        quiet = quiet_of(name)
        if beside[name]:
            base_rps = [result.rps for result, _ in beside[name]]
            base_cpu = [cpu for _, cpu in beside[name]]
        else:
            base_rps = [result.rps for result in rounds[quiet]]
            base_cpu = cpu_ms[quiet]
        ratios[name] = statistics.median(
            run.rps / base for run, base in zip(rounds[name], base_rps, strict=True)
        )
        cpu_ratios[name] = statistics.median(
            base / run for run, base in zip(cpu_ms[name], base_cpu, strict=True)
        )
        rps = statistics.median(r.rps for r in rounds[name])
        p99 = statistics.median(r.p99_ms for r in rounds[name])
        cpu = statistics.median(cpu_ms[name]) * 1000
        child = statistics.median(child_ms[name]) * 1000
        print(
            f"| {name} | {rps:,.0f} | {p99:.2f} | {ratios[name]:.3f} | {cpu:.0f} "
            f"| {cpu_ratios[name]:.3f} | {child:.0f} |"
        )
    print()
    for name, floor in FLOORS.items():
        if name not in ratios:
            continue
        for label, found in (("req/s", ratios[name]), ("CPU", cpu_ratios[name])):
            verdict = "PASS" if found >= floor else "FAIL"
            print(f"- {name} / quiet, {label}: {found:.3f} (goal >= {floor}) {verdict}")
    for name in args.variants:
        if f"before {name}" in cpu_ms:
            # What the feature adds to a request's CPU, before and after.
            added = [
                statistics.median(cpu_ms[f"{prefix}{name}"]) - statistics.median(cpu_ms[quiet])
                for prefix, quiet in (("before ", "before quiet"), ("", "quiet"))
            ]
            print(f"- {name} adds {added[0] * 1000:.0f} µs of CPU a request before, ", end="")
            print(f"{added[1] * 1000:.0f} µs after")
    if "json-access" in chosen:
        json_lines = sum(1 for _ in (logs / "json-access.log").open())
        print(f"- json-access wrote {json_lines:,} lines")
    print(f"- the receiver got {receiver.received_bytes:,} bytes of spans")
    print(f"- load average at end: {' '.join(f'{n:.2f}' for n in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
