"""When tracing is on, and that it costs nothing (not even an import) when it is off."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry.sdk import resources
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import ValidationError

from appkit_runtime.fastapi import protected
from appkit_runtime.fastapi import tracing as fastapi_tracing
from appkit_runtime.fastapi.fastapi import get_fastapi_app
from appkit_runtime.fastapi.span_export_process import readable_span
from appkit_runtime.fastapi.span_recorder import SpanRecord, SpanRecorder
from appkit_runtime.fastapi.span_resource import service_resource
from appkit_runtime.settings import Settings
from appkit_runtime.tracing import tracing_requested, use_tracer
from appkit_runtime.tracing_settings import check_otel_variables
from tests.fastapi.test_fastapi import client_for
from tests.helpers import serve_once, service_environ

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


@pytest.mark.parametrize(
    ("environ", "requested"),
    [
        ({}, False),
        (ENDPOINT, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, False),
        ({**ENDPOINT, "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, False),
    ],
)
def test_the_otel_variables_turn_tracing_on(environ: dict[str, str], requested: bool) -> None:
    assert tracing_requested(environ) is requested


PROBE = """
import sys
from appkit_runtime.fastapi.fastapi import get_fastapi_app
get_fastapi_app("probe", databases=())
print(sorted(m for m in sys.modules
             if m.startswith(("opentelemetry.sdk.trace", "opentelemetry.exporter"))
             or m in ("appkit_runtime.fastapi.server_spans",
                      "appkit_runtime.fastapi.span_export_process")))
"""


@pytest.mark.parametrize(("environ", "loaded"), [({}, False), (ENDPOINT, True)])
def test_the_sdk_is_imported_only_when_asked_for(
    environ: dict[str, str], loaded: bool, tmp_path
) -> None:
    env = {k: v for k, v in service_environ(env="development").items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**env, **environ},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    modules = ast.literal_eval(done.stdout)
    assert ("appkit_runtime.fastapi.server_spans" in modules) is loaded
    # (redis-py itself may import the SDK's metrics when it is installed; not its traces.)
    assert any(m.startswith("opentelemetry.sdk.trace") for m in modules) is loaded
    # The OTLP exporter runs in the child process that exports; the server never imports it.
    assert ("appkit_runtime.fastapi.span_export_process" in modules) is loaded
    assert not any(m.startswith("opentelemetry.exporter") for m in modules)


class FinishedSpans:
    """The spans the test's app ended, as the SDK's `ReadableSpan`s: rebuilt from the span
    recorder's records as the export process rebuilds them, or kept by the SDK's provider."""

    def __init__(self, export: str) -> None:
        self.records: list[SpanRecord] = []
        self.kept = InMemorySpanExporter()
        self.provider = TracerProvider()
        if export == "thread":
            self.provider.add_span_processor(SimpleSpanProcessor(self.kept))
            self.tracer = self.provider.get_tracer("appkit_runtime")
        else:
            ids = self.provider.id_generator
            self.tracer = SpanRecorder(self.records.append, self.provider.sampler, ids)

    def get_finished_spans(self) -> list[ReadableSpan]:
        limits = SpanLimits()
        resource = self.provider.resource
        rebuilt = [readable_span(record, resource, limits) for record in self.records]
        return rebuilt + list(self.kept.get_finished_spans())

    def clear(self) -> None:
        self.records.clear()
        self.kept.clear()


@pytest.fixture(params=["process", "thread"])
def finished_spans(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> Iterator[FinishedSpans]:
    """Tracing on for the app made in the test, through the span recorder (the default) and
    through the SDK's own tracer (`APPKIT_TRACE_EXPORT=thread`)."""
    monkeypatch.setenv("APPKIT_DATABASE_URL", f"sqlite:///{tmp_path}/app.db")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    found = FinishedSpans(request.param)
    monkeypatch.setattr(fastapi_tracing, "_tracer", found.tracer)
    yield found
    use_tracer(None)
    found.provider.shutdown()


@pytest.mark.usefixtures("real_redis")
async def test_a_refused_key_names_its_project_on_the_span_an_unknown_one_does_not(
    api_key, finished_spans: FinishedSpans
) -> None:
    read_key = api_key("acme", "orders", key_id="k-read", scopes=["orders:read"])
    other_product = api_key("acme", "billing", key_id="k-bill", product="billing")
    app = get_fastapi_app("span-test")

    @app.get("/orders", dependencies=protected(product="shop", scopes=["orders:write"]))
    async def write_order() -> dict[str, bool]:
        return {"ok": True}

    async with client_for(app) as client:
        statuses = [
            (await client.get("/orders", headers=headers)).status_code
            for headers in (
                {"Authorization": f"Bearer {read_key}"},  # wrong scope
                {"Authorization": f"Bearer {other_product}"},  # wrong product
                {"Authorization": "Bearer ak_test_unknown"},
                {},
            )
        ]

    assert statuses == [403, 403, 401, 401]
    servers = [s for s in finished_spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert [s.name for s in servers] == ["GET /orders"] * 4
    projects = [
        (
            s.attributes.get("appkit.org_id"),
            s.attributes.get("appkit.project_id"),
            s.attributes["http.response.status_code"],
        )
        for s in servers
        if s.attributes is not None
    ]
    assert projects == [
        ("acme", "orders", 403),
        ("acme", "billing", 403),
        (None, None, 401),
        (None, None, 401),
    ]
    # Refused before the limiter: no decision on any of them, and no key anywhere.
    assert not any("appkit.ratelimit.decision" in (s.attributes or {}) for s in servers)
    exported = "\n".join(s.to_json() for s in finished_spans.get_finished_spans())
    assert read_key not in exported and other_product not in exported


@pytest.mark.parametrize(
    ("environ", "line"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER: unknown exporter 'zipkin'"),
        ({"OTEL_TRACES_EXPORTER": "otlp,jaeger"}, "OTEL_TRACES_EXPORTER: unknown exporter"),
        (
            {**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            "OTEL_EXPORTER_OTLP_PROTOCOL: unsupported protocol 'http/json'",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"},
            "OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:// or https:// URL",
        ),
        (
            {**ENDPOINT, "OTEL_TRACES_SAMPLER": "sometimes"},
            "OTEL_TRACES_SAMPLER: unknown sampler 'sometimes'",
        ),
        (
            {**ENDPOINT, "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
            "OTEL_TRACES_SAMPLER_ARG: expected a ratio from 0 to 1, got '2'",
        ),
        (
            {
                **ENDPOINT,
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "half",
            },
            "OTEL_TRACES_SAMPLER_ARG: expected a ratio from 0 to 1, got 'half'",
        ),
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_TIMEOUT": "-1"}, "OTEL_EXPORTER_OTLP_TIMEOUT: expected"),
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_TIMEOUT": "inf"}, "OTEL_EXPORTER_OTLP_TIMEOUT: expected"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:99999"},
            "OTEL_EXPORTER_OTLP_ENDPOINT: the port must be a number from 0 to 65535",
        ),
        (
            {"OTEL_TRACES_EXPORTER": "none,otlp"},
            "OTEL_TRACES_EXPORTER: none turns traces off, so it cannot come with others",
        ),
        ({**ENDPOINT, "OTEL_BSP_SCHEDULE_DELAY": "abc"}, "OTEL_BSP_SCHEDULE_DELAY: expected"),
        ({**ENDPOINT, "OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "OTEL_BSP_MAX_QUEUE_SIZE: expected"),
        (
            {**ENDPOINT, "OTEL_BSP_MAX_QUEUE_SIZE": "100"},
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE (512 when unset) must not exceed "
            "OTEL_BSP_MAX_QUEUE_SIZE (100)",
        ),
        ({**ENDPOINT, "OTEL_BSP_SCHEDULE_DELAY": "²"}, "OTEL_BSP_SCHEDULE_DELAY: expected"),
        (
            {**ENDPOINT, "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "abc"},
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: expected an integer ≥ 0 (or nothing, for no limit)",
        ),
        (
            {**ENDPOINT, "OTEL_SPAN_EVENT_COUNT_LIMIT": "-1"},
            "OTEL_SPAN_EVENT_COUNT_LIMIT: expected",
        ),
        ({**ENDPOINT, "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "1.5"}, "OTEL_ATTRIBUTE_VALUE_LENGTH"),
    ],
)
def test_a_bad_otel_variable_stops_start_up_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path, environ: dict[str, str], line: str
) -> None:
    monkeypatch.setenv("APPKIT_DATABASE_URL", f"sqlite:///{tmp_path}/app.db")
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        get_fastapi_app("bad-otel")
    message = str(stopped.value)
    assert message.startswith(f"appkit: {line}") and "\n" not in message


@pytest.mark.parametrize(
    "environ",
    [
        {**ENDPOINT, "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
        {"OTEL_TRACES_EXPORTER": "otlp,console", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
        {**ENDPOINT, "OTEL_BSP_MAX_QUEUE_SIZE": "4096", "OTEL_BSP_SCHEDULE_DELAY": "100"},
        {**ENDPOINT, "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "0", "OTEL_SPAN_LINK_COUNT_LIMIT": " "},
    ],
)
def test_good_otel_variables_pass(environ: dict[str, str]) -> None:
    check_otel_variables(environ)


def test_otel_variables_are_not_read_when_tracing_is_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("APPKIT_DATABASE_URL", f"sqlite:///{tmp_path}/app.db")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "sometimes")
    assert get_fastapi_app("otel-off").title == "otel-off"


# What the `otel` extra brings (the SDK, the OTLP exporters and what only they need); the
# OpenTelemetry API stays importable, as it does without the extra (FastAPI requires it).
WITHOUT_OTEL_EXTRA = """
import sys
from importlib.abc import MetaPathFinder

EXTRA = ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.proto")


class WithoutOtelExtra(MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.startswith(EXTRA):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


for name in [m for m in sys.modules if m.startswith(EXTRA)]:
    del sys.modules[name]
sys.meta_path.insert(0, WithoutOtelExtra())
"""

SERVED_APP = """
from appkit_runtime.fastapi.fastapi import get_fastapi_app

app = get_fastapi_app("no-otel", databases=())


@app.get("/hello")
async def hello() -> dict[str, str]:
    import sys

    return {"sdk": str(any(m.startswith("opentelemetry.sdk") for m in sys.modules))}
"""


def test_without_the_otel_extra_one_warning_and_the_service_serves(
    real_redis: str, tmp_path
) -> None:
    (tmp_path / "service.py").write_text(SERVED_APP)
    environ = {
        "APPKIT_ENV": "development",
        "APPKIT_LOG_FORMAT": "json",
        "APPKIT_REDIS_URL": real_redis,
        **ENDPOINT,
    }
    answer, output = serve_once(
        tmp_path, environ, "/hello", {"X-Request-ID": "no-otel-1"}, WITHOUT_OTEL_EXTRA
    )

    assert answer.status_code == 200
    assert answer.json() == {"sdk": "False"}  # the SDK really was out of reach
    assert answer.headers["x-request-id"] == "no-otel-1"
    lines = [json.loads(line) for line in output.splitlines()]
    assert "Traceback" not in output
    warnings = [line for line in lines if line["level"] == "WARNING"]
    assert [(w["logger"], w["message"]) for w in warnings] == [
        (
            "appkit_runtime",
            "OTEL variables are set but the otel extra is not installed, so no traces: "
            "pip install '.[otel]' in a service made from the template, "
            "else pip install 'appkit-runtime[otel]'",
        )
    ]
    (access,) = [line for line in lines if line["logger"] == "appkit_runtime.access"]
    assert (access["status"], access["request_id"]) == (200, "no-otel-1")


def test_the_service_resource_groups_spans_like_the_sdks_and_hashes_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The OTLP encoder groups spans by resource: equal to and hashing as the SDK's own, or
    # an export would split (or merge) what the SDK would not.
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    resource = service_resource("orders")
    sdk = Resource.create({SERVICE_NAME: "orders"})
    expected = hash(sdk)
    assert resource == sdk and hash(resource) == expected
    assert resource.attributes["deployment.environment"] == "test"
    dumps = []
    monkeypatch.setattr(resources, "dumps", lambda *a, **k: dumps.append(a) or "{}")
    assert [hash(resource) for _ in range(3)] == [expected] * 3
    assert dumps == []  # the SDK's `__hash__` writes JSON each call; this one never again


def test_the_console_exporter_writes_to_stderr_not_to_the_logs_stdout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    (exporter,) = fastapi_tracing.span_exporters()
    assert exporter.out is sys.stderr


def test_spans_leave_through_a_child_process_unless_thread_is_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    for made in ("_tracer", "_queue", "_provider"):
        monkeypatch.setattr(fastapi_tracing, made, None)
    assert isinstance(fastapi_tracing._tracer_once(Settings()), SpanRecorder)
    assert fastapi_tracing._queue is not None and fastapi_tracing._provider is None
    monkeypatch.setattr(fastapi_tracing, "_tracer", None)
    monkeypatch.setattr(fastapi_tracing, "_queue", None)
    threaded = fastapi_tracing._tracer_once(Settings(trace_export="thread"))
    assert not isinstance(threaded, SpanRecorder) and fastapi_tracing._queue is None
    processors = fastapi_tracing._provider._active_span_processor._span_processors
    assert [type(p) for p in processors] == [BatchSpanProcessor]
    fastapi_tracing._provider.shutdown()
    monkeypatch.setenv("APPKIT_TRACE_EXPORT", " ")  # set but empty: the default
    assert Settings().trace_export == "process"
    monkeypatch.setenv("APPKIT_TRACE_EXPORT", "Threads")
    with pytest.raises(ValidationError, match="trace_export"):
        Settings()


@pytest.mark.usefixtures("real_redis")
async def test_spans_of_an_error_an_unmatched_path_an_odd_method_and_a_probe(
    finished_spans: FinishedSpans,
) -> None:
    app = get_fastapi_app("span-edges-test")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    @app.api_route("/purge", methods=["PURGE"])
    async def purge() -> dict[str, bool]:
        return {"ok": True}

    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            statuses = [(await client.get(path)).status_code for path in ("/boom", "/nowhere")]
            statuses.append((await client.request("PURGE", "/purge")).status_code)
            assert (await client.get("/healthz")).status_code == 200

    assert statuses == [500, 404, 200]
    servers = [s for s in finished_spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    # The exception escaped the app: Starlette's error middleware, outside the runtime's,
    # answers the 500, which the span says with the route it was raised in.
    assert [(s.name, dict(s.attributes or {})) for s in servers] == [
        (
            "GET /boom",
            {"http.request.method": "GET", "http.response.status_code": 500, "http.route": "/boom"},
        ),
        ("GET", {"http.request.method": "GET", "http.response.status_code": 404}),
        (
            "HTTP /purge",
            {
                "http.request.method": "_OTHER",
                "http.request.method_original": "PURGE",
                "http.response.status_code": 200,
                "http.route": "/purge",
            },
        ),
    ]
    assert servers[0].status.status_code is StatusCode.ERROR
    assert servers[0].status.description == "RuntimeError"


@pytest.mark.usefixtures("real_redis")
async def test_a_caller_trace_is_continued_unless_it_names_two_parents(
    finished_spans: FinishedSpans,
) -> None:
    app = get_fastapi_app("span-parents-test")

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    first = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    second = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with client_for(app) as client:
        one = await client.get("/ping", headers=[("traceparent", first), ("tracestate", "a=1")])
        both = await client.get("/ping", headers=[("traceparent", first), ("traceparent", second)])
        states = await client.get(
            "/ping", headers=[("traceparent", first), ("tracestate", "a=1"), ("tracestate", "b=2")]
        )
    assert [r.status_code for r in (one, both, states)] == [200] * 3

    continued, fresh, merged = [
        s for s in finished_spans.get_finished_spans() if s.kind is SpanKind.SERVER
    ]
    assert continued.parent is not None and continued.parent.span_id == 0x00F067AA0BA902B7
    assert continued.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert fresh.parent is None
    assert fresh.context.trace_id not in (0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x0AF7651916CD43DD)
    assert dict(merged.context.trace_state or {}) == {"a": "1", "b": "2"}
