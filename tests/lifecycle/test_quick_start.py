"""The README's quick start, run as written in a fresh clone on a machine with only Python.

Its port is the one thing changed (8000 may be taken here); the uvicorn it leaves running is
stopped afterwards. The service it makes then passes `check` and `upgrade --dry-run`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port
from tests.helpers import git, git_init
from tests.lifecycle.release import release_v1
from tests.test_project import _readme_commands


def clean_environ() -> dict[str, str]:
    """A shell's environment without this test run's venv or any APPKIT_* setting."""
    venv_bin = str(Path(sys.executable).parent)
    path = [p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin]
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("APPKIT_") and k not in {"VIRTUAL_ENV", "PYTHONPATH"}
    }
    environ["PATH"] = os.pathsep.join(path)
    return environ


def test_the_quick_start_runs_from_a_fresh_clone_and_its_service_upgrades(
    tmp_path: Path,
) -> None:
    quick_start = _readme_commands()[0]
    assert quick_start.count("8000") == 4
    bare = release_v1(tmp_path)
    clone = tmp_path / "appkit"
    git("clone", "--quiet", f"file://{bare}", str(clone), cwd=tmp_path)
    log = tmp_path / "quick-start.log"

    with log.open("w") as out:
        shell = subprocess.Popen(
            ["bash", "-c", quick_start.replace("8000", str(free_port()))],
            cwd=clone,
            env=clean_environ(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = shell.wait(timeout=600)
        finally:
            os.killpg(shell.pid, signal.SIGTERM)  # the uvicorn the quick start left running

    output = log.read_text()
    assert code == 0, output
    # The server the quick start left running shares this output, so its log lines may come
    # after the shell's last echo (CI saw an access line there).
    lines = output.splitlines()
    assert "rate limited: 429" in lines, output
    assert any(line.endswith(" 200") for line in lines), output

    service = tmp_path / "acme-orders"
    scaffold = clone / ".venv" / "bin" / "appkit-scaffold"
    checked = subprocess.run([scaffold, "check"], cwd=service, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The team commits the service; the next version's changes are then shown, nothing touched.
    git_init(service, "acme orders from the quick start")
    dry_run = subprocess.run(
        [scaffold, "upgrade", "--dry-run"], cwd=service, capture_output=True, text=True
    )
    assert dry_run.returncode == 0, dry_run.stdout + dry_run.stderr
    assert git("status", "--porcelain", cwd=service) == ""
