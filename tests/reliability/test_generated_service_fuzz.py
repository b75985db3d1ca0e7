"""Schemathesis against a service generated from the template, as a newcomer runs it: its
`.env` (dev key, in-process Redis), migrated, under uvicorn, on embedded SQLite and on
PostgreSQL → no 5xx."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import ServiceVenv, service_environ
from tests.reliability.material import leaks, new_key

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> dict[str, str]:
    """The service's `.env` database (embedded SQLite), or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        return {}
    return {"database_url": request.getfixturevalue("postgres_database")}


@pytest.fixture
def generated_service(
    service_factory: Callable[..., Path],
    service_venv: ServiceVenv,
    database: dict[str, str],
    tmp_path: Path,
) -> Iterator[tuple[str, str]]:
    """A default service (example endpoint included) with a fresh dev key, started the README's
    way; `(base URL, dev key)`. Killed afterwards, its output checked for the key."""
    key = new_key("dev")
    service = service_factory(package_name="fuzzed", dev_api_key=key)
    shutil.copy(service / ".env.example", service / ".env")
    service_venv.install(service)
    # The environment wins over .env: a limit high enough for the fuzzer to reach the handlers.
    environ = service_environ(ratelimit_default="1000000/60", **database)
    log_path = tmp_path / "uvicorn.log"
    with service_venv.serving(service, "fuzzed.main:app", environ, log_path) as url:
        yield url, key
    assert leaks([log_path.read_text(errors="replace")]) == [], f"key material in {log_path}"


def test_no_generated_request_to_a_generated_service_gets_a_5xx(
    generated_service: tuple[str, str],
) -> None:
    url, key = generated_service
    auth = {"Authorization": f"Bearer {key}"}
    # What the fuzzer finds only with some seeds: ids past the column's range, NUL in text.
    with httpx.Client(base_url=url, headers=auth, timeout=10) as client:
        assert client.get("/items").status_code == 200
        for item_id in (0, -1, 2**31, 2**63, 10**30):
            assert client.get(f"/items/{item_id}").status_code == 422, item_id
        assert client.post("/items", json={"name": "a\x00b"}).status_code == 422
        assert client.post("/items", json={"name": "ünï ✓"}).status_code == 201
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: dict[str, str] = {}  # operation -> the first request that got a 5xx
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @hypothesis.settings(
            max_examples=100,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        @hypothesis.given(case=operation.as_strategy())
        def check(case: object) -> None:
            for headers in (auth, {}):
                response = case.call(headers=headers)  # type: ignore[attr-defined]
                if response.status_code >= 500:
                    example = f"{response.status_code} {case.formatted_path} {case.body!r}"  # type: ignore[attr-defined]
                    failures.setdefault(f"{case.method} {case.path}", example)  # type: ignore[attr-defined]

        check()
    # The example resource's five operations were among those fuzzed.
    assert operations >= 5
    assert failures == {}
