"""`UnknownKeyGate`: requests carrying a key not known valid go one per loop turn.

A flood of random keys is answered 401 from the static table (or, with the `http` backend,
after a Redis read and an authority call or a 503), but every such request still takes the one
event loop's time; answered as they arrive, the flood's requests come before a valid key's in
each loop turn it needs. Here a request whose key is not cached valid in this process waits
for its turn in a queue that lets one such request on per loop turn, so the loop keeps serving
cached keys at full speed. Nothing is answered here: the request then goes down the app as
before, to the same answer. With the `static` backend a key the table knows passes at once
(it costs one dict lookup); with any other backend a key this process has never seen valid
waits its turn, behind the unknown keys already queued. A request without a key is never
gated (public routes have none).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable

from starlette.types import ASGIApp, Receive, Scope, Send

from appkit_runtime.auth import static_keys
from appkit_runtime.auth.cache import LOCAL
from appkit_runtime.auth.credentials import (
    MAX_KEY_LENGTH,
    PRESENTED_KEY,
    key_digest,
    presented_key,
    well_formed,
)
from appkit_runtime.auth.resolve import static_backend
from appkit_runtime.fastapi.health import HEALTH_ROUTES
from appkit_runtime.loop_cache import LoopCache


def waits_turn(scope: Scope) -> bool:
    """Whether the request presents a key not known valid: too long, empty, malformed, cached
    invalid, or unknown (to the static table; to the in-process cache with other backends).
    False without a key. A key it hashes is left in the scope with its digest
    (`PRESENTED_KEY`), for authentication to use."""
    key = presented_key(scope["headers"])
    if key is None:
        return False
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        return True
    digest = key_digest(key)
    scope[PRESENTED_KEY] = (key, digest)
    entry = LOCAL.get(digest)
    if entry is not None:
        return entry[0] is None
    if not static_backend():
        # A key whose valid entry expired (APPKIT_AUTH_CACHE_TTL) is still a key this
        # process saw valid: it goes on to be looked up again rather than queue.
        return not LOCAL.seen_valid(digest)
    return not well_formed(key) or static_keys.lookup(digest) is None


class TurnQueue:
    """Lets its waiters on one per event-loop turn, in arrival order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._releasing = False

    def __len__(self) -> int:
        return len(self._waiting)

    async def wait_turn(self) -> None:
        """Return in a later loop turn than every waiter that came before."""
        future = self._loop.create_future()
        self._waiting.append(future)
        if not self._releasing:
            self._releasing = True
            self._loop.call_soon(self._release_one)
        await future

    def _release_one(self) -> None:
        # One per call, and the next call in the next turn: whatever else became ready in
        # between (a valid key's request, a Redis reply) runs before the next waiter does.
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():  # a cancelled waiter gives its turn on
                future.set_result(None)
                break
        if self._waiting:
            self._loop.call_soon(self._release_one)
        else:
            self._releasing = False


_queues: LoopCache[TurnQueue] = LoopCache()


def turn_queue() -> TurnQueue:
    """The running loop's queue."""
    return _queues.get("keys", lambda: TurnQueue(asyncio.get_running_loop()))


class UnknownKeyGate:
    """Pure ASGI, outermost: an HTTP request whose key is not known valid waits its turn."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine function: a request let on at once is the app's own awaitable, and
        # this layer costs it a call, not a coroutine of its own.
        if scope["type"] == "http" and waits_turn(scope) and scope["path"] not in HEALTH_ROUTES:
            return self._after_turn(scope, receive, send)
        return self.app(scope, receive, send)

    async def _after_turn(self, scope: Scope, receive: Receive, send: Send) -> None:
        await turn_queue().wait_turn()
        await self.app(scope, receive, send)
