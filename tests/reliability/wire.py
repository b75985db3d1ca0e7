"""A minimal HTTP/1.1 client over asyncio streams: one keep-alive connection per client.

httpx spends far more time per request than the server does once hundreds of connections
are open, so the load tests speak HTTP themselves; the hostile-input tests also need to send
bytes (CR/LF, oversized fields) that httpx refuses to put in a header.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class Connection:
    """One client connection to 127.0.0.1:`port`; `None` from `get` when the server closed it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Connection:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> Connection:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    @property
    def closed(self) -> bool:
        """Whether this side closed it (the server gone, or its `Connection: close`)."""
        return self._writer is None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
            self._writer = None

    async def get(self, path: str, key: str | None = None) -> Reply | None:
        """GET `path`, with `Authorization: Bearer <key>` when a key is given."""
        auth = f"Authorization: Bearer {key}\r\n" if key is not None else ""
        return await self.send(f"GET {path} HTTP/1.1\r\nHost: t\r\n{auth}\r\n".encode())

    async def send(self, raw: bytes) -> Reply | None:
        """Send a raw request and read one response; None if the connection is gone."""
        assert self._reader is not None and self._writer is not None
        try:
            self._writer.write(raw)
            await self._writer.drain()
            head = await self._reader.readuntil(b"\r\n\r\n")
        except (OSError, asyncio.IncompleteReadError):
            await self.close()
            return None
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        try:
            body = await self._reader.readexactly(int(headers.get("content-length", "0")))
        except (OSError, asyncio.IncompleteReadError):
            await self.close()
            return None
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Reply(int(status_line.split(" ", 2)[1]), headers, body)
