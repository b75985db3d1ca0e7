"""A key authority on 127.0.0.1 for the tests: a real HTTP server, no mocks."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class AuthService(ThreadingHTTPServer):
    """A key authority: answers from `answers` (status, body) by key, records what it got."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers: dict[str, tuple[int, Any]] = {}
        self.received: list[dict[str, Any]] = []
        self.delay = 0.0
        self.thread = threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/keys/resolve"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join()


class _Handler(BaseHTTPRequestHandler):
    server: AuthService

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.received.append({"body": body, "headers": dict(self.headers)})
        time.sleep(self.server.delay)
        status, answer = self.server.answers.get(body["key"], (404, {"detail": "unknown"}))
        data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the default handler writes every request to stderr."""


def malformed_answers(token: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """200 answers that are not tokens, by test id, with the field the refusal must name."""
    return {
        "null-ids": ({**token, "org_id": None, "project_id": None}, "org_id"),
        "empty-org": ({**token, "org_id": ""}, "org_id"),
        "list-and-dict-ids": ({**token, "org_id": ["a"], "project_id": {"b": 1}}, "org_id"),
        "number-project": ({**token, "project_id": 7}, "project_id"),
        "overlong-project": ({**token, "project_id": "p" * 257}, "project_id"),
        "line-break-in-org": ({**token, "org_id": "acme\r\nFAKE line"}, "org_id"),
        "nul-in-project": ({**token, "project_id": "sh\x00op"}, "project_id"),
        "missing-org": ({k: v for k, v in token.items() if k != "org_id"}, "org_id"),
        "scopes-a-string": ({**token, "scopes": "read"}, "scopes"),
        "scopes-a-dict": ({**token, "scopes": {"read": True}}, "scopes"),
        "scopes-not-strings": ({**token, "scopes": ["read", 1]}, "scopes"),
        "product-a-number": ({**token, "product": 3}, "product"),
        "key-id-a-list": ({**token, "key_id": ["k"]}, "key_id"),
        "line-break-in-key-id": ({**token, "key_id": "k1\nFAKE line"}, "key_id"),
        "rate-limit-a-number": ({**token, "rate_limit": 100}, "rate_limit"),
        "rate-limit-zero": ({**token, "rate_limit": "0/60"}, "rate_limit"),
        "ttl-true": ({**token, "ttl": True}, "ttl"),
        "ttl-negative": ({**token, "ttl": -1}, "ttl"),
        "ttl-nan": ({**token, "ttl": float("nan")}, "ttl"),
        "ttl-infinite": ({**token, "ttl": float("inf")}, "ttl"),
        "ttl-a-string": ({**token, "ttl": "10"}, "ttl"),
        "a-list": ([token], "the answer"),
    }
