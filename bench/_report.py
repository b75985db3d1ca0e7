"""The run's table and the issue's targets, each with its figure and pass or fail."""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

from bench._load import LoadResult
from bench._monitor import CommandTally

PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "redis",
    "hiredis",
    "uvloop",
    "httptools",
    "fastapi-limiter",
    "pyrate-limiter",
    "slowapi",
    "limits",
)


@dataclass
class VariantRun:
    """Everything measured for one variant."""

    name: str
    rounds: list[LoadResult] = field(default_factory=list)
    commands: CommandTally | None = None
    counted_requests: int = 0

    @property
    def rps(self) -> float:
        return statistics.median(r.rps for r in self.rounds)

    @property
    def p50(self) -> float:
        return statistics.median(r.p50_ms for r in self.rounds)

    @property
    def p99(self) -> float:
        return statistics.median(r.p99_ms for r in self.rounds)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.rounds)

    def per_request(self, side: str) -> float | None:
        if self.commands is None or not self.counted_requests:
            return None
        return sum(getattr(self.commands, side).values()) / self.counted_requests


def round_ratio(a: VariantRun, b: VariantRun) -> float:
    """Median over rounds of a's req/s over b's in the same round: noise in both cancels."""
    return statistics.median(x.rps / y.rps for x, y in zip(a.rounds, b.rounds, strict=True))


def round_difference_p99(a: VariantRun, b: VariantRun) -> float:
    return statistics.median(x.p99_ms - y.p99_ms for x, y in zip(a.rounds, b.rounds, strict=True))


def machine_lines(load_tool: str = "", uvicorn_line: str = "") -> list[str]:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            continue
    load = " ".join(f"{n:.2f}" for n in os.getloadavg())
    lines = [
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}",
        f"load average at start: {load}",
        f"python {platform.python_version()}; " + ", ".join(versions),
        f"server: {uvicorn_line}",
        f"load generator: {load_tool}",
    ]
    return lines


def table(runs: dict[str, VariantRun], baseline: str) -> list[str]:
    base = runs[baseline]
    header = ("variant", "req/s", "p50 ms", "p99 ms", "× bare", "cmds/req", "in-script", "errors")
    rows = [header]
    for run in runs.values():
        client, script = run.per_request("client"), run.per_request("script")
        rows.append(
            (
                run.name,
                f"{run.rps:,.0f}",
                f"{run.p50:.2f}",
                f"{run.p99:.2f}",
                f"{round_ratio(run, base):.2f}",
                "-" if client is None else f"{client:.3f}",
                "-" if script is None else f"{script:.3f}",
                str(run.errors),
            )
        )
    return _markdown(rows)


def _markdown(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return lines


@dataclass(frozen=True)
class Target:
    """One of the issue's targets with the figure this run measured."""

    name: str
    figure: float | None
    bound: float
    at_least: bool
    unit: str = ""

    @property
    def verdict(self) -> str:
        if self.figure is None:
            return "not measured"
        met = self.figure >= self.bound if self.at_least else self.figure <= self.bound
        return "PASS" if met else "FAIL"

    def row(self) -> tuple[str, ...]:
        figure = "-" if self.figure is None else f"{self.figure:.3g}{self.unit}"
        bound = f"{'≥' if self.at_least else '≤'} {self.bound:g}{self.unit}"
        return (self.name, figure, bound, self.verdict)


def targets(
    runs: dict[str, VariantRun], rss_growth: float | None, protected: str = "protected"
) -> list[Target]:
    run = runs.get(protected)
    if run is None:
        return []
    found: list[Target] = []
    # Issue 17: the protected route against the public route of the same app.
    if "public" in runs:
        found.append(
            Target("protected / public req/s", round_ratio(run, runs["public"]), 0.85, True)
        )
    if "bare" in runs:
        found.append(Target("protected / bare req/s", round_ratio(run, runs["bare"]), 0.75, True))
    for rival in ("fastapi-limiter", "slowapi"):
        if rival in runs:
            found.append(
                Target(f"protected / {rival} req/s", round_ratio(run, runs[rival]), 2.5, True)
            )
    found.append(
        Target("Redis commands per protected request", run.per_request("client"), 0.01, False)
    )
    if "public" in runs:
        added = round_difference_p99(run, runs["public"])
        found.append(Target("p99 added over public", added, 1.0, False, " ms"))
    if "bare" in runs:
        added = round_difference_p99(run, runs["bare"])
        found.append(Target("p99 added over bare", added, 1.0, False, " ms"))
    found.append(Target("RSS growth, 1k → 100k protected requests", rss_growth, 10.0, False, " %"))
    return found


def target_table(found: list[Target]) -> list[str]:
    return _markdown([("target", "measured", "goal", "result"), *(t.row() for t in found)])
