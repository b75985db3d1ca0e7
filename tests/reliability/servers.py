"""Servers the reliability tests own and break: the service under uvicorn, a key authority
and a TCP proxy in front of PostgreSQL. Each runs on a loopback port and stops in teardown.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.reliability.service_app:app"


def wait_for_port(port: int, *, seconds: float = 15.0) -> None:
    """Return once something accepts connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


class ServiceProcess:
    """The test service (`service_app.py`) under uvicorn in a subprocess; stderr to a file."""

    def __init__(self, port: int, env: Mapping[str, str], log_path: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", APP, "--host", "127.0.0.1"]
                + ["--port", str(self.port), "--log-level", "info"]
                # Load tests hold hundreds of idle keep-alive connections between requests.
                + ["--timeout-keep-alive", "60"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited at start-up:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"the service did not start:\n{self.log()}")

    def terminate(self) -> int:
        """SIGTERM, as an orchestrator stops a pod; the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


class KeyAuthority(ThreadingHTTPServer):
    """An `http` key authority whose `mode` the test sets: ok, slow, garbage or html.

    `down()` closes its port and `up()` opens the same port again. In `slow` mode each call
    is held until `release()` (or 30 s), longer than any time-out the service uses.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _AuthorityHandler)
        self.tokens: dict[str, dict[str, Any]] = {}
        self.mode = "ok"
        self.held = 0
        self.calls = 0
        self._lock = threading.Condition()
        self._release = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/keys/resolve"

    def release(self) -> None:
        self._release.set()

    def down(self) -> None:
        self.release()
        self.shutdown()
        self.server_close()
        self._thread.join()

    def wait_held(self, count: int, seconds: float = 10.0) -> bool:
        """Block until `count` calls are being held (slow mode); False after `seconds`."""
        with self._lock:
            return self._lock.wait_for(lambda: self.held >= count, seconds)

    def hold(self) -> None:
        with self._lock:
            self.held += 1
            self._lock.notify_all()
        try:
            self._release.wait(30)
        finally:
            with self._lock:
                self.held -= 1


class _AuthorityHandler(BaseHTTPRequestHandler):
    server: KeyAuthority

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.calls += 1
        mode = self.server.mode
        if mode == "slow":
            self.server.hold()
        if mode == "garbage":
            self._answer(200, b'{"org_id": ')
        elif mode == "html":
            self._answer(200, b"<html>maintenance</html>")
        elif mode == "error":
            self._answer(500, b'{"detail": "boom"}')
        elif body.get("key") in self.server.tokens:
            self._answer(200, json.dumps(self.server.tokens[body["key"]]).encode())
        else:
            self._answer(404, b'{"detail": "unknown key"}')

    def _answer(self, status: int, data: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the service gave up waiting (its time-out) and closed the connection

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the default handler writes every request to stderr."""


class TcpProxy:
    """A TCP proxy on a loopback port in front of `target`; `cut()` closes the port and every
    open connection (the database is down), `restore()` listens on the same port again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = _free_port()
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            doomed, self._connections = self._connections, set()
        for sock in doomed:
            _close(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._connections |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with self._lock:
                    self._connections.discard(sock)
                _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def service_env(**variables: str) -> dict[str, str]:
    """The test process's environment with `APPKIT_*` overrides (and no `.env` surprises)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(variables)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
