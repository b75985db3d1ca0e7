"""A rendered service's billing instructions work as written: the `.env.example` lines turn
the usage stream on, and the README's `usage` commands run against real servers."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from appkit_runtime.settings import get_settings, load_settings
from tests.conftest import free_port


def billing_commands(readme: str) -> list[list[str]]:
    """The `python -m appkit_runtime.manage usage ...` lines of the README's Bill usage part."""
    part = readme.split("## Bill usage", 1)[1].split("\n## ", 1)[0]
    block = part.split("```sh\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    return [shlex.split(line.split("#")[0]) for line in block.splitlines() if "manage" in line]


def test_the_env_example_lines_turn_the_stream_on(
    service_factory: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    service = service_factory()
    example = (service / ".env.example").read_text()
    part = example.split("# Usage to billing", 1)[1]
    lines = [line[2:] for line in part.splitlines() if re.match(r"# APPKIT_\w+=", line)]
    assert lines, "the .env.example shows no billing variables"
    for variable in ("APPKIT_USAGE_STREAM", "APPKIT_DATABASE_URL_USAGE"):
        monkeypatch.delenv(variable, raising=False)
    (service / ".env").write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(service)
    settings = load_settings()
    assert settings.usage_stream is True
    assert settings.database_url_for("usage")[0], "no sink database in the example"
    get_settings.cache_clear()


@pytest.mark.redis
def test_the_readme_usage_commands_run(
    service_factory: Callable[..., Path], postgres_database: str, real_redis: str
) -> None:
    service = service_factory()
    commands = billing_commands((service / "README.md").read_text())
    assert [c[3:5] for c in commands] == [
        ["usage", "init"],
        ["usage", "drain"],
        ["usage", "show"],
    ]
    env = {
        **os.environ,
        "APPKIT_USAGE_STREAM": "true",
        "APPKIT_REDIS_URL": real_redis,
        "APPKIT_DATABASE_URL_USAGE": postgres_database,
    }
    for command in commands:
        argv = [
            os.path.expandvars(arg.replace("$APPKIT_DATABASE_URL_USAGE", postgres_database))
            for arg in command
        ]
        assert argv[:3] == ["python", "-m", "appkit_runtime.manage"]
        argv = [sys.executable, *argv[1:]] + (["--once"] if argv[4] == "drain" else [])
        if "--metrics-port" in argv:  # the README's port may be taken on this machine
            argv[argv.index("--metrics-port") + 1] = str(free_port())
        done = subprocess.run(
            argv, cwd=service, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, (argv, done.stderr)
    assert "no usage for project dev/" in done.stdout
