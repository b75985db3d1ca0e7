"""The request id of the request being served, in a context variable.

A context variable follows the request into every coroutine it awaits and into the threads
`anyio.to_thread` runs (it copies the context), so each log line and the key authority's call
can name the request without anything being passed along.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from random import getrandbits

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept only when it is short and plain: it goes into logs and headers as is.
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{1,128}")

REQUEST_ID: ContextVar[str | None] = ContextVar("appkit_request_id", default=None)

# The version (4) and variant (RFC 4122) bits `uuid.UUID(version=4)` sets in 16 random bytes.
_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)


def request_id_for(given: str | None) -> str:
    """The caller's id when it is 1-128 characters of `[A-Za-z0-9._:-]`, else a new one."""
    if given is not None and _ACCEPTED.fullmatch(given):
        return given
    return new_request_id()


def new_request_id() -> str:
    """`uuid.uuid4().hex` without the `UUID` object (a third of its cost) and without
    `os.urandom`'s system call per request: an id names a request, it guards nothing, and
    `random` reseeds itself in every forked worker, so workers do not repeat each other's."""
    bits = getrandbits(128) & _UUID4_CLEAR | _UUID4_SET
    return bits.to_bytes(16, "big").hex()  # twice as fast as formatting the int as hex


def current_request_id() -> str | None:
    """The id of the request this code runs for, or None outside a request."""
    return REQUEST_ID.get()
