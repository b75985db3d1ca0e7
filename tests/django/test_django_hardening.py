"""Django: malformed authority answers, bad settings and start-up, all answered in one line
or as JSON, never an HTML 500 and never a merged project."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.http import JsonResponse
from django.test import AsyncClient, RequestFactory, override_settings
from django.urls import path

from appkit_runtime.django.checks import check_appkit_settings
from appkit_runtime.django.decorators import authenticate_key, count_request, rate_limit
from appkit_runtime.django.errors import misconfigured_log
from appkit_runtime.redis_pools import close_sync_redis_connections
from appkit_runtime.settings import get_redis_instance, get_settings
from appkit_runtime.tokens import ProjectToken
from tests.auth.authority_server import AuthService, malformed_answers
from tests.conftest import free_port

KEY = "live-key-6e2b17"
TOKEN_JSON = {"org_id": "acme", "project_id": "shop", "ttl": 60}
MALFORMED = malformed_answers(TOKEN_JSON)


@authenticate_key()
@rate_limit()
@count_request()
def sync_items(request):
    return JsonResponse({"project": request.project_token.project_id})


@authenticate_key()
@rate_limit()
@count_request()
async def async_items(request):
    return JsonResponse({"project": request.project_token.project_id})


urlpatterns = [path("sync/items/", sync_items), path("async/items/", async_items)]


@pytest.fixture(autouse=True)
def _urls() -> Iterator[None]:
    with override_settings(ROOT_URLCONF=__name__):
        yield


@pytest.fixture(autouse=True)
def _fresh_log_throttle() -> None:
    """Each test sees the misconfiguration line, whatever logged it a moment before."""
    misconfigured_log.reset()


@pytest.fixture
def authority(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuthService]:
    server = AuthService()
    monkeypatch.setenv("APPKIT_AUTH_BACKEND", "http")
    monkeypatch.setenv("APPKIT_AUTH_URL", server.url)
    get_settings.cache_clear()
    try:
        yield server
    finally:
        server.stop()


def stored_keys() -> list[bytes]:
    redis = get_redis_instance("ratelimit")
    keys = list(redis.scan_iter(match=f"{get_settings().redis_prefix}:*", count=1000))
    close_sync_redis_connections()
    return keys


@pytest.mark.parametrize("where", ["sync", "async"])
@pytest.mark.parametrize(("body", "field"), MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_token_is_503_json_and_writes_nothing(
    authority, body, field, where, caplog
) -> None:
    authority.answers[KEY] = (200, body)
    response = await AsyncClient().get(f"/{where}/items/", headers={"X-API-Key": KEY})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert json.loads(response.content) == {"detail": "Key authority unavailable, retry later"}
    assert stored_keys() == []
    assert f"malformed token: {field} must be" in caplog.text and KEY not in caplog.text


@pytest.mark.parametrize("where", ["sync", "async"])
async def test_a_good_token_passes_the_whole_stack(authority, where) -> None:
    authority.answers[KEY] = (200, TOKEN_JSON)
    response = await AsyncClient().get(f"/{where}/items/", headers={"X-API-Key": KEY})
    assert response.status_code == 200
    assert json.loads(response.content) == {"project": "shop"}
    assert any(b"{acme:shop}" in key for key in stored_keys())


@pytest.mark.parametrize("where", ["sync", "async"])
@pytest.mark.parametrize(
    ("variable", "value"),
    [("APPKIT_RATELIMIT_DEFAULT", "lots"), ("APPKIT_API_KEYS", '[{"key": "k"}]')],
)
async def test_bad_settings_answer_json_503_never_an_html_500(
    monkeypatch, caplog, where, variable, value
) -> None:
    monkeypatch.setenv(variable, value)
    get_settings.cache_clear()
    client = AsyncClient(raise_request_exception=False)
    response = await client.get(f"/{where}/items/", headers={"X-API-Key": KEY})
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {"detail": "Service misconfigured; retry later"}
    assert response.headers["Retry-After"] == "5"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(line.startswith(f"appkit: {variable}:") for line in warnings), warnings
    assert KEY not in caplog.text


def test_the_rate_limiter_alone_answers_bad_settings_as_json(monkeypatch) -> None:
    @rate_limit()
    def view(request):
        return JsonResponse({})

    monkeypatch.setenv("APPKIT_RATELIMIT_DEFAULT", "0/0")
    get_settings.cache_clear()
    request = RequestFactory().get("/")
    request.project_token = ProjectToken("acme", "shop")
    response = view(request)
    assert response.status_code == 503
    assert json.loads(response.content)["detail"] == "Service misconfigured; retry later"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("APPKIT_RATELIMIT_DEFAULT", "lots"),
        ("APPKIT_API_KEYS", '[{"key": "dev-key-1", "org_id": "acme"}]'),
    ],
)
def test_the_system_check_names_the_variable(monkeypatch, variable, value) -> None:
    assert check_appkit_settings() == []
    monkeypatch.setenv(variable, value)
    (error,) = check_appkit_settings()
    assert error.id == "appkit.E001"
    assert error.msg.startswith(f"{variable}:")
    assert "dev-key-1" not in error.msg


PROJECT = {
    "manage.py": """
        import sys
        from django.core.management import execute_from_command_line
        execute_from_command_line(sys.argv)
    """,
    "proj/__init__.py": "",
    "proj/settings.py": """
        SECRET_KEY = "test"
        DEBUG = False
        ALLOWED_HOSTS = ["*"]
        ROOT_URLCONF = "proj.urls"
        INSTALLED_APPS = ["appkit_runtime.django"]
        MIDDLEWARE = ["appkit_runtime.django.ratelimit.RateLimitMiddleware"]
    """,
    "proj/urls.py": "urlpatterns = []\n",
    "proj/asgi.py": """
        from django.core.asgi import get_asgi_application
        application = get_asgi_application()
    """,
}


@pytest.fixture
def django_project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A Django project with `appkit_runtime.django` installed, and the environment to run it."""
    for name, text in PROJECT.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "proj.settings", "PYTHONPATH": str(tmp_path)}
    return tmp_path, env


BAD_SETTINGS = [
    ("APPKIT_RATELIMIT_DEFAULT", "lots", "APPKIT_RATELIMIT_DEFAULT: expected N/S"),
    ("APPKIT_API_KEYS", '[{"key": "dev-key-1"}]', "APPKIT_API_KEYS: Field required (at 0.org_id)"),
    ("APPKIT_REDIS_URL", "redis://127.0.0.1:6379/7x", "APPKIT_REDIS_URL: database '7x' is not"),
    ("APPKIT_REDIS_URL", "redis://", "APPKIT_REDIS_URL: names no host"),
]


def test_manage_py_check_passes_on_good_settings(django_project) -> None:
    folder, env = django_project
    run = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=folder, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "no issues" in run.stdout


@pytest.mark.parametrize(("variable", "value", "line"), BAD_SETTINGS)
def test_manage_py_check_fails_with_one_line(django_project, variable, value, line) -> None:
    folder, env = django_project
    env[variable] = value
    run = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=folder, env=env, capture_output=True, text=True
    )
    assert run.returncode == 1
    assert run.stderr.splitlines() == [run.stderr.strip()]
    assert run.stderr.startswith(f"appkit: {line}")
    assert "dev-key-1" not in run.stderr


@pytest.mark.parametrize(("variable", "value", "line"), BAD_SETTINGS)
def test_uvicorn_refuses_to_start_with_one_line(django_project, variable, value, line) -> None:
    folder, env = django_project
    env[variable] = value
    command = [sys.executable, "-m", "uvicorn", "proj.asgi:application", "--port"]
    run = subprocess.run(
        [*command, str(free_port())],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert [x for x in run.stderr.splitlines() if x.startswith("appkit:")] == [
        run.stderr.strip().splitlines()[-1]
    ]
    assert run.stderr.strip().splitlines()[-1].startswith(f"appkit: {line}")
