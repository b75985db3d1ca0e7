"""`python tests/billing/faulty_drain.py FAULT N usage drain ...`: the operator CLI whose drain
worker SIGKILLs itself in batch N, to test what a crash at that point costs.

FAULT is `before-commit` (the batch's totals written inside its transaction, not committed)
or `after-commit` (committed, not yet acknowledged with XACK); `slow` makes every batch take N
more milliseconds instead, so that two workers surely share a stream.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from appkit_runtime import usage_drain, usage_sink
from appkit_runtime.manage import main


def kill_in_call(module: Any, name: str, batch: int, *, after: bool) -> None:
    """Replace `module.name` by a version that SIGKILLs the process on call `batch`."""
    original = getattr(module, name)
    calls = 0

    async def faulty(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == batch and not after:
            os.kill(os.getpid(), signal.SIGKILL)
        result = await original(*args, **kwargs)
        if calls == batch and after:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(module, name, faulty)


def slow_down(module: Any, name: str, milliseconds: int) -> None:
    """Make `module.name` take `milliseconds` longer."""
    original = getattr(module, name)

    async def slow(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(milliseconds / 1000)
        return await original(*args, **kwargs)

    setattr(module, name, slow)


if __name__ == "__main__":
    fault, batch = sys.argv[1], int(sys.argv[2])
    if fault == "before-commit":
        kill_in_call(usage_sink, "add_totals", batch, after=True)
    elif fault == "after-commit":
        kill_in_call(usage_drain, "acknowledge", batch, after=False)
    elif fault == "slow":
        slow_down(usage_sink, "add_totals", batch)
    else:
        raise SystemExit(f"unknown fault {fault!r}")
    sys.exit(main(sys.argv[3:]))
