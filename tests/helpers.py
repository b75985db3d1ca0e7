"""Helpers shared by the tests, in Copier's test style: trees from dicts, git repos, services.

`build_template_repo` copies the template from the working tree (uncommitted edits included)
into a throwaway git repository, so template tests test what is on disk.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# The files of this repository that make the template; nothing else reaches a template repo.
TEMPLATE_FILES = ("copier.yml", "template", "appkit_runtime/_version.py")

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "Copier Test",
    "GIT_AUTHOR_EMAIL": "test@copier",
    "GIT_COMMITTER_NAME": "Copier Test",
    "GIT_COMMITTER_EMAIL": "test@copier",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def build_file_tree(spec: Mapping[str | Path, str | bytes], dedent: bool = True) -> None:
    """Write each `{path: content}`, making parent folders; text is dedented by default."""
    for path, content in spec.items():
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content) if dedent else content, encoding="utf-8")


def git(*args: str, cwd: Path) -> str:
    """Run git in `cwd` with a fixed author and no user or system configuration."""
    env = {**os.environ, **_GIT_ENV}
    command = ["git", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args]
    done = subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return done.stdout


def git_init(path: Path, message: str = "hello world") -> None:
    """Make `path` a git repository with everything in it committed."""
    git("init", "--quiet", cwd=path)
    git_save(path, message)


def git_save(path: Path, message: str = "Test commit", tag: str | None = None) -> None:
    """Commit everything in `path` (even nothing) and optionally tag the commit."""
    git("add", "--all", cwd=path)
    git("commit", "--quiet", "--allow-empty", "-m", message, cwd=path)
    if tag:
        git("tag", tag, cwd=path)


def runtime_version() -> str:
    """The runtime's `__version__`, read from its one version file."""
    namespace: dict[str, Any] = {}
    exec((ROOT / "appkit_runtime" / "_version.py").read_text(), namespace)
    return str(namespace["__version__"])


def build_template_repo(dest: Path, tag: str | None = None) -> Path:
    """Copy the template from the working tree into a new git repo at `dest`, commit, tag.

    `tag` defaults to `v<runtime version>`, as a release of this repository is tagged.
    """
    for name in TEMPLATE_FILES:
        source, target = ROOT / name, dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    git_init(dest, "template from the working tree")
    git("tag", tag or f"v{runtime_version()}", cwd=dest)
    return dest


def render_service(template: Path, dest: Path, **data: Any) -> Path:
    """Render the template's HEAD into `dest` with `data` over the defaults; return `dest`."""
    import copier

    copier.run_copy(
        str(template), dest, data=data, defaults=True, vcs_ref="HEAD", unsafe=True, quiet=True
    )
    return dest


def service_environ(**appkit: str) -> dict[str, str]:
    """This process's environment without any `APPKIT_*` variable, plus `appkit` ones."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("APPKIT_")}
    environ.update({f"APPKIT_{key.upper()}": value for key, value in appkit.items()})
    return environ


def serve_once(
    directory: Path,
    environ: Mapping[str, str],
    path: str,
    headers: Mapping[str, str] | None = None,
    preamble: str = "",
) -> tuple[Any, str]:
    """Run `service:app` of `directory` under uvicorn (`preamble` first, in its process), GET
    `path`, stop it with SIGTERM; the answer and everything the process wrote."""
    import signal

    import httpx

    from tests.conftest import free_port
    from tests.template.test_service import wait_until_listening

    port = free_port()
    script = f"{preamble}\nimport uvicorn\nuvicorn.run('service:app', port={port})\n"
    output = directory / f"uvicorn-{port}.log"
    with output.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=directory,
            env={"PATH": "/usr/bin:/bin", **environ},
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_until_listening(port, server)
            answer = httpx.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=10)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    return answer, output.read_text()


def passed(run: subprocess.CompletedProcess[str]) -> int:
    """How many tests a pytest run passed; fails unless it passed them all and nothing else."""
    assert run.returncode == 0, run.stdout
    summary = run.stdout.strip().splitlines()[-1]
    # pytest adds "(0:01:02)" to a run longer than a minute.
    assert re.fullmatch(r"=* ?\d+ passed in [\d.]+s( \(\d+:\d\d:\d\d\))? ?=*", summary), run.stdout
    return int(summary.strip("= ").split()[0])


class ServiceVenv:
    """A virtualenv layered on this test run's environment, for installing rendered services.

    It sees the working tree's `appkit_runtime` and every package of the running interpreter
    (so nothing is downloaded for them); services are installed into it with
    `pip install --no-deps -e`, which leaves the running environment untouched.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.python = path / "bin" / "python"

    def create(self) -> ServiceVenv:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", self.path], check=True)
        purelib = sysconfig.get_paths()["purelib"]
        site_packages = Path(
            self.run_python("import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
        )
        # A .pth line starting with `import` runs: addsitedir also reads that folder's .pth
        # files, where editable installs live.
        layers = f"{ROOT}\nimport site; site.addsitedir({purelib!r})\n"
        (site_packages / "appkit-test-layers.pth").write_text(layers, encoding="utf-8")
        # The services' build backend, and what it needs for editable installs.
        missing = [name for name in ("hatchling", "editables") if not self.has_module(name)]
        if missing:
            self.pip("install", "--quiet", *missing)
        return self

    def has_module(self, name: str) -> bool:
        code = f"import importlib.util; print(importlib.util.find_spec({name!r}) is not None)"
        return self.run_python(code).strip() == "True"

    def run_python(self, code: str) -> str:
        done = subprocess.run([self.python, "-c", code], check=True, capture_output=True, text=True)
        return done.stdout

    def pip(self, *args: str) -> None:
        done = self.run("pip", "--disable-pip-version-check", *args, cwd=self.path)
        if done.returncode != 0:
            raise RuntimeError(f"pip {' '.join(args)} failed:\n{done.stdout}")

    def install(self, service: Path) -> None:
        """Install a rendered service, editable, without touching its dependencies."""
        self.pip("install", "--quiet", "--no-deps", "--no-build-isolation", "-e", str(service))

    def run(
        self,
        *args: str | Path,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        timeout: float = 240,
    ) -> subprocess.CompletedProcess[str]:
        """Run `python -m <args>` in `cwd`; the output is in `.stdout` (stderr merged)."""
        return subprocess.run(
            [self.python, "-m", *map(str, args)],
            cwd=cwd,
            env=dict(env) if env is not None else service_environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )

    @contextmanager
    def serving(
        self, service: Path, app: str, env: Mapping[str, str], log_path: Path
    ) -> Iterator[str]:
        """The service migrated (`alembic upgrade head`) and under uvicorn; its base URL.

        uvicorn's output goes to `log_path`, for the caller to read after the block.
        """
        from tests.conftest import free_port  # tests.conftest imports this module
        from tests.reliability.servers import wait_for_port

        migrate = self.run("alembic", "upgrade", "head", cwd=service, env=env, timeout=60)
        assert migrate.returncode == 0, migrate.stdout
        port = free_port()
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [self.python, "-m", "uvicorn", app, "--port", str(port)],
                cwd=service,
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_port(port, seconds=30)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(30)
