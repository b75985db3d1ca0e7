"""Single-flight: concurrent misses for one key share one lookup instead of one each."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class AsyncFlights(Generic[T]):
    """One task per key digest and event loop; every caller awaits the same task.

    The lookup runs as its own task, so a caller that is cancelled (client gone) does not
    cancel it for the others.
    """

    def __init__(self) -> None:
        self._tasks: dict[bytes, asyncio.Task[T]] = {}

    async def run(self, digest: bytes, lookup: Callable[[], Awaitable[T]]) -> T:
        """The result of `lookup()`, started only if no lookup of `digest` is under way."""
        task = self._tasks.get(digest)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.ensure_future(lookup())
            self._tasks[digest] = task
            task.add_done_callback(lambda done: self._forget(digest, done))
        return await asyncio.shield(task)

    def _forget(self, digest: bytes, task: asyncio.Task[T]) -> None:
        if self._tasks.get(digest) is task:
            del self._tasks[digest]
        if not task.cancelled():
            task.exception()  # mark it retrieved even if every caller went away

    def clear(self) -> None:
        """Forget running lookups (they finish, but later callers start new ones)."""
        self._tasks.clear()


class _Flight:
    __slots__ = ("done", "result", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class SyncFlights(Generic[T]):
    """The same for threads: the first caller looks up, the others wait for its answer."""

    def __init__(self) -> None:
        self._flights: dict[bytes, _Flight] = {}
        self._lock = threading.Lock()

    def run(self, digest: bytes, lookup: Callable[[], T]) -> T:
        """The result of `lookup()`, called only if no lookup of `digest` is under way."""
        with self._lock:
            flight = self._flights.get(digest)
            leader = flight is None
            if flight is None:
                flight = self._flights[digest] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.result  # type: ignore[no-any-return]
        try:
            flight.result = lookup()
            return flight.result  # type: ignore[no-any-return]
        except BaseException as error:
            flight.error = error
            raise
        finally:
            with self._lock:
                if self._flights.get(digest) is flight:
                    del self._flights[digest]
            flight.done.set()

    def clear(self) -> None:
        """Forget running lookups."""
        with self._lock:
            self._flights.clear()


class Slots:
    """A count of calls in flight that refuses, rather than queues, the one over `limit`.

    Under a flood of distinct unknown keys, waiting callers would pile up behind the
    authority; refused ones get a 503 at once, and callers with cached keys never come here.
    """

    __slots__ = ("_lock", "in_flight")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0

    def try_take(self, limit: int) -> bool:
        """Take a slot if fewer than `limit` are taken; False (nothing taken) otherwise."""
        with self._lock:
            if self.in_flight >= limit:
                return False
            self.in_flight += 1
            return True

    def give_back(self) -> None:
        """Return a slot that `try_take` gave."""
        with self._lock:
            self.in_flight -= 1
