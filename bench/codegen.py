"""Wall time of code generation and start-up: `copier copy`, `copier update` of an unedited
service, `appkit-scaffold add-endpoint`, and process start to `/readyz` 200.

Run from the repository root: `python -m bench.codegen [--runs 5]`. Each figure is the
median of several runs of the command a user types, process start-up included. The template
is this repository's committed HEAD, cloned once (so edits in progress are left out).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bench._redis_server import free_port
from bench._report import Target, _markdown, machine_lines, target_table

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
COPY = ["copy", "--trust", "--defaults", "--vcs-ref", "HEAD", "--quiet"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.codegen", description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    args = parser.parse_args(argv)
    copier = shutil.which("copier", path=str(BIN)) or shutil.which("copier")
    scaffold = shutil.which("appkit-scaffold", path=str(BIN)) or shutil.which("appkit-scaffold")
    if importlib.util.find_spec("scaffold.cli") is None:
        scaffold = None  # the command is declared but its module is not written yet
    if copier is None:
        raise SystemExit("bench: copier not found (pip install '.[scaffold]')")
    if not (REPO / "copier.yml").exists():
        raise SystemExit("bench: no copier.yml in the repository: nothing to measure")
    print("\n".join(machine_lines()[:3]), flush=True)
    figures: dict[str, list[float]] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="appkit-bench-codegen-") as scratch:
        template = Path(scratch, "template")
        subprocess.run(["git", "clone", "-q", str(REPO), str(template)], check=True)
        head = subprocess.run(
            ["git", "-C", str(template), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        notes.append(f"template: appkit at {head}; copier {_version(copier)}")
        for run in range(args.runs):
            service = Path(scratch, f"service-{run}")
            figures.setdefault("copier copy", []).append(
                _timed([copier, *COPY, str(template), str(service)])
            )
            _commit_all(service)
            figures.setdefault("copier update (unedited service)", []).append(
                _timed(
                    [copier, "update", "--trust", "--defaults", "--vcs-ref", "HEAD", "--quiet"],
                    cwd=service,
                )
            )
            if scaffold is not None:
                figures.setdefault("add-endpoint", []).append(
                    _timed([scaffold, "add-endpoint", f"widgets{run}"], cwd=service)
                )
            figures.setdefault("start to /readyz 200", []).append(_start_to_ready(service))
        if scaffold is None:
            notes.append("add-endpoint: not measured, `appkit-scaffold` is not installed yet")
    rows = [("step", "median s", "runs (s)")]
    for name, times in figures.items():
        rows.append((name, f"{statistics.median(times):.3f}", " ".join(f"{t:.2f}" for t in times)))
    print("\n".join(_markdown(rows)))
    notes.append(f"load average at end: {' '.join(f'{n:.2f}' for n in os.getloadavg())}")
    print("\n".join(f"- {note}" for note in notes))
    goals = {
        "copier copy": 1.0,
        "copier update (unedited service)": 2.5,
        "add-endpoint": 0.5,
        "start to /readyz 200": 1.5,
    }
    found = [
        Target(
            f"{name}",
            statistics.median(figures[name]) if name in figures else None,
            goal,
            False,
            " s",
        )
        for name, goal in goals.items()
    ]
    print("\n".join(["", *target_table(found)]))
    return 0


def _timed(command: list[str], cwd: Path | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _commit_all(service: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=service, check=True)
    subprocess.run(["git", "add", "-A"], cwd=service, check=True)
    subprocess.run([*GIT, "commit", "-qm", "generated"], cwd=service, check=True)


def _start_to_ready(service: Path) -> float:
    """Seconds from spawning uvicorn on the service (embedded defaults) to `/readyz` 200."""
    package = next(p.name for p in (service / "src").iterdir() if (p / "main.py").exists())
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPKIT_")}
    env["PYTHONPATH"] = str(service / "src")
    env_file = service / ".env"
    shutil.copy(service / ".env.example", env_file)
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            f"{package}.main:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=service,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return _poll(f"http://127.0.0.1:{port}/readyz", process, started)
    finally:
        process.terminate()
        process.wait(15)
        env_file.unlink()


def _poll(
    url: str,
    process: subprocess.Popen[bytes],
    started: float,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    while clock() - started < 30:
        if process.poll() is not None:
            raise SystemExit(f"bench: the generated service exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return clock() - started
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.005)
    raise SystemExit("bench: the generated service was not ready in 30 s")


def _version(copier: str) -> str:
    out = subprocess.run([copier, "--version"], capture_output=True, text=True).stdout
    return out.strip().split()[-1] if out.strip() else "?"


if __name__ == "__main__":
    raise SystemExit(main())
