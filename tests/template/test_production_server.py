"""The service's production server, `python -m <package>`: its worker count and bad input."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import ROOT

SERVER = ROOT / "template" / "src" / "{{ package_name }}" / "__main__.py.jinja"


def package(tmp_path: Path) -> Path:
    """A package `service` whose __main__ is the template's server (main.py is never imported)."""
    folder = tmp_path / "service"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "__main__.py").write_text(SERVER.read_text().replace("{{ package_name }}", "service"))
    return folder


def server_module(tmp_path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("server", package(tmp_path) / "__main__.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_workers_default_to_the_usable_cpus_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = server_module(tmp_path)

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(3)))
    assert "--workers=3" in server.uvicorn_arguments({})
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    assert "--workers=8" in server.uvicorn_arguments({})
    assert "--workers=5" in server.uvicorn_arguments({"WEB_CONCURRENCY": "5"})


def test_the_proxy_headers_follow_the_trusted_proxies(tmp_path: Path) -> None:
    server = server_module(tmp_path)

    assert "--no-proxy-headers" in server.uvicorn_arguments({"APPKIT_TRUSTED_PROXIES": " "})
    trusted = server.uvicorn_arguments({"APPKIT_TRUSTED_PROXIES": "10.0.0.0/8,::1"})
    assert trusted[-2:] == ["--proxy-headers", "--forwarded-allow-ips=10.0.0.0/8,::1"]
    assert "--no-access-log" in trusted


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5"])
def test_a_bad_web_concurrency_is_one_line_and_exit_1(tmp_path: Path, value: str) -> None:
    package(tmp_path)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("APPKIT_")}

    done = subprocess.run(
        [sys.executable, "-m", "service"],
        cwd=tmp_path,
        env=environ | {"WEB_CONCURRENCY": value},
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert done.returncode == 1
    expected = f"WEB_CONCURRENCY must be a whole number of at least 1, got {value!r}\n"
    assert done.stderr == expected


def test_bad_settings_stop_the_server_with_one_line_and_exit_1(tmp_path: Path) -> None:
    package(tmp_path)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("APPKIT_")}

    # Before the check, uvicorn's supervisor restarted each worker that exited, forever.
    done = subprocess.run(
        [sys.executable, "-m", "service", "--port=0"],
        cwd=tmp_path,
        env=environ | {"APPKIT_REDIS_URL": "redis://", "WEB_CONCURRENCY": "2"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1
    assert done.stderr == "appkit: APPKIT_REDIS_URL: names no host\n"
