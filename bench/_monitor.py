"""Count the Redis commands a stretch of load sends, split into client-sent and in-script.

`INFO commandstats` also counts what Lua scripts run inside Redis, and so does
`total_commands_processed`; `MONITOR` marks those with `[0 lua]`, which is what tells the
two apart.
"""

from __future__ import annotations

import re
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field

from bench._redis_server import BENCH_COMMANDS

_LINE = re.compile(rb'^\+[\d.]+ \[\d+ ([^\]]+)\] "([^"]+)"')
_SENTINEL = "appkit-bench-monitor-end"


@dataclass
class CommandTally:
    """Commands seen, by name: those clients sent and those scripts ran."""

    client: Counter[str] = field(default_factory=Counter)
    script: Counter[str] = field(default_factory=Counter)


class Monitor:
    """`with Monitor(port) as tally:` counts every command Redis runs inside the block."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.tally = CommandTally()
        self._socket = socket.create_connection(("127.0.0.1", port))
        self._thread = threading.Thread(target=self._read, daemon=True)

    def __enter__(self) -> CommandTally:
        self._socket.sendall(b"MONITOR\r\n")
        self._buffer = b""
        while b"\r\n" not in self._buffer:
            self._buffer += self._socket.recv(65536)
        self._buffer = self._buffer.split(b"\r\n", 1)[1]
        self._thread.start()
        return self.tally

    def __exit__(self, *exc_info: object) -> None:
        with socket.create_connection(("127.0.0.1", self.port)) as other:
            other.sendall(f"ECHO {_SENTINEL}\r\n".encode())
            other.recv(1024)
        self._thread.join(30)
        self._socket.close()

    def _read(self) -> None:
        while True:
            while b"\r\n" not in self._buffer:
                chunk = self._socket.recv(1 << 20)
                if not chunk:
                    return
                self._buffer += chunk
            lines = self._buffer.split(b"\r\n")
            self._buffer = lines.pop()
            for line in lines:
                match = _LINE.match(line)
                if match is None:
                    continue
                source, command = match[1], match[2].decode().lower()
                if command == "echo" and _SENTINEL.encode() in line:
                    return
                if command in BENCH_COMMANDS:
                    continue
                side = self.tally.script if source == b"lua" else self.tally.client
                side[command] += 1
