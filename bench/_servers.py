"""One uvicorn process per variant: one worker, its own loopback port, the same Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench._redis_server import free_port

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Server:
    """A variant's app module served by uvicorn in a child process."""

    name: str
    module: str
    env: dict[str, str] = field(default_factory=dict)
    uvicorn_args: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    # Where the server's stdout and stderr go (a file, as a container's log pipe); inherited
    # when None.
    output: Path | None = None
    # The checkout whose `appkit_runtime` and `bench` the server imports (another one to
    # measure it beside this one).
    source: Path = REPO

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        # A scratch working directory, so no `.env` file of the caller's is read.
        self._cwd = tempfile.TemporaryDirectory(prefix=f"appkit-bench-{self.name}-")
        env = {**os.environ, "PYTHONPATH": str(self.source), **self.env}
        env = {k: v for k, v in env.items() if not k.startswith("APPKIT_") or k in self.env}
        log = self.output.open("ab") if self.output is not None else None
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                self.module,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
                "--no-access-log",
                "--log-level",
                "warning",
                *self.uvicorn_args,
            ],
            cwd=self._cwd.name,
            env=env,
            stdout=log,
            stderr=log,
        )
        if log is not None:
            log.close()  # the child holds its own descriptor

    def wait_ready(self, path: str, headers: dict[str, str], timeout: float = 30.0) -> None:
        """Block until `path` answers 200; exit with the variant's name when it never does."""
        deadline = time.monotonic() + timeout
        request = urllib.request.Request(self.base_url + path, headers=headers)
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise SystemExit(f"bench: {self.name} exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise SystemExit(f"bench: {self.name} did not answer 200 on {path} in {timeout:.0f} s")

    def rss_kib(self) -> int:
        """Resident memory of the server process, in KiB."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS line")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if hasattr(self, "_cwd"):
            self._cwd.cleanup()
