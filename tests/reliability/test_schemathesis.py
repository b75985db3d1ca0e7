"""Schemathesis against the service's own OpenAPI document: no input gives a 500."""

from __future__ import annotations

import pytest

from tests.reliability.conftest import ServiceFactory
from tests.reliability.material import new_key, static_keys

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")


def test_no_generated_request_gets_a_500(start_service: ServiceFactory) -> None:
    key = new_key()
    service = start_service(APPKIT_API_KEYS=static_keys((key, "org", "fuzz", "100000/600")))
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    failures = []
    for operation in schema.get_all_operations():
        operation = operation.ok()

        @hypothesis.settings(
            max_examples=25,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        @hypothesis.given(case=operation.as_strategy())
        def check(case: object) -> None:
            for headers in ({"Authorization": f"Bearer {key}"}, {}):
                response = case.call(headers=headers)  # type: ignore[attr-defined]
                if response.status_code >= 500:
                    failures.append((case.method, case.formatted_path, response.status_code))  # type: ignore[attr-defined]

        check()
    assert failures == []
