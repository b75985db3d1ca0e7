"""`LoopCache`: objects made once per name and per running event loop.

Async connections belong to the loop that opened them; pytest-asyncio and `asyncio.run`
make new loops, so anything holding connections is cached per loop, never shared across.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar
from weakref import WeakKeyDictionary, ref

T = TypeVar("T")


class LoopCache(Generic[T]):
    """A `{name: object}` map for each running event loop (and one for code outside any)."""

    def __init__(self) -> None:
        self._by_loop: WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, T]] = (
            WeakKeyDictionary()
        )
        self._loopless: dict[Hashable, T] = {}
        # The last loop's map, checked first: the request path asks on the same loop every
        # time, and a weak-keyed lookup costs a new weak reference per call.
        self._last: tuple[ref[asyncio.AbstractEventLoop], dict[Hashable, T]] | None = None

    def current(self) -> dict[Hashable, T]:
        """The map of the running loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return self._loopless
        last = self._last
        if last is not None and last[0]() is loop:
            return last[1]
        objects = self._by_loop.get(loop)
        if objects is None:
            objects = self._by_loop[loop] = {}
        self._last = (ref(loop), objects)
        return objects

    def get(self, name: Hashable, make: Callable[[], T]) -> T:
        """The object of `name` on the running loop, made by `make()` on first use."""
        objects = self.current()
        found = objects.get(name)
        if found is None:
            found = objects[name] = make()
        return found

    def pop_current(self) -> dict[Hashable, T]:
        """Remove and return the running loop's objects, for the caller to close."""
        objects = dict(self.current())
        self.current().clear()
        return objects
