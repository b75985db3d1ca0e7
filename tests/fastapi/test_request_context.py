"""Request ids, JSON log lines and the access line, in process through the app factory."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from appkit_runtime.access_line import JsonAccessLine
from appkit_runtime.fastapi import protected
from appkit_runtime.fastapi.fastapi import get_fastapi_app
from appkit_runtime.log_config import HANDLER_NAME, RequestIdFilter, log_formatter
from appkit_runtime.request_context import request_id_for
from appkit_runtime.settings import load_settings
from tests.auth.authority_server import AuthService
from tests.fastapi.test_fastapi import client_for
from tests.helpers import serve_once

ACCESS_FIELDS = {
    "time",
    "level",
    "request_id",
    "method",
    "route",
    "status",
    "duration_ms",
    "org_id",
    "project_id",
    "key_id",
    "ratelimit",
    "ratelimit_remaining",
}
handler_logger = logging.getLogger("tests.handler")


@pytest.fixture(autouse=True)
def sqlite_database(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("APPKIT_DATABASE_URL", f"sqlite:///{tmp_path}/app.db")


@pytest.fixture
def json_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`APPKIT_LOG_FORMAT=json` for the app made in the test; the root logger put back after."""
    monkeypatch.setenv("APPKIT_LOG_FORMAT", "json")
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    flags = ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing")
    saved = {flag: getattr(logging, flag) for flag in flags}
    yield
    for handler in root.handlers:
        if handler.get_name() == HANDLER_NAME:
            root.removeHandler(handler)
    root.setLevel(level)
    for flag, value in saved.items():
        setattr(logging, flag, value)
    assert [h for h in root.handlers if h not in handlers] == []


def limited_app(**chain: object) -> FastAPI:
    app = get_fastapi_app("request-context-test")

    @app.get("/items/{item_id}", dependencies=protected(max_requests=2, expiry=60, **chain))
    async def read_item(item_id: int) -> dict[str, int]:
        handler_logger.warning("reading item %d", item_id)
        return {"id": item_id}

    return app


def runtime_handler() -> logging.StreamHandler[Any]:
    """The handler the app factory installed on the root logger."""
    (handler,) = [h for h in logging.getLogger().handlers if h.get_name() == HANDLER_NAME]
    return handler  # type: ignore[return-value]


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def access_lines(text: str) -> list[dict[str, object]]:
    return [line for line in json_lines(text) if line["logger"] == "appkit_runtime.access"]


@pytest.mark.parametrize(
    "given", ["", "x" * 129, "has space", "semi;colon", "caf\u00e9", "new\nline"]
)
def test_an_unacceptable_request_id_is_replaced(given: str) -> None:
    made = request_id_for(given)
    assert made != given
    assert len(made) == 32 and made.isalnum()


@pytest.mark.parametrize("given", ["a", "x" * 128, "req-1.2_3:4", "ABC-def"])
def test_an_acceptable_request_id_is_kept(given: str) -> None:
    assert request_id_for(given) == given


@pytest.mark.usefixtures("real_redis", "json_logs")
async def test_every_line_and_the_access_line_carry_the_request_id(
    api_key, capsys: pytest.CaptureFixture[str]
) -> None:
    key = api_key("acme", "orders", key_id="k-1")
    async with client_for(limited_app()) as client:
        auth = {"Authorization": f"Bearer {key}"}
        echoed = await client.get("/items/7", headers={**auth, "X-Request-ID": "caller-1"})
        replaced = await client.get("/items/8", headers={**auth, "X-Request-ID": "bad id"})
        limited = await client.get("/items/9", headers=auth)
        refused = await client.get("/items/9")
        health = await client.get("/healthz")

    assert echoed.status_code == 200 and echoed.headers["x-request-id"] == "caller-1"
    new_id = replaced.headers["x-request-id"]
    assert replaced.status_code == 200 and new_id not in ("bad id", "caller-1")
    assert limited.status_code == 429 and limited.headers["x-request-id"]
    assert refused.status_code == 401 and refused.headers["x-request-id"]
    assert health.headers["x-request-id"]
    lines = json_lines(capsys.readouterr().out)
    handler_lines = [line for line in lines if line["logger"] == "tests.handler"]
    assert [(h["message"], h["request_id"]) for h in handler_lines] == [
        ("reading item 7", "caller-1"),
        ("reading item 8", new_id),
    ]
    access = access_lines("\n".join(json.dumps(line) for line in lines))
    # One line per request, none for the health probe.
    assert len(access) == 4
    for line in access:
        assert ACCESS_FIELDS <= line.keys(), line
        assert line["level"] == "INFO" and line["method"] == "GET"
        assert isinstance(line["duration_ms"], float)
    first, second, third, fourth = access
    assert first["request_id"] == "caller-1" and second["request_id"] == new_id
    assert {k: first[k] for k in ("route", "status", "org_id", "project_id", "key_id")} == {
        "route": "/items/{item_id}",
        "status": 200,
        "org_id": "acme",
        "project_id": "orders",
        "key_id": "k-1",
    }
    assert (first["ratelimit"], first["ratelimit_remaining"]) == ("allowed", 1)
    assert (second["ratelimit"], second["ratelimit_remaining"]) == ("allowed", 0)
    assert (third["status"], third["ratelimit"], third["ratelimit_remaining"]) == (
        429,
        "limited",
        0,
    )
    assert (fourth["status"], fourth["org_id"], fourth["ratelimit"]) == (401, None, None)
    assert fourth["request_id"] == refused.headers["x-request-id"]
    assert key not in "\n".join(json.dumps(line) for line in lines)


@pytest.mark.usefixtures("real_redis", "json_logs")
async def test_several_request_id_lines_get_a_new_id(
    api_key, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two lines are one list, "first, second" (RFC 9110), which no caller's id can be.
    key = api_key("acme", "orders")
    sent = [("Authorization", f"Bearer {key}"), ("X-Request-ID", "first")]
    async with client_for(limited_app()) as client:
        answer = await client.get("/items/1", headers=[*sent, ("X-Request-ID", "second")])

    made = answer.headers["x-request-id"]
    assert answer.status_code == 200 and made not in ("first", "second")
    assert len(made) == 32 and made.isalnum()
    (line,) = access_lines(capsys.readouterr().out)
    assert line["request_id"] == made


@pytest.mark.usefixtures("real_redis", "json_logs")
async def test_a_403_access_line_names_the_known_key(
    api_key, capsys: pytest.CaptureFixture[str]
) -> None:
    key = api_key("acme", "orders", key_id="k-403", scopes=["items:read"])
    app = get_fastapi_app("request-context-test")

    @app.get("/orders", dependencies=protected(scopes=["orders:write"]))
    async def write_order() -> dict[str, bool]:
        return {"ok": True}

    async with client_for(app) as client:
        answer = await client.get("/orders", headers={"Authorization": f"Bearer {key}"})

    assert answer.status_code == 403
    out = capsys.readouterr().out
    (line,) = access_lines(out)
    assert (line["org_id"], line["project_id"], line["key_id"]) == ("acme", "orders", "k-403")
    assert (line["status"], line["ratelimit"]) == (403, None)
    assert key not in out


@pytest.mark.usefixtures("real_redis", "json_logs")
async def test_monitor_mode_logs_would_limit(api_key, capsys: pytest.CaptureFixture[str]) -> None:
    key = api_key("acme", "monitor")
    async with client_for(limited_app(mode="monitor")) as client:
        auth = {"Authorization": f"Bearer {key}"}
        statuses = [(await client.get("/items/1", headers=auth)).status_code for _ in range(3)]

    assert statuses == [200, 200, 200]
    decisions = [line["ratelimit"] for line in access_lines(capsys.readouterr().out)]
    assert decisions == ["allowed", "allowed", "would_limit"]


@pytest.mark.usefixtures("json_logs")
async def test_redis_down_logs_fail_open(
    api_key, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APPKIT_REDIS_URL", "redis://127.0.0.1:1/0")
    key = api_key("acme", "outage")
    async with client_for(limited_app()) as client:
        answer = await client.get("/items/1", headers={"Authorization": f"Bearer {key}"})

    assert answer.status_code == 200
    (line,) = access_lines(capsys.readouterr().out)
    assert (line["ratelimit"], line["ratelimit_remaining"]) == ("fail_open", None)


@pytest.mark.usefixtures("real_redis", "json_logs")
async def test_access_log_false_writes_no_access_line(
    api_key, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APPKIT_ACCESS_LOG", "false")
    key = api_key("acme", "quiet")
    async with client_for(limited_app()) as client:
        answer = await client.get("/items/1", headers={"Authorization": f"Bearer {key}"})

    assert answer.status_code == 200 and answer.headers["x-request-id"]
    lines = json_lines(capsys.readouterr().out)
    assert [line["message"] for line in lines if line["logger"] == "tests.handler"] == [
        "reading item 1"
    ]
    assert access_lines(capsys.readouterr().out) == []
    assert not [line for line in lines if line["logger"] == "appkit_runtime.access"]


@pytest.mark.usefixtures("real_redis", "json_logs")
async def test_the_access_line_has_the_time_format_of_other_lines(
    api_key, capsys: pytest.CaptureFixture[str]
) -> None:
    # The runtime encodes the access line itself; python-json-logger encodes the others.
    key = api_key("acme", "orders")
    async with client_for(limited_app()) as client:
        await client.get("/items/3", headers={"Authorization": f"Bearer {key}"})

    lines = json_lines(capsys.readouterr().out)
    (handler_line,) = [line for line in lines if line["logger"] == "tests.handler"]
    (access_line,) = access_lines("\n".join(json.dumps(line) for line in lines))
    for line in (handler_line, access_line):
        written = datetime.fromisoformat(str(line["time"]))
        assert written.utcoffset() == timedelta(0), line["time"]
        assert str(line["time"]).endswith("+00:00")
    assert access_line["message"] == "GET /items/{item_id} 200"


@pytest.mark.usefixtures("real_redis", "json_logs")
async def test_a_log_level_above_info_writes_no_access_line(
    api_key, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APPKIT_LOG_LEVEL", "WARNING")
    key = api_key("acme", "orders")
    app = limited_app()
    # As the uvicorn command line leaves its loggers: a level of their own, INFO.
    monkeypatch.setattr(logging.getLogger("uvicorn.error"), "level", logging.INFO)
    async with client_for(app) as client:
        logging.getLogger("uvicorn.error").info("Started server process")
        answer = await client.get("/items/4", headers={"Authorization": f"Bearer {key}"})

    assert answer.status_code == 200
    loggers = {line["logger"] for line in json_lines(capsys.readouterr().out)}
    assert loggers == {"tests.handler"}


class BrokenStream(io.StringIO):
    """A log stream whose reader has gone (a closed pipe)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.usefixtures("real_redis", "json_logs")
async def test_a_broken_log_stream_never_fails_a_request(
    api_key, capsys: pytest.CaptureFixture[str]
) -> None:
    key = api_key("acme", "orders")
    app = limited_app()
    handler = runtime_handler()
    handler.setStream(BrokenStream())
    async with client_for(app) as client:
        answer = await client.get("/items/5", headers={"Authorization": f"Bearer {key}"})

    assert answer.status_code == 200 and answer.json() == {"id": 5}
    # As `logging` reports a failed write: on stderr, naming the line that was lost.
    assert "Logging error" in capsys.readouterr().err


@pytest.mark.usefixtures("real_redis", "json_logs")
async def test_access_lines_to_a_file_stay_whole_and_in_order_with_other_lines(
    api_key, tmp_path: Path
) -> None:
    # A real descriptor, as under uvicorn: the access line goes to it without the text layer.
    key = api_key("acme", "orders")
    app = get_fastapi_app("request-context-test")

    @app.get("/items/{item_id}", dependencies=protected(max_requests=100, expiry=60))
    async def read_item(item_id: int) -> dict[str, int]:
        handler_logger.warning("reading item %d", item_id)
        return {"id": item_id}

    handler = runtime_handler()
    log_file = (tmp_path / "service.log").open("w", encoding="utf-8")
    handler.setStream(log_file)
    try:
        async with client_for(app) as client:
            answers = await asyncio.gather(
                *(
                    client.get(f"/items/{n}", headers={"Authorization": f"Bearer {key}"})
                    for n in range(40)
                )
            )
    finally:
        log_file.close()

    assert [answer.status_code for answer in answers] == [200] * 40
    lines = json_lines((tmp_path / "service.log").read_text(encoding="utf-8"))
    access = [line for line in lines if line["logger"] == "appkit_runtime.access"]
    reading = [line for line in lines if line["logger"] == "tests.handler"]
    assert len(access) == 40 and len(reading) == 40
    ids = {answer.headers["X-Request-ID"] for answer in answers}
    assert {line["request_id"] for line in access} == ids
    # A request's own line comes before its access line.
    for line in access:
        (own,) = [r for r in reading if r["request_id"] == line["request_id"]]
        assert lines.index(own) < lines.index(line)


async def test_an_access_line_after_the_first_of_a_loop_turn_waits_for_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_file = (tmp_path / "service.log").open("w", encoding="utf-8")
    writes: list[bytes] = []

    def counted_write(fd: int, data: bytes) -> int:
        if fd == log_file.fileno():
            writes.append(bytes(data))
        return real_write(fd, data)

    real_write = os.write
    monkeypatch.setattr(os, "write", counted_write)
    line = JsonAccessLine(logging.StreamHandler(log_file))

    def written(number: int) -> list[str]:
        return [json.loads(text)["request_id"] for text in writes[number].splitlines()]

    try:
        for n in range(4):
            line.write(f"r{n}", "GET", "/items", 200, 1.5, "acme", "shop", "k1", "allowed", 9)
        # The turn's first line at once, the others at the start of the next turn.
        assert len(writes) == 1 and written(0) == ["r0"]
        await asyncio.sleep(0)
        assert len(writes) == 2 and written(1) == ["r1", "r2", "r3"]
        line.write("r4", "GET", "/items", 429, 1.5, "acme", "shop", "k1", "limited", 0)
        assert len(writes) == 3 and written(2) == ["r4"]
        await asyncio.sleep(0)
        assert len(writes) == 3
    finally:
        log_file.close()


def test_lines_of_a_loop_that_never_turns_again_are_written_at_exit() -> None:
    script = """
import asyncio, logging, sys
from appkit_runtime.access_line import JsonAccessLine

line = JsonAccessLine(logging.StreamHandler(sys.stdout))

def last_turn():
    for n in range(3):
        line.write(f"r{n}", "GET", "/items", 200, 1.0, None, None, None, None, None)
    loop.stop()  # this turn is the loop's last

loop = asyncio.new_event_loop()
loop.call_soon(last_turn)
loop.run_forever()
loop.close()
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert [line["request_id"] for line in json_lines(done.stdout)] == ["r0", "r1", "r2"]
    assert done.stderr == ""


def test_an_access_line_outside_an_event_loop_is_written_at_once(tmp_path: Path) -> None:
    log_file = (tmp_path / "service.log").open("w", encoding="utf-8")
    line = JsonAccessLine(logging.StreamHandler(log_file))
    line.write("r0", "GET", "/items", 404, 0.25, None, None, None, None, None)
    (written,) = json_lines((tmp_path / "service.log").read_text(encoding="utf-8"))
    log_file.close()
    assert written["request_id"] == "r0" and written["status"] == 404
    assert written["duration_ms"] == 0.25 and written["org_id"] is None


@pytest.mark.usefixtures("real_redis", "json_logs")
async def test_a_closed_log_pipe_never_fails_a_request(
    api_key, capsys: pytest.CaptureFixture[str]
) -> None:
    key = api_key("acme", "orders")
    app = limited_app()
    read_end, write_end = os.pipe()
    os.close(read_end)  # the collector has gone
    handler = runtime_handler()
    pipe = os.fdopen(write_end, "w")
    handler.setStream(pipe)
    try:
        async with client_for(app) as client:
            answers = [
                await client.get(f"/items/{n}", headers={"Authorization": f"Bearer {key}"})
                for n in range(2)
            ]
    finally:
        handler.stream = io.StringIO()  # not `setStream`: its flush would fail again
        with contextlib.suppress(BrokenPipeError):
            pipe.close()

    assert [(answer.status_code, answer.json()) for answer in answers] == [
        (200, {"id": 0}),
        (200, {"id": 1}),
    ]
    err = capsys.readouterr().err
    assert "Logging error" in err and "BrokenPipeError" in err
    # The access lines' failure once (`logging` reports each of its own records' failures).
    assert err.count('"logger":"appkit_runtime.access"') == 1


@pytest.mark.usefixtures("real_redis", "json_logs")
async def test_a_made_up_method_is_logged_as_other(
    api_key, capsys: pytest.CaptureFixture[str]
) -> None:
    key = api_key("acme", "orders")
    async with client_for(limited_app()) as client:
        answer = await client.request(
            "MARKERXYZ", "/items/1", headers={"Authorization": f"Bearer {key}"}
        )

    assert answer.status_code == 405
    lines = json_lines(capsys.readouterr().out)
    (line,) = [line for line in lines if line["logger"] == "appkit_runtime.access"]
    assert (line["method"], line["message"]) == ("_OTHER", "_OTHER /items/{item_id} 405")
    # The test's own client (httpx) logs its request; the service's lines never the method.
    assert not [line for line in lines if line["logger"] != "httpx" and "MARKERXYZ" in str(line)]


@pytest.mark.usefixtures("real_redis")
async def test_text_format_under_test_env_leaves_logging_alone() -> None:
    before = list(logging.getLogger().handlers)
    get_fastapi_app("untouched")
    assert logging.getLogger().handlers == before


@pytest.mark.usefixtures("real_redis")
async def test_the_http_authority_gets_the_request_id(monkeypatch: pytest.MonkeyPatch) -> None:
    authority = AuthService()
    authority.answers["live-key-rid"] = (200, {"org_id": "acme", "project_id": "rid"})
    monkeypatch.setenv("APPKIT_AUTH_BACKEND", "http")
    monkeypatch.setenv("APPKIT_AUTH_URL", authority.url)
    try:
        async with client_for(limited_app()) as client:
            answer = await client.get(
                "/items/1",
                headers={"Authorization": "Bearer live-key-rid", "X-Request-ID": "rid-42"},
            )
    finally:
        authority.stop()

    assert answer.status_code == 200
    (received,) = authority.received
    assert received["headers"]["X-Request-ID"] == "rid-42"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("APPKIT_LOG_FORMAT", "xml"), ("APPKIT_LOG_LEVEL", "LOUD"), ("APPKIT_ACCESS_LOG", "maybe")],
)
def test_a_bad_log_setting_stops_start_up_in_one_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as stopped:
        get_fastapi_app("bad-logs")
    message = str(stopped.value)
    assert message.startswith(f"appkit: {variable}: ") and "\n" not in message


@pytest.mark.parametrize(
    ("variable", "field", "default"),
    [("APPKIT_LOG_FORMAT", "log_format", None), ("APPKIT_LOG_LEVEL", "log_level", "INFO")]
    + [("APPKIT_ACCESS_LOG", "access_log", True)],
)
def test_an_empty_log_setting_means_its_default(
    monkeypatch: pytest.MonkeyPatch, variable: str, field: str, default: object
) -> None:
    # As `APPKIT_LOG_LEVEL=${LEVEL}` gives in compose when LEVEL is unset.
    monkeypatch.setenv(variable, " ")
    assert getattr(load_settings(), field) == default


@pytest.mark.parametrize(
    ("env", "given", "style"),
    [("production", None, "json"), ("development", None, "text"), ("production", "Text", "text")],
)
def test_the_log_format_defaults_to_json_in_production(
    env: str, given: str | None, style: str
) -> None:
    overrides = {"log_format": given} if given else {}
    assert load_settings(env=env, redis_url="redis://127.0.0.1:1/0", **overrides).log_style == style


def test_uvicorns_colour_duplicate_is_not_a_json_key() -> None:
    # uvicorn's own call (uvicorn/server.py): the message again, with ANSI codes, as an extra.
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.addFilter(RequestIdFilter(None))
    handler.setFormatter(log_formatter("json"))
    uvicorn_logger = logging.getLogger("uvicorn.error")
    uvicorn_logger.addHandler(handler)
    try:
        uvicorn_logger.warning(
            "Started server process [%d]",
            42,
            extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]", "worker": 1},
        )
    finally:
        uvicorn_logger.removeHandler(handler)

    (line,) = json_lines(written.getvalue())
    assert line["message"] == "Started server process [42]"
    assert line["logger"] == "uvicorn.error" and line["worker"] == 1  # other extras stay
    assert "color_message" not in line and "\x1b" not in written.getvalue()


EMBEDDED_APP = """
from appkit_runtime.fastapi.fastapi import get_fastapi_app

app = get_fastapi_app("embedded-json", databases=())


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}
"""


def test_an_app_under_uvicorn_writes_only_json_lines_without_colour(tmp_path: Path) -> None:
    (tmp_path / "service.py").write_text(EMBEDDED_APP)
    environ = {"APPKIT_ENV": "development", "APPKIT_LOG_FORMAT": "json"}
    answer, output = serve_once(
        tmp_path, {**environ, "APPKIT_REDIS_URL": "memory://"}, "/hello", {"X-Request-ID": "uv-1"}
    )

    assert answer.status_code == 200 and answer.headers["x-request-id"] == "uv-1"
    lines = json_lines(output)  # every line parses as JSON
    messages = [line["message"] for line in lines if line["logger"] == "uvicorn.error"]
    assert any(m.startswith("Started server process") for m in messages), messages
    assert any(m.startswith("Uvicorn running on") for m in messages), messages
    assert not [line for line in lines if "color_message" in line]
    (access,) = [line for line in lines if line["logger"] == "appkit_runtime.access"]
    assert (access["request_id"], access["route"], access["status"]) == ("uv-1", "/hello", 200)


FAILING_APP = """
from appkit_runtime.fastapi.fastapi import get_fastapi_app

app = get_fastapi_app("failing-json", databases=())


@app.get("/boom")
async def boom() -> None:
    raise RuntimeError("boom")
"""


def test_a_500_and_the_servers_traceback_line_carry_the_request_id(tmp_path: Path) -> None:
    (tmp_path / "service.py").write_text(FAILING_APP)
    environ = {"APPKIT_ENV": "development", "APPKIT_LOG_FORMAT": "json"}
    answer, output = serve_once(
        tmp_path, {**environ, "APPKIT_REDIS_URL": "memory://"}, "/boom", {"X-Request-ID": "uv-500"}
    )

    assert answer.status_code == 500 and answer.text == "Internal Server Error"
    assert answer.headers["x-request-id"] == "uv-500"
    (error,) = [line for line in json_lines(output) if line["level"] == "ERROR"]
    assert "RuntimeError: boom" in str(error["exc_info"])
    assert error["request_id"] == "uv-500"  # so the traceback joins its access line


@pytest.mark.usefixtures("real_redis", "json_logs")
async def test_the_access_line_names_the_route_with_its_inclusion_prefix(
    api_key, capsys: pytest.CaptureFixture[str]
) -> None:
    from fastapi import APIRouter

    app = get_fastapi_app("request-context-prefix")
    router = APIRouter()

    @router.get("/orders/{order_id}", dependencies=protected())
    async def order(order_id: int) -> int:
        return order_id

    app.include_router(router, prefix="/v1")
    key = api_key("acme", "orders")
    async with client_for(app) as client:
        await client.get("/v1/orders/3", headers={"X-API-Key": key})
    (line,) = access_lines(capsys.readouterr().out)
    assert line["route"] == "/v1/orders/{order_id}"
