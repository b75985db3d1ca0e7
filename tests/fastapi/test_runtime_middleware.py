"""`RuntimeMiddleware`: the runtime's per-request work, one layer inside the key gate."""

from __future__ import annotations

import logging
import os
import uuid

import httpx
import pytest
from asgi_lifespan import LifespanManager

from appkit_runtime.access_line import ACCESS_LOGGER
from appkit_runtime.fastapi.fastapi import get_fastapi_app
from appkit_runtime.fastapi.key_gate import UnknownKeyGate
from appkit_runtime.fastapi.runtime_middleware import RuntimeMiddleware
from appkit_runtime.request_context import new_request_id


def test_the_runtime_is_one_layer_inside_the_key_gate() -> None:
    app = get_fastapi_app("one-layer", databases=())
    assert [m.cls for m in app.user_middleware] == [UnknownKeyGate, RuntimeMiddleware]


def test_a_new_request_id_is_a_uuid4_hex() -> None:
    made = {new_request_id() for _ in range(200)}
    assert len(made) == 200
    for request_id in made:
        parsed = uuid.UUID(hex=request_id)
        assert parsed.hex == request_id
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)


def test_a_forked_worker_does_not_repeat_its_parents_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: its next id, then gone
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    workers = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert len(workers) == 32 and workers != new_request_id()


@pytest.mark.usefixtures("real_redis")
async def test_an_unhandled_error_is_answered_counted_and_logged_with_the_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = get_fastapi_app("error-test", databases=())

    @app.get("/boom/{n}")
    async def boom(n: int) -> None:
        raise RuntimeError("boom")

    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answer = await client.get("/boom/1")
            text = (await client.get("/metrics")).text

    # Starlette's error middleware, outside the runtime's, answers; the id is on it anyway.
    assert answer.status_code == 500 and answer.text == "Internal Server Error"
    request_id = answer.headers["x-request-id"]
    assert (
        'appkit_http_requests_total{method="GET",route="/boom/{n}",service="error-test",'
        'status="500"} 1.0'
    ) in text
    (line,) = [r for r in caplog.records if r.name == ACCESS_LOGGER and r.route == "/boom/{n}"]
    assert (line.status, line.request_id) == (500, request_id)
