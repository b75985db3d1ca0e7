"""The protected chain's fast path (`chain_plans`): taken for a cached key with a covering
lease, and answering exactly as the chain's async path does, at the limit and across holders."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from appkit_runtime.fastapi import protected
from appkit_runtime.fastapi.chain import ProtectedChain
from appkit_runtime.fastapi.chain_plans import ChainPlans
from appkit_runtime.fastapi.fastapi import get_fastapi_app
from appkit_runtime.ratelimit import rate_limit_keys
from appkit_runtime.ratelimit.leases import LeaseTable
from appkit_runtime.ratelimit.org_overrides import set_org_rate_limit_override
from appkit_runtime.ratelimit.overrides import set_rate_limit_override
from appkit_runtime.ratelimit.storage import AsyncRedisStorage, async_storage_for
from appkit_runtime.settings import RateLimit, get_async_redis_instance
from appkit_runtime.usage import get_project_usage
from tests.fastapi.test_fastapi import client_for
from tests.fastapi.test_request_context import access_lines, json_logs  # noqa: F401
from tests.fastapi.test_tracing import FinishedSpans, finished_spans  # noqa: F401

pytestmark = pytest.mark.usefixtures("real_redis")
ROUTE = "/items/{item_id}"
# Fields of the access line that differ between any two requests, fast path or not.
PER_REQUEST = {"time", "request_id", "duration_ms", "project_id"}
VOLATILE = {"appkit.project_id", "appkit.request_id"}


@pytest.fixture(autouse=True)
def sqlite_database(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("APPKIT_DATABASE_URL", f"sqlite:///{tmp_path}/app.db")
    monkeypatch.setenv("APPKIT_METRICS_FLUSH_SECONDS", "3600")


def limited_app(max_requests: int, expiry: int = 60) -> FastAPI:
    app = get_fastapi_app("fast-path-test")

    @app.get(ROUTE, dependencies=protected(max_requests=max_requests, expiry=expiry))
    async def read_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app


def project() -> str:
    return f"project-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def fast_served(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether the fast path served each request, in order."""
    served: list[bool] = []
    spend = ChainPlans.spend

    def recording(self: ChainPlans, scope: dict[str, Any]) -> Any:
        planned = spend(self, scope)
        served.append(planned is not None)
        return planned

    monkeypatch.setattr(ChainPlans, "spend", recording)
    return served


Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]


async def answers(client: httpx.AsyncClient, key: str, count: int) -> list[Answer]:
    """Status, body and raw header fields (but the request id) of `count` requests."""
    got = []
    for n in range(count):
        response = await client.get(f"/items/{n}", headers={"X-API-Key": key})
        fields = [field for field in response.headers.raw if field[0] != b"x-request-id"]
        got.append((response.status_code, response.content, fields))
    return got


async def test_a_cached_key_with_a_covering_lease_makes_no_coroutine_nor_redis_call(
    api_key, monkeypatch: pytest.MonkeyPatch, fast_served: list[bool]
) -> None:
    key = api_key("acme", project())
    async with client_for(limited_app(1000)) as client:
        # Blocks of 1, 2, 4 and 8 permits: the eighth request leases 8, seven left in hand.
        assert {status for status, _, _ in await answers(client, key, 8)} == {200}
        calls: list[str] = []
        before_endpoint, run_lease = ProtectedChain.before_endpoint, AsyncRedisStorage.run_lease

        def counted_chain(self: ProtectedChain, request: Any) -> Any:
            calls.append("chain coroutine")
            return before_endpoint(self, request)

        def counted_lease(self: AsyncRedisStorage, *args: Any) -> Any:
            calls.append("lease call")
            return run_lease(self, *args)

        monkeypatch.setattr(ProtectedChain, "before_endpoint", counted_chain)
        monkeypatch.setattr(AsyncRedisStorage, "run_lease", counted_lease)
        fast_served.clear()
        assert {status for status, _, _ in await answers(client, key, 7)} == {200}
        assert (calls, fast_served) == ([], [True] * 7)
        # The lease is spent: the next request goes the async way, to Redis.
        assert (await answers(client, key, 1))[0][0] == 200
        assert (calls, fast_served[-1]) == (["chain coroutine", "lease call"], False)


@pytest.mark.usefixtures("json_logs")
async def test_the_fast_path_answers_as_the_async_path_up_to_and_past_the_limit(
    api_key,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fast_served: list[bool],
    redis: Any,
) -> None:
    fast_project, slow_project = project(), project()
    async with client_for(limited_app(100)) as client:
        fast = await answers(client, api_key("acme", fast_project), 105)
        fast_lines = access_lines(capsys.readouterr().out)
        served = list(fast_served)
        with monkeypatch.context() as off:
            off.setattr(ChainPlans, "spend", lambda self, scope: None)
            slow = await answers(client, api_key("acme", slow_project), 105)
        slow_lines = access_lines(capsys.readouterr().out)

    assert [status for status, _, _ in fast] == [200] * 100 + [429] * 5
    assert fast == slow  # statuses, bodies, every header field, byte for byte
    # Leases of several permits were spent on the fast path, each to its last permit, the
    # request after it renewing the lease; the window's last permits (leased one at a time)
    # and the 429s after them went the async way.
    exhausted = [n for n in range(104) if served[n] and not served[n + 1]]
    assert len(exhausted) >= 4 and max(exhausted) < 99
    assert not any(served[99:])
    assert len(fast_lines) == len(slow_lines) == 105
    for fast_line, slow_line in zip(fast_lines, slow_lines, strict=True):
        assert {k: v for k, v in fast_line.items() if k not in PER_REQUEST} == {
            k: v for k, v in slow_line.items() if k not in PER_REQUEST
        }
    assert [line["ratelimit_remaining"] for line in fast_lines][98:101] == [1, 0, 0]
    # Shutdown flushed the usage: the same hundred jobs for each project.
    fast_usage = await get_project_usage(redis, "acme", fast_project)
    assert fast_usage == await get_project_usage(redis, "acme", slow_project)
    assert sum(sum(kinds.values()) for kinds in fast_usage.values()) == 100


async def test_a_second_holder_on_the_same_counter_keeps_the_limit_exact(
    api_key, fast_served: list[bool]
) -> None:
    # A second lease table on the same counter stands for a second process.
    project_id, limit = project(), RateLimit(40, 60)
    other = LeaseTable()
    storage = async_storage_for(get_async_redis_instance("ratelimit"))
    keys = rate_limit_keys("acme", project_id, ROUTE)
    key = api_key("acme", project_id)
    here = there = 0
    async with client_for(limited_app(40)) as client:
        for _ in range(40):
            here += sum(status == 200 for status, _, _ in await answers(client, key, 2))
            there += not (await other.take(storage, keys, limit, 1)).is_over_limit
        counter = int(await get_async_redis_instance("ratelimit").get(keys[0]))

    assert here + there == 40 == counter
    assert min(here, there) > 0 and any(fast_served)


async def test_override_writes_apply_at_the_next_request(api_key, redis: Any) -> None:
    org, project_id = f"org-{uuid.uuid4().hex[:12]}", project()
    key = api_key(org, project_id)

    def policy(answer: Answer) -> bytes:
        return dict(answer[2])[b"ratelimit-policy"]

    async with client_for(limited_app(1000)) as client:
        assert {policy(a) for a in await answers(client, key, 8)} == {b'"default";q=1000;w=60'}
        await set_org_rate_limit_override(redis, org, ROUTE, 500, 60, ttl=1)
        assert policy((await answers(client, key, 1))[0]) == b'"default";q=500;w=60'
        await set_rate_limit_override(redis, org, project_id, ROUTE, 300, 60)
        assert policy((await answers(client, key, 1))[0]) == b'"default";q=300;w=60'


async def test_an_organisation_override_that_expires_stops_applying(
    api_key, redis: Any, fast_served: list[bool]
) -> None:
    org, project_id = f"org-{uuid.uuid4().hex[:12]}", project()
    key = api_key(org, project_id)
    await set_org_rate_limit_override(redis, org, ROUTE, 500, 60, ttl=1)
    async with client_for(limited_app(1000)) as client:
        first = await answers(client, key, 7)  # the seventh spends a lease of four
        assert {dict(a[2])[b"ratelimit-policy"] for a in first} == {b'"default";q=500;w=60'}
        assert fast_served[-1]
        await asyncio.sleep(1.1)
        after = (await answers(client, key, 1))[0]
    assert dict(after[2])[b"ratelimit-policy"] == b'"default";q=1000;w=60'


async def test_the_fast_path_leaves_the_same_spans(
    api_key,
    monkeypatch: pytest.MonkeyPatch,
    finished_spans: FinishedSpans,  # noqa: F811 (the fixture imported above)
    fast_served: list[bool],
) -> None:
    def spans() -> list[tuple[str, dict[str, Any]]]:
        got = [
            (span.name, {k: v for k, v in (span.attributes or {}).items() if k not in VOLATILE})
            for span in finished_spans.get_finished_spans()
            # The organisation overrides are read at first use, by whichever path that is.
            if span.name != "appkit.ratelimit.override"
        ]
        finished_spans.clear()
        return got

    fast_project, slow_project = project(), project()
    async with client_for(limited_app(40)) as client:
        await answers(client, api_key("acme", fast_project), 42)
        fast = spans()
        with monkeypatch.context() as off:
            off.setattr(ChainPlans, "spend", lambda self, scope: None)
            await answers(client, api_key("acme", slow_project), 42)
        slow = spans()

    assert sum(fast_served) >= 5 and len(fast) >= 42
    assert fast == slow
