"""Background load: workers that repeat requests on keep-alive connections until stopped,
recording every reply under the phase the test is in when the reply arrives."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.reliability.wire import Connection, Reply


@dataclass
class Load:
    """`async with Load(port, [(path, key), ...], workers=20) as load:` ... `load.phase = "x"`."""

    port: int
    requests: Sequence[tuple[str, str]]
    workers: int = 20
    phase: str = "start"
    replies: list[tuple[str, str, Reply | None]] = field(default_factory=list)
    _stopping: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def __aenter__(self) -> Load:
        self._tasks = [asyncio.create_task(self._work(n)) for n in range(self.workers)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stopping = True
        outcomes = await asyncio.gather(*self._tasks, return_exceptions=True)
        errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if errors:
            raise errors[0]

    async def _work(self, number: int) -> None:
        turn = number
        while not self._stopping:
            connection = Connection(self.port)
            try:
                await connection.open()
            except OSError:
                await asyncio.sleep(0.01)  # the server is gone: do not spin
                continue
            try:
                while not self._stopping:
                    path, key = self.requests[turn % len(self.requests)]
                    turn += 1
                    reply = await connection.get(path, key)
                    self.replies.append((self.phase, path, reply))
                    self._arrived.set()
                    # A `Connection: close` reply (a server shutting down) closed it too.
                    if reply is None or connection.closed:
                        break
            finally:
                await connection.close()

    async def until(self, count: int, phase: str | None = None) -> None:
        """Wait until `count` replies have arrived (in `phase`, if given); a minute at most."""
        async with asyncio.timeout(60):
            while self.count(phase) < count:
                self._arrived.clear()
                await self._arrived.wait()

    def count(self, phase: str | None = None) -> int:
        return sum(1 for p, _, _ in self.replies if phase is None or p == phase)

    def statuses(self, path: str, phase: str | None = None) -> Counter[int | None]:
        """`{status: n}` of the replies on `path` (None: no reply, the connection dropped)."""
        return Counter(
            reply.status if reply else None
            for p, request_path, reply in self.replies
            if request_path == path and (phase is None or p == phase)
        )

    def with_status(self, status: int) -> list[Reply]:
        return [r for _, _, r in self.replies if r is not None and r.status == status]
