"""The production files every rendered service carries pass their linters.

hadolint on the Dockerfile, actionlint on the CI workflow and the compose specification's
schema on compose.yaml, for every combination of answers (rendering only, nothing installed).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.template.test_copy import COMBINATIONS

Factory = Callable[..., Path]

TOOLS = Path(sys.executable).parent


def lint(*command: str | Path, cwd: Path) -> None:
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize(("database", "auth_backend", "include_example"), COMBINATIONS)
def test_every_combination_passes_hadolint_actionlint_and_the_compose_schema(
    service_factory: Factory, database: str, auth_backend: str, include_example: bool
) -> None:
    service = service_factory(
        package_name="svc",
        database=database,
        auth_backend=auth_backend,
        include_example=include_example,
    )

    lint(TOOLS / "hadolint", "--failure-threshold", "info", "Dockerfile", cwd=service)
    lint(TOOLS / "actionlint", ".github/workflows/ci.yml", cwd=service)
    lint(
        TOOLS / "check-jsonschema",
        "--builtin-schema",
        "vendor.compose-spec",
        "compose.yaml",
        cwd=service,
    )
    compose = yaml.safe_load((service / "compose.yaml").read_text())
    waits_for = compose["services"]["svc"]["depends_on"]
    assert waits_for["redis"] == {"condition": "service_healthy"}
    assert waits_for["migrate"] == {"condition": "service_completed_successfully"}
    assert ("postgres" in waits_for) == (database == "postgresql")
    assert compose["services"]["migrate"]["command"] == ["alembic", "upgrade", "head"]
    assert_traces_reach_the_collector(service, compose)


def assert_traces_reach_the_collector(service: Path, compose: dict[str, Any]) -> None:
    """The service is built with the otel extra and exports to the collector's OTLP/HTTP
    receiver, which the mounted configuration runs in a traces pipeline."""
    app, collector = compose["services"]["svc"], compose["services"]["otel-collector"]
    assert app["build"]["args"] == {"EXTRAS": "[otel]"}
    pyproject = tomllib.loads((service / "pyproject.toml").read_text())
    (otel,) = pyproject["project"]["optional-dependencies"]["otel"]
    assert otel.startswith("appkit-runtime[otel]")
    assert 'pip install --no-cache-dir ".${EXTRAS}"' in (service / "Dockerfile").read_text()
    endpoint = urlsplit(app["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert (endpoint.scheme, endpoint.hostname) == ("http", "otel-collector")
    assert app["depends_on"]["otel-collector"] == {"condition": "service_started"}
    assert collector["image"].startswith("otel/opentelemetry-collector:")
    (mount,) = collector["volumes"]
    source, target, mode = mount.split(":")
    assert collector["command"] == [f"--config={target}"] and mode == "ro"
    config = yaml.safe_load((service / source).read_text())
    http = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert http.rsplit(":", 1)[1] == str(endpoint.port or 4318)
    traces = config["service"]["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp"]
    assert set(traces["processors"]) <= config["processors"].keys()
    assert set(traces["exporters"]) <= config["exporters"].keys()


def test_hadolint_fails_on_a_broken_dockerfile(service_factory: Factory) -> None:
    service = service_factory(package_name="svc")
    dockerfile = service / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("USER 10001", "USER root"))

    done = subprocess.run(
        [TOOLS / "hadolint", "Dockerfile"], cwd=service, capture_output=True, text=True
    )

    assert done.returncode != 0
    assert "DL3002" in done.stdout  # the last USER should not be root
