"""What an operator sees when a service refuses to start: one line, no traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MISORDERED_APP = """
from fastapi import Depends
from appkit_runtime.fastapi import ProjectRateLimiter
from appkit_runtime.fastapi.fastapi import get_fastapi_app

app = get_fastapi_app("refused")


@app.get("/reports/{report_id}", dependencies=[Depends(ProjectRateLimiter())])
async def report(report_id: int) -> None: ...
"""


def run_uvicorn(tmp_path: Path, source: str, **environ: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "service.py").write_text(textwrap.dedent(source))
    command = [sys.executable, "-m", "uvicorn", "service:app", "--port", "0"]
    env = {"PATH": "/usr/bin:/bin", "APPKIT_DATABASE_URL": f"sqlite:///{tmp_path}/s.db", **environ}
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_misordered_route_is_refused_in_one_line(tmp_path: Path) -> None:
    finished = run_uvicorn(tmp_path, MISORDERED_APP)
    assert finished.returncode != 0
    assert "Traceback" not in finished.stderr
    assert (
        "appkit: GET /reports/{report_id}: ProjectRateLimiter runs without AuthenticateKey "
        "before it; use dependencies=protected()"
    ) in finished.stderr


@pytest.mark.parametrize(
    ("variable", "value", "line"),
    [
        ("APPKIT_RATELIMIT_DEFAULT", "ten", "appkit: APPKIT_RATELIMIT_DEFAULT: expected N/S"),
        ("APPKIT_REDIS_URL", "http://cache", "appkit: APPKIT_REDIS_URL: unknown URL scheme"),
        (
            "APPKIT_REDIS_URL",
            "redis+cluster://127.0.0.1:7000/3",
            "appkit: APPKIT_REDIS_URL: database 3",
        ),
        (
            "APPKIT_REDIS_URL",
            "redis://127.0.0.1:6379/7x",
            "appkit: APPKIT_REDIS_URL: database '7x'",
        ),
        ("APPKIT_REDIS_URL", "redis://", "appkit: APPKIT_REDIS_URL: names no host"),
        (
            "APPKIT_REDIS_URL",
            "redis://127.0.0.1:6379/0?socket_timeout=abc",
            "appkit: APPKIT_REDIS_URL: Invalid value for 'socket_timeout'",
        ),
        ("OTEL_TRACES_EXPORTER", "zipkin", "appkit: OTEL_TRACES_EXPORTER: unknown exporter"),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "collector:4318",
            "appkit: OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:// or https:// URL",
        ),
    ],
)
def test_a_bad_setting_is_refused_in_one_line(
    tmp_path: Path, variable: str, value: str, line: str
) -> None:
    finished = run_uvicorn(tmp_path, MISORDERED_APP, **{variable: value})
    assert finished.returncode != 0
    assert "Traceback" not in finished.stderr
    assert finished.stderr.strip().splitlines()[-1].startswith(line)
