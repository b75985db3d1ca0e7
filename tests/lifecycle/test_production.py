"""A service's image, built the way its Dockerfile builds it, serving with several workers.

No Docker daemon runs on these machines: the Dockerfile's build stage is run here instead, its
own commands in order (WORKDIR, COPY of the service's files only, RUN) in a fresh folder and a
fresh venv, with git already installed (the one RUN line not repeated is the apt-get that
installs it). The service's CI has the `docker build` job. The runtime comes from the git tag
of appkit's bare repository, as the image's build would take it from the team's git server.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import copier
import httpx
import pytest
import redis
import yaml

from tests.conftest import REDIS_URL, free_port
from tests.helpers import git, git_init
from tests.lifecycle.release import release_v1

PACKAGE = "orders"
KEY = "prod-orders-key-1"
LIMIT = 250


@dataclass
class Image:
    """The service's git checkout and the venv its Dockerfile's build stage made."""

    service: Path
    venv: Path


def build_stage(dockerfile: str) -> list[str]:
    """The build stage's instructions, one a line (continuations joined)."""
    text = re.sub(r"\\\n\s*", " ", dockerfile)
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    second = [i for i, line in enumerate(lines) if line.startswith("FROM ")][1]
    return lines[1:second]


def run_build_stage(service: Path, root: Path) -> Path:
    """Run the Dockerfile's build stage with `/` at `root`; the venv it made."""
    python = root / "bin"  # the image's `python`: a plain interpreter, no venv
    python.mkdir(parents=True)
    (python / "python").symlink_to(sys._base_executable)  # type: ignore[attr-defined]
    environ = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    environ["PATH"] = f"{python}{os.pathsep}/usr/bin:/bin"
    cwd = root
    for instruction in build_stage((service / "Dockerfile").read_text()):
        verb, _, rest = instruction.partition(" ")
        rest = re.sub(r"(?<![\w.])/(venv|src)\b", rf"{root}/\1", rest)
        if verb == "WORKDIR":
            cwd = Path(rest)
            cwd.mkdir(parents=True, exist_ok=True)
        elif verb == "COPY":
            *sources, target = rest.split()
            for source in sources:
                destination = cwd / target if target != "./" else cwd / source
                copy = shutil.copytree if (service / source).is_dir() else shutil.copy2
                copy(service / source, destination)
        elif verb == "ARG":
            name, _, default = rest.partition("=")  # built with no --build-arg: the default
            environ[name] = default.strip('"')
        elif verb == "RUN" and "apt-get install" in rest:
            assert "install -y --no-install-recommends git" in rest  # git is here already
        elif verb == "RUN":
            done = subprocess.run(
                ["sh", "-c", rest], cwd=cwd, env=environ, capture_output=True, text=True
            )
            assert done.returncode == 0, f"{rest}\n{done.stdout}\n{done.stderr}"
        else:
            raise AssertionError(f"the build stage has an instruction this test cannot run: {verb}")
    return root / "venv"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """A service rendered from appkit's tag, built as its Dockerfile builds it."""
    workdir = tmp_path_factory.mktemp("image")
    bare = release_v1(workdir)
    service = workdir / PACKAGE
    copier.run_copy(
        f"file://{bare}", service, data={"project_name": PACKAGE}, defaults=True, quiet=True
    )
    git_init(service, "service from appkit")
    return Image(service, run_build_stage(service, workdir / "root"))


def production_environ(image: Image, database_url: str, prefix: str, workers: int) -> dict:
    """What the image's ENV sets, and what its README says to pass when running it."""
    keys = [
        {
            "key_sha256": hashlib.sha256(KEY.encode()).hexdigest(),
            "org_id": "acme",
            "project_id": "orders",
            "key_id": "k1",
        }
    ]
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("APPKIT_", "VIRTUAL"))}
    return environ | {
        "PATH": f"{image.venv / 'bin'}{os.pathsep}/usr/bin:/bin",
        "APPKIT_ENV": "production",
        "APPKIT_API_KEYS": json.dumps(keys),
        "APPKIT_REDIS_URL": REDIS_URL,
        "APPKIT_REDIS_PREFIX": prefix,
        "APPKIT_DATABASE_URL": database_url,
        "APPKIT_RATELIMIT_DEFAULT": f"{LIMIT}/600",
        "WEB_CONCURRENCY": str(workers),
    }


@pytest.fixture
def prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted afterwards."""
    name = f"test-prod-{os.urandom(6).hex()}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{name}:*"):
        client.delete(key)
    client.close()


def serve(image: Image, environ: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    """Migrate (the README's one-off command), then start the Dockerfile's CMD; its base URL."""
    app_dir = log.parent / "app"  # the final stage's /app: alembic.ini and migrations/
    app_dir.mkdir()
    shutil.copy2(image.service / "alembic.ini", app_dir)
    shutil.copytree(image.service / "migrations", app_dir / "migrations")
    migrated = subprocess.run(
        ["alembic", "upgrade", "head"], cwd=app_dir, env=environ, capture_output=True, text=True
    )
    assert migrated.returncode == 0, migrated.stderr
    cmd = json.loads(
        next(
            line.removeprefix("CMD ")
            for line in (image.service / "Dockerfile").read_text().splitlines()
            if line.startswith("CMD ")
        )
    )
    assert cmd == ["python", "-m", PACKAGE]
    port = free_port()
    command = [str(image.venv / "bin" / cmd[0]), *cmd[1:], "--host=127.0.0.1", f"--port={port}"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=app_dir, env=environ, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"/readyz never answered 200:\n{log.read_text()}")


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(30)


def workers_started(log: Path, expected: int) -> int:
    """How many workers have started, waiting up to 60 s for `expected` of them."""
    deadline = time.monotonic() + 60
    while (started := log.read_text().count("Application startup complete")) < expected:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return started


@pytest.mark.redis
@pytest.mark.postgres
def test_the_image_has_uvloop_and_httptools_and_its_cmd_is_ready_with_two_workers(
    image: Image, postgres_database: str, prefix: str, tmp_path: Path
) -> None:
    probe = subprocess.run(
        [image.venv / "bin" / "python", "-c", "import httptools, uvloop"], capture_output=True
    )
    assert probe.returncode == 0, probe.stderr
    environ = production_environ(image, postgres_database, prefix, workers=2)
    log = tmp_path / "server.log"

    process, base = serve(image, environ, log)
    try:
        ready = httpx.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert workers_started(log, 2) == 2
        assert "Uvicorn running" in log.read_text()
    finally:
        assert stop(process) == 0
    # Every line is JSON, the supervisor's as well as the workers': a collector parses them all.
    records = [json.loads(line) for line in log.read_text().splitlines() if line]
    assert any(record["message"].startswith("Started parent process") for record in records)


@pytest.mark.redis
@pytest.mark.postgres
def test_three_workers_hold_a_limit_exactly_and_flush_usage_at_sigterm(
    image: Image, postgres_database: str, prefix: str, tmp_path: Path
) -> None:
    environ = production_environ(image, postgres_database, prefix, workers=3)
    environ["APPKIT_METRICS_FLUSH_SECONDS"] = "3600"  # no periodic flush: only shutdown's
    log = tmp_path / "server.log"
    process, base = serve(image, environ, log)
    try:
        assert workers_started(log, 3) == 3
        statuses = asyncio.run(concurrent_gets(f"{base}/items", 1000))
        assert usage_of(prefix) == {}  # counted in the workers' memory so far
    finally:
        assert stop(process) == 0

    assert Counter(statuses) == {200: LIMIT, 429: 1000 - LIMIT}
    usage = usage_of(prefix)
    assert sum(map(int, usage.values())) == LIMIT, usage


def usage_of(prefix: str) -> dict[str, str]:
    """The project's all-time usage hash in Redis."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        return client.hgetall(f"{prefix}:usage:{{acme:orders}}")
    finally:
        client.close()


async def concurrent_gets(url: str, count: int) -> list[int]:
    """Statuses of `count` GETs of `url` with the service's key, all in flight together."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(limits=limits, timeout=60, headers=headers) as client:
        responses = await asyncio.gather(*(client.get(url) for _ in range(count)))
    return [response.status_code for response in responses]


@pytest.mark.redis
@pytest.mark.postgres
def test_the_ci_test_job_runs_in_a_fresh_clone(
    image: Image, postgres_database: str, tmp_path: Path
) -> None:
    workflow = yaml.safe_load((image.service / ".github/workflows/ci.yml").read_text())
    job = workflow["jobs"]["test"]
    assert set(job["services"]) == {"postgres", "redis"}
    clone = tmp_path / "clone"
    git("clone", "--quiet", str(image.service), str(clone), cwd=tmp_path)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("APPKIT_", "VIRTUAL"))}
    # The job's environment, its service containers' URLs pointing at this machine's servers.
    environ |= {name: str(value) for name, value in job["env"].items()}
    environ |= {
        "APPKIT_DATABASE_URL": postgres_database,
        "APPKIT_REDIS_URL": REDIS_URL,
        "PATH": f"{image.venv / 'bin'}{os.pathsep}/usr/bin:/bin",  # setup-python's `python`
    }
    runs = [step["run"] for step in job["steps"] if "run" in step]
    install = "python -m pip install -e '.[dev]'"
    assert runs == [install, "appkit-scaffold check", "python -m pytest"]
    for run in runs:
        done = subprocess.run(
            ["bash", "-e", "-c", run], cwd=clone, env=environ, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{run}\n{done.stdout}\n{done.stderr}"
    assert re.search(r"\d+ passed", done.stdout), done.stdout
