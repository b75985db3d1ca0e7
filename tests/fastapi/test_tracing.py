"""When tracing is on, and that it costs nothing (not even an import) when it is off."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from appkit_runtime.tracing import tracing_requested
from tests.helpers import service_environ

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
             or m == "appkit_runtime.fastapi.server_spans"))
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
    assert any(m.startswith("opentelemetry.exporter") for m in modules) is loaded
