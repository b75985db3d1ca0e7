"""From requests to the billing table: a service under uvicorn with 2 workers, the stream on,
one drain worker; the totals equal the requests answered 200, per project and day."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.billing.conftest import ROOT, drained, run_manage, sink_totals
from tests.conftest import free_port
from tests.reliability.servers import wait_for_port

PROJECTS = 10
REQUESTS_EACH = 200


@pytest.fixture
def service(tmp_path: Path, real_redis: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """tests/reliability/service_app.py under `uvicorn --workers 2`, keys for 10 projects."""
    keys = [
        {
            "key": f"billing-key-{n}-0123456789",
            "org_id": "acme",
            "project_id": f"p{n}",
            "rate_limit": "1000000/600",
        }
        for n in range(PROJECTS)
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        APPKIT_API_KEYS=json.dumps(keys),
        APPKIT_USAGE_STREAM="true",
        APPKIT_USAGE_STREAM_SHARDS="2",
        APPKIT_METRICS_FLUSH_SECONDS="0.2",
        APPKIT_DATABASE_URL=f"sqlite:///{tmp_path}/service.db",
        PYTHONUNBUFFERED="1",
    )
    port = free_port()
    with (tmp_path / "service.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.reliability.service_app:app"]
            + ["--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, seconds=30)
        yield port, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


async def test_totals_equal_the_requests_answered_through_two_workers(
    service: tuple[int, subprocess.Popen[bytes]], sink: str
) -> None:
    port, process = service
    answered: Counter[str] = Counter()
    days = {datetime.now(UTC).date()}
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:

        async def call(n: int, i: int) -> None:
            headers = {"X-API-Key": f"billing-key-{n}-0123456789"}
            reply = await client.get(f"/items/{i}", headers=headers)
            if reply.status_code == 200:
                answered[f"p{n}"] += 1

        calls = [call(n, i) for i in range(REQUESTS_EACH) for n in range(PROJECTS)]
        for start in range(0, len(calls), 200):
            await asyncio.gather(*calls[start : start + 200])
    days.add(datetime.now(UTC).date())  # jobs count on the UTC day they were answered

    # Both workers flush on SIGTERM; then one drain worker empties the stream.
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    done = run_manage(
        "usage", "drain", "--database-url", sink, "--once", APPKIT_USAGE_STREAM_SHARDS="2"
    )
    assert done.returncode == 0, done.stderr
    assert drained(done.stdout)["duplicates"] == 0

    assert sum(answered.values()) == PROJECTS * REQUESTS_EACH
    per_project: Counter[str] = Counter()
    for (org, project, day, product, kind), jobs in (await sink_totals(sink)).items():
        assert (org, day, product, kind) in {("acme", d, "default", "default") for d in days}
        per_project[project] += jobs
    assert per_project == answered
