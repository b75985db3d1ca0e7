"""A team's world outside this checkout: appkit released to a bare repository, fresh venvs.

`release_v1` publishes the working tree (uncommitted edits included) as a bare repository
tagged `v<version>`, the way a team's git server holds appkit; `release_v2` pushes a later
version to it. `FreshVenv` is a virtualenv that has never seen appkit: nothing but pip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT, git, git_init, runtime_version

V1 = f"v{runtime_version()}"
_major, _minor, _ = runtime_version().split(".")
V2_VERSION = f"{_major}.{int(_minor) + 1}.0"
V2 = f"v{V2_VERSION}"
# What v2 changes in the runtime: the docstring of `/healthz`'s function.
V2_HEALTHZ_DOC = "(v2) "


def release_v1(workdir: Path) -> Path:
    """Publish the working tree as `workdir/appkit.git` tagged v<version>; return the bare repo."""
    checkout = workdir / "appkit-v1"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    for name in filter(None, listed.stdout.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted on disk is not part of the release
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, checkout / name)
    git_init(checkout, f"appkit {V1}")
    git("tag", V1, cwd=checkout)
    bare = workdir / "appkit.git"
    git("clone", "--quiet", "--bare", str(checkout), str(bare), cwd=workdir)
    return bare


def release_v2(bare: Path, workdir: Path) -> Path:
    """Push v2 to `bare`: a minor version up, a template file and a runtime function changed."""
    checkout = workdir / "appkit-v2"
    git("clone", "--quiet", str(bare), str(checkout), cwd=workdir)
    _edit(checkout / "appkit_runtime" / "_version.py", runtime_version(), V2_VERSION)
    _edit(checkout / "template" / "README.md.jinja", "## Deploy it\n", "## Deploy it (v2)\n")
    health = checkout / "appkit_runtime" / "fastapi" / "health.py"
    text = health.read_text()
    changed = re.sub(r'(async def healthz\(.*\n    """)', rf"\g<1>{V2_HEALTHZ_DOC}", text)
    assert changed != text, "healthz has no docstring to change"
    health.write_text(changed)
    git("commit", "--quiet", "-am", f"appkit {V2}", cwd=checkout)
    git("tag", V2, cwd=checkout)
    git("push", "--quiet", "origin", "HEAD", V2, cwd=checkout)
    return checkout


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not once in {path}"
    path.write_text(text.replace(old, new))


def build_wheels(checkout: Path, into: Path) -> list[Path]:
    """`python -m build` of `checkout`: the runtime's wheel and sdist, in `into`."""
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(into), str(checkout)],
        check=True,
        capture_output=True,
    )
    return sorted(into.iterdir())


class FreshVenv:
    """A virtualenv with nothing but pip, and the environment to run commands in it."""

    def __init__(self, path: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        self.path = path
        self.bin = path / "bin"

    def environ(self, **extra: str) -> dict[str, str]:
        """The environment of a shell with this venv activated (APPKIT_* kept for tests)."""
        environ = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
        environ.update(PATH=f"{self.bin}{os.pathsep}{environ['PATH']}", VIRTUAL_ENV=str(self.path))
        environ.update(extra)
        return environ

    def shell(self, command: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
        """Run `command` as a user would type it, in this venv."""
        return subprocess.run(
            ["bash", "-c", command],
            cwd=cwd,
            env=self.environ(**extra),
            capture_output=True,
            text=True,
        )

    def run(
        self, *args: str | Path, cwd: Path, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run one of this venv's programs (`python`, `appkit-scaffold`, ...)."""
        program, *rest = args
        return subprocess.run(
            [str(self.bin / str(program)), *map(str, rest)],
            cwd=cwd,
            env=env or self.environ(),
            capture_output=True,
            text=True,
        )

    def runtime(self) -> tuple[str, dict[str, object] | None]:
        """The installed appkit-runtime's version and its `direct_url.json`, if any."""
        probe = self.run(
            "python",
            "-c",
            "import importlib.metadata as m, json; d = m.distribution('appkit-runtime'); "
            "print(json.dumps([d.version, d.read_text('direct_url.json')]))",
            cwd=self.path,
        )
        assert probe.returncode == 0, probe.stderr
        version, direct_url = json.loads(probe.stdout)
        return version, json.loads(direct_url) if direct_url else None


def install_commands(service: Path) -> tuple[str, str]:
    """The service README's install command for pip and, from its comment, for uv."""
    readme = (service / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("pip install"))
    pip_command, _, comment = line.partition("#")
    uv_command = comment.split("or:", 1)[1]
    assert uv_command.strip().startswith("uv pip install"), line
    return pip_command.strip(), uv_command.strip()
