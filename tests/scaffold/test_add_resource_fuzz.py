"""Schemathesis against the routes add-resource writes, served by uvicorn on PostgreSQL: no
generated request (every field type, scoped routes) gets a 5xx."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import ServiceVenv, service_environ
from tests.scaffold.conftest import Result
from tests.scaffold.test_add_resource import add_resources

# A valid order, for the resource with a field of every type.
BODY = {
    "sku": "fuzz-1",
    "title": "t",
    "qty": 1,
    "big": 2,
    "price": 1.5,
    "total": "3.25",
    "paid": True,
    "due": None,
    "at": "2024-01-01T00:00:00+00:00",
    "ref": "00000000-0000-4000-8000-000000000001",
    "meta": {"a": [1]},
}
schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")


@pytest.fixture
def resource_service(
    scaffold: Callable[..., Result],
    service_factory: Callable[..., Path],
    service_venv: ServiceVenv,
    postgres_database: str,
    tmp_path: Path,
) -> Iterator[tuple[str, str]]:
    """The two resources in a service migrated on PostgreSQL, under uvicorn; `(URL, key)`."""
    service = service_factory(package_name="fuzzshop")
    add_resources(scaffold, service)
    service_venv.install(service)
    key = f"ak_fuzz_{secrets.token_urlsafe(24)}"
    entry = {"key": key, "org_id": "fuzz", "project_id": "fuzz", "rate_limit": "1000000/60"}
    entry["scopes"] = ["people:read", "people:write"]
    environ = service_environ(
        env="development", api_keys=json.dumps([entry]), database_url=postgres_database
    )
    with service_venv.serving(
        service, "fuzzshop.main:app", environ, tmp_path / "uvicorn.log"
    ) as url:
        yield url, key


def test_no_generated_request_to_the_resources_gets_a_5xx(
    resource_service: tuple[str, str],
) -> None:
    url, key = resource_service
    auth = {"Authorization": f"Bearer {key}"}
    # What a fuzzer finds only with some seeds: out-of-range numbers and ids, NUL, a bad cursor.
    with httpx.Client(base_url=url, headers=auth, timeout=10) as client:
        for path in ("/orders", "/people"):
            assert client.get(path, params={"cursor": "OTk5OTk5OTk5OTk5"}).status_code == 422
            for row_id in (0, 2**31, 10**30):
                assert client.get(f"{path}/{row_id}").status_code == 422, row_id
        assert client.post("/people", json={"name": "a\x00b"}).status_code == 422
        order = client.post("/orders", json=BODY).json()
        for moment in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
            assert client.post("/orders", json={**BODY, "at": moment}).status_code == 422
            assert client.patch(f"/orders/{order['id']}", json={"at": moment}).status_code == 422
        moved = client.patch(f"/orders/{order['id']}", json={"at": "2024-06-01T12:00:00+02:00"})
        assert moved.json()["at"] == "2024-06-01T10:00:00Z"
        assert client.post("/people", json={"name": "ünï ✓"}).status_code == 201
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: dict[str, str] = {}
    reached: set[str] = set()  # operations whose handler answered, past the protected chain
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith(("/orders", "/people")):
            continue
        operations += 1

        @hypothesis.settings(
            max_examples=60,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        @hypothesis.given(case=operation.as_strategy())
        def check(case: object) -> None:
            for headers in (auth, {}):
                response = case.call(headers=headers)  # type: ignore[attr-defined]
                if headers and response.status_code not in (401, 403, 429):
                    reached.add(f"{case.method} {case.path}")  # type: ignore[attr-defined]
                if response.status_code >= 500:
                    example = f"{response.status_code} {case.formatted_path} {case.body!r}"  # type: ignore[attr-defined]
                    failures.setdefault(f"{case.method} {case.path}", example)  # type: ignore[attr-defined]

        check()
    # Five operations for each resource, each fuzzed past the protected chain.
    assert operations == 10
    assert len(reached) == 10, reached
    assert failures == {}
