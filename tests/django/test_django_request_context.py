"""`RequestIdMiddleware` on sync and async Django stacks, through Django's own test clients."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest
from django.http import HttpRequest, JsonResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import path

from appkit_runtime.django.decorators import authenticate_key
from appkit_runtime.request_context import current_request_id
from tests.auth.authority_server import AuthService

view_logger = logging.getLogger("tests.django.views")
LOGGED = ("tests.django.views", "django.request")
# The LOGGING of the middleware's docstring, for the loggers these tests watch.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "appkit_runtime.log_config.RequestIdFilter"}},
    "formatters": {"json": {"()": "appkit_runtime.log_config.log_formatter", "style": "json"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": "json",
        }
    },
    "loggers": {name: {"handlers": ["console"], "propagate": False} for name in LOGGED},
}


def sync_view(request: HttpRequest) -> JsonResponse:
    view_logger.warning("sync view")
    return JsonResponse({"request_id": current_request_id()})


async def async_view(request: HttpRequest) -> JsonResponse:
    view_logger.warning("async view")
    return JsonResponse({"request_id": current_request_id()})


def failing_view(request: HttpRequest) -> JsonResponse:
    raise RuntimeError("boom")


@authenticate_key()
def protected_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"project": request.project_token.project_id})  # type: ignore[attr-defined]


@authenticate_key()
async def async_protected_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"project": request.project_token.project_id})  # type: ignore[attr-defined]


urlpatterns = [
    path("sync/", sync_view),
    path("async/", async_view),
    path("failing/", failing_view),
    path("protected/", protected_view),
    path("async/protected/", async_protected_view),
]


@pytest.fixture(autouse=True)
def _site() -> Iterator[None]:
    middleware = ["appkit_runtime.django.request_context.RequestIdMiddleware"]
    with override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=middleware):
        yield


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Django's `LOGGING` with the runtime's filter and JSON formatter; what it wrote."""
    written = io.StringIO()
    console = {**LOGGING["handlers"]["console"], "stream": written}  # type: ignore[index]
    logging.config.dictConfig({**LOGGING, "handlers": {"console": console}})
    yield written
    for name in LOGGED:
        watched = logging.getLogger(name)
        watched.handlers.clear()
        watched.propagate = True


def records(written: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in written.getvalue().splitlines() if line.strip()]


def test_sync_stack_keeps_an_acceptable_id_and_replaces_a_bad_one(
    json_logs: io.StringIO,
) -> None:
    client = Client()
    kept = client.get("/sync/", headers={"X-Request-ID": "django-1"})
    replaced = client.get("/sync/", headers={"X-Request-ID": "not ok!"})
    made = client.get("/sync/")

    assert kept.headers["X-Request-ID"] == "django-1"
    assert json.loads(kept.content) == {"request_id": "django-1"}
    new_ids = [replaced.headers["X-Request-ID"], made.headers["X-Request-ID"]]
    assert [json.loads(r.content)["request_id"] for r in (replaced, made)] == new_ids
    assert all(len(i) == 32 and i.isalnum() for i in new_ids) and new_ids[0] != new_ids[1]
    lines = records(json_logs)
    assert [(line["message"], line["request_id"]) for line in lines] == [
        ("sync view", "django-1"),
        ("sync view", new_ids[0]),
        ("sync view", new_ids[1]),
    ]
    assert current_request_id() is None  # nothing leaks past the request


async def test_async_stack_echoes_and_logs_the_id(json_logs: io.StringIO) -> None:
    client = AsyncClient()
    kept = await client.get("/async/", headers={"X-Request-ID": "async-1"})
    sync_under_async = await client.get("/sync/", headers={"X-Request-ID": "async-2"})
    replaced = await client.get("/async/", headers={"X-Request-ID": "x" * 129})

    assert kept.headers["X-Request-ID"] == "async-1"
    assert json.loads(kept.content) == {"request_id": "async-1"}
    assert sync_under_async.headers["X-Request-ID"] == "async-2"
    assert json.loads(sync_under_async.content) == {"request_id": "async-2"}
    made = replaced.headers["X-Request-ID"]
    assert made != "x" * 129 and len(made) == 32
    lines = records(json_logs)
    assert [(line["message"], line["request_id"]) for line in lines] == [
        ("async view", "async-1"),
        ("sync view", "async-2"),
        ("async view", made),
    ]


def test_a_500_carries_the_id_in_its_header_and_its_error_log(json_logs: io.StringIO) -> None:
    answer = Client(raise_request_exception=False).get(
        "/failing/", headers={"X-Request-ID": "fail-1"}
    )

    assert answer.status_code == 500 and answer.headers["X-Request-ID"] == "fail-1"
    (line,) = records(json_logs)
    assert (line["logger"], line["level"], line["request_id"]) == (
        "django.request",
        "ERROR",
        "fail-1",
    )


@pytest.mark.parametrize("where", ["sync", "async"])
async def test_the_http_authority_gets_the_request_id(
    monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    authority = AuthService()
    authority.answers[f"live-key-{where}"] = (200, {"org_id": "acme", "project_id": where})
    monkeypatch.setenv("APPKIT_AUTH_BACKEND", "http")
    monkeypatch.setenv("APPKIT_AUTH_URL", authority.url)
    prefix = "" if where == "sync" else "async/"
    headers = {"Authorization": f"Bearer live-key-{where}", "X-Request-ID": f"rid-{where}"}
    try:
        answer = await AsyncClient().get(f"/{prefix}protected/", headers=headers)
    finally:
        authority.stop()

    assert answer.status_code == 200 and json.loads(answer.content) == {"project": where}
    assert answer.headers["X-Request-ID"] == f"rid-{where}"
    (received,) = authority.received
    assert received["headers"]["X-Request-ID"] == f"rid-{where}"
