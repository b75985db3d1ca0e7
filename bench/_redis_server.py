"""A redis-server of the bench's own on a free loopback port, so no other client's commands
land in its `INFO commandstats`."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from types import TracebackType

import redis

# Commands the bench itself sends to read the counters; never counted as a variant's.
BENCH_COMMANDS = frozenset({"info", "monitor", "ping", "config|resetstat", "client|setinfo"})


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class BenchRedis:
    """`with BenchRedis() as server:` starts redis-server, `server.url` reaches it."""

    def __init__(self, binary: str | None = None) -> None:
        found = binary or shutil.which("redis-server")
        if found is None:
            raise SystemExit("bench: redis-server not found (apt-get install redis-server)")
        self.binary = found
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.TemporaryDirectory(prefix="appkit-bench-redis-")
        self._process: subprocess.Popen[bytes] | None = None
        self.client = redis.Redis(host="127.0.0.1", port=self.port)

    def __enter__(self) -> BenchRedis:
        self._process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir.name,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    raise SystemExit("bench: redis-server did not start") from None
                time.sleep(0.05)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.client.close()
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
        self._dir.cleanup()

    def wait_idle(self, quiet_seconds: float = 0.3, timeout: float = 10.0) -> None:
        """Wait until no command has run for `quiet_seconds` (servers drain their backlog)."""
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            total = sum(self.command_calls().values())
            if total == last:
                return
            last = total
            time.sleep(quiet_seconds)

    def version(self) -> str:
        return str(self.client.info("server")["redis_version"])

    def command_calls(self) -> dict[str, int]:
        """Calls per command since start (`INFO commandstats`), bench's own left out.

        These include the commands that Lua scripts run inside Redis.
        """
        stats = self.client.info("commandstats")
        calls = {
            name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()
        }
        return {name: n for name, n in calls.items() if name not in BENCH_COMMANDS}
