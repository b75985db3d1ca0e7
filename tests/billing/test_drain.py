"""The drain worker: every stream entry reaches the PostgreSQL totals exactly once, whatever
point it is killed at, however many workers share the group."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import uuid4

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY

from appkit_runtime import usage
from appkit_runtime.settings import get_async_redis_instance, get_settings
from appkit_runtime.tokens import ProjectToken
from appkit_runtime.usage_drain import DrainOptions, drain
from appkit_runtime.usage_stream import stream_keys
from tests.billing.conftest import (
    DrainProcess,
    Totals,
    applied_flushes,
    drained,
    run_manage,
    sink_totals,
    wait_until_drained,
)
from tests.conftest import free_port
from tests.reliability.servers import wait_for_port

pytestmark = pytest.mark.usefixtures("stream_on")


async def produce(projects: int, rounds: int, expected: Totals | None = None) -> Totals:
    """`rounds` flushes of jobs for `projects` projects (project n gets n + 1 jobs a round):
    one stream entry per project and round. Returns the totals the sink must end with."""
    expected = {} if expected is None else expected
    for _ in range(rounds):
        for n in range(projects):
            today = datetime.now(UTC).date()
            token = ProjectToken("acme", f"project-{n}", product="geo")
            for _ in range(n + 1):
                usage.count_job(token, None, "lookup", "/geo/{place}", "GET")
            key = ("acme", f"project-{n}", today, "geo", "lookup")
            expected[key] = expected.get(key, 0) + n + 1
        assert await usage.flush_usage() is True
    return expected


def keys() -> list[str]:
    return stream_keys(get_settings().usage_stream_shards)


async def test_every_entry_is_counted_once_and_a_repeated_entry_is_skipped(sink: str) -> None:
    expected = await produce(projects=10, rounds=3)
    options = DrainOptions(sink, once=True, batch=7)
    redis = get_async_redis_instance("metrics")
    counts = await drain(redis, keys(), options, asyncio.Event())
    assert (counts.read, counts.applied, counts.duplicates) == (30, 30, 0)
    assert await sink_totals(sink) == expected

    # A flush retried after a lost reply appends its batch again, with the same flush id.
    entry_id, fields = (await redis.xrange(keys()[0], count=1))[0]
    await redis.xadd(keys()[0], fields)
    again = await drain(redis, keys(), options, asyncio.Event())
    assert (again.read, again.applied, again.duplicates) == (1, 0, 1)
    assert await sink_totals(sink) == expected
    assert await applied_flushes(sink) == 30


@pytest.mark.parametrize("fault", ["before-commit", "after-commit"])
@pytest.mark.parametrize("restart", ["same consumer", "another consumer claims"])
async def test_a_worker_killed_in_a_batch_then_restarted_counts_everything_once(
    sink: str, start_drain: Callable[..., DrainProcess], fault: str, restart: str
) -> None:
    expected = await produce(projects=10, rounds=4)  # 40 entries, batches of 6
    args = ["--database-url", sink, "--batch", "6", "--once", "--claim-idle", "1"]

    crashed = start_drain(*args, "--consumer", "first", fault=(fault, 3))
    status, _, err = crashed.wait()
    assert status == -9, err
    partial = await sink_totals(sink)
    # Batches 1 and 2 are in; batch 3 is in too only when the kill came after its commit.
    assert sum(partial.values()) < sum(expected.values())
    assert await applied_flushes(sink) == (18 if fault == "after-commit" else 12)

    consumer = "first" if restart == "same consumer" else "second"
    if consumer == "second":
        await asyncio.sleep(1.1)  # the dead consumer's entries must be idle for --claim-idle
    status, out, err = start_drain(*args, "--consumer", consumer).wait()
    assert status == 0, err
    summary = drained(out)
    assert await sink_totals(sink) == expected
    assert await applied_flushes(sink) == 40
    # The entries of the killed batch came back: skipped if committed, applied if not.
    assert summary["duplicates"] == (6 if fault == "after-commit" else 0)
    assert summary["applied"] == (22 if fault == "after-commit" else 28)
    assert summary["lost"] == 0


def scrape(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = {}
    for line in text.splitlines():
        if line.startswith("appkit_usage_drain"):
            name, _, value = line.rpartition(" ")
            samples[name.split("{")[0]] = float(value)
    return samples


async def test_two_workers_on_one_group_apply_each_entry_once(
    sink: str, start_drain: Callable[..., DrainProcess]
) -> None:
    ports = [free_port(), free_port()]
    workers = [
        start_drain(
            "--database-url", sink, "--batch", "2", "--metrics-port", str(port), fault=("slow", 20)
        )
        for port in ports
    ]
    for port in ports:  # both are up and draining before the first entry arrives
        wait_for_port(port, seconds=30)
    expected: Totals = {}
    for _ in range(6):  # flushes keep arriving while both workers drain
        await produce(projects=10, rounds=2, expected=expected)
        await asyncio.sleep(0.05)
    redis = get_async_redis_instance("metrics")
    await wait_until_drained(redis, keys())
    metrics = [scrape(port) for port in ports]

    outcomes = [worker.stop() for worker in workers]
    assert [status for status, _, _ in outcomes] == [0, 0], [err for _, _, err in outcomes]
    summaries = [drained(out) for _, out, _ in outcomes]
    assert await sink_totals(sink) == expected
    assert sum(s["applied"] for s in summaries) == 120
    assert sum(s["duplicates"] for s in summaries) == 0
    assert all(s["applied"] > 0 for s in summaries), "both workers should have taken entries"
    assert [m["appkit_usage_drain_entries_applied_total"] for m in metrics] == [
        s["applied"] for s in summaries
    ]
    assert all(m["appkit_usage_drain_lag_seconds"] >= 0 for m in metrics)
    assert sum(m["appkit_usage_drain_batches_total"] for m in metrics) >= 120 / 2


async def test_sigterm_finishes_the_batch_in_hand(
    sink: str, start_drain: Callable[..., DrainProcess]
) -> None:
    expected = await produce(projects=10, rounds=5)
    worker = start_drain("--database-url", sink, "--batch", "3")
    deadline = time.monotonic() + 20
    while await applied_flushes(sink) == 0:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    status, out, err = worker.stop()
    assert status == 0, err
    summary = drained(out)
    # Stopped mid-stream: what it applied is in the sink and acknowledged, nothing half-done.
    assert await applied_flushes(sink) == summary["applied"]
    status, out, err = start_drain("--database-url", sink, "--once").wait()
    assert status == 0, err
    assert drained(out)["duplicates"] == 0
    assert await sink_totals(sink) == expected


async def test_init_twice_show_and_the_refusals(sink: str) -> None:
    expected = await produce(projects=2, rounds=2)
    assert run_manage("usage", "init", "--database-url", sink).returncode == 0
    assert run_manage("usage", "drain", "--database-url", sink, "--once").returncode == 0
    day = next(iter(expected))[2].isoformat()

    shown = run_manage(
        "usage", "show", "--org-id", "acme", "--project-id", "project-1", "--database-url", sink
    )
    assert shown.stdout == f"{day}  geo  lookup  4\n"
    as_json = run_manage(
        "usage", "show", "--org-id", "acme", "--project-id", "project-1", "--json"
    )  # from the Redis hashes
    assert as_json.stdout.strip() == (
        f'[{{"day": "{day}", "product": "geo", "kind": "lookup", "jobs": 4}}]'
    )

    without_tables = run_manage(
        "usage", "drain", "--once", "--database-url", sink.rsplit("/", 1)[0] + "/postgres"
    )
    assert without_tables.returncode == 2
    assert without_tables.stderr.count("\n") == 1
    assert "usage init" in without_tables.stderr
    sqlite = run_manage("usage", "drain", "--database-url", "sqlite:///x.db")
    assert (sqlite.returncode, sqlite.stderr.count("\n")) == (2, 1)
    assert "PostgreSQL" in sqlite.stderr
    embedded = run_manage("usage", "drain", "--database-url", sink, APPKIT_REDIS_URL="memory://")
    assert (embedded.returncode, embedded.stderr.count("\n")) == (2, 1)
    assert "memory://" in embedded.stderr
    down = run_manage(
        "usage",
        "drain",
        "--database-url",
        sink,
        "--once",
        APPKIT_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
    )
    assert (down.returncode, down.stderr.count("\n")) == (3, 1), down.stderr


async def test_flush_ids_older_than_the_keep_window_are_forgotten(sink: str) -> None:
    connection = await asyncpg.connect(sink)
    await connection.execute(
        "INSERT INTO appkit_usage_flushes (flush_id, applied_at) VALUES"
        " ('old:1', now() - interval '8 days'), ('recent:1', now() - interval '6 days')"
    )
    expected = await produce(projects=3, rounds=1)
    redis = get_async_redis_instance("metrics")
    counts = await drain(redis, keys(), DrainOptions(sink, once=True), asyncio.Event())
    ids = {
        r["flush_id"] for r in await connection.fetch("SELECT flush_id FROM appkit_usage_flushes")
    }
    await connection.close()
    assert counts.applied == 3
    assert "old:1" not in ids and "recent:1" in ids and len(ids) == 4
    assert await sink_totals(sink) == expected


def test_a_taken_metrics_port_is_one_line(sink: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = run_manage(
            "usage",
            "drain",
            "--database-url",
            sink,
            "--once",
            "--metrics-port",
            port,
            "--metrics-host",
            "127.0.0.1",
        )
    assert (done.returncode, done.stderr.count("\n")) == (2, 1)
    assert f"--metrics-port {port}" in done.stderr


async def test_the_lag_gauge_is_the_age_of_the_oldest_unacknowledged_entry(sink: str) -> None:
    group = f"lag-{uuid4().hex[:8]}"
    await produce(projects=3, rounds=1)
    await asyncio.sleep(1.2)
    redis = get_async_redis_instance("metrics")
    options = DrainOptions(sink, group=group, once=True)
    assert (await drain(redis, keys(), options, asyncio.Event())).applied == 3
    waited = REGISTRY.get_sample_value("appkit_usage_drain_lag_seconds", {"group": group})
    assert waited is not None and 1.2 <= waited < 30
    await drain(redis, keys(), options, asyncio.Event())  # nothing left
    assert REGISTRY.get_sample_value("appkit_usage_drain_lag_seconds", {"group": group}) == 0


async def test_every_drain_metric_is_served_from_the_start(sink: str) -> None:
    # A scrape before the first entry shows zeros, not missing series an alert cannot tell apart.
    group = f"fresh-{uuid4().hex[:8]}"
    options = DrainOptions(sink, group=group, once=True)
    assert (
        await drain(get_async_redis_instance("metrics"), keys(), options, asyncio.Event())
    ).read == 0
    for name in ("read", "applied", "duplicate", "lost"):
        sample = f"appkit_usage_drain_entries_{name}_total"
        assert REGISTRY.get_sample_value(sample, {"group": group}) == 0, sample
    assert REGISTRY.get_sample_value("appkit_usage_drain_batches_total", {"group": group}) == 0


@pytest.mark.parametrize("port", ["65536", "99999"])
def test_an_impossible_metrics_port_is_one_line(sink: str, port: str) -> None:
    done = run_manage("usage", "drain", "--database-url", sink, "--once", "--metrics-port", port)
    assert (done.returncode, done.stderr.count("\n")) == (2, 1), done.stderr
    assert "--metrics-port" in done.stderr and "Traceback" not in done.stderr


async def test_the_worker_logs_in_the_services_format(sink: str) -> None:
    # A worker next to a production service writes the JSON lines its log collector reads.
    await get_async_redis_instance("metrics").xadd(keys()[0], {"junk": "1"})
    done = run_manage("usage", "drain", "--database-url", sink, "--once", APPKIT_LOG_FORMAT="json")
    assert done.returncode == 0, done.stderr
    logged = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [line["level"] for line in logged if "skipped" in line["message"]] == ["ERROR"]
