"""Where the protected chain's cost goes: Python calls it adds per request, by package.

Run from the repository root: `python -m bench.chain_calls [--requests 3000]`. Serves the
`protected` app in process (as `bench._in_process` does) under cProfile, its public route
then its protected one, and prints the calls the protected route makes per request beyond
the public one's, by package and by function. Call counts do not depend on the machine's
load (cProfile's times do, and it inflates every call alike, so they are left out).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
from collections import Counter
from typing import Any

from asgi_lifespan import LifespanManager

from bench._in_process import SCOPE, WARM_UP
from bench._redis_server import BenchRedis
from bench.apps.common import PUBLIC_URL_PATH, URL_PATH, appkit_environment

PACKAGES = ("appkit_runtime", "fastapi", "starlette", "prometheus_client", "opentelemetry")
Calls = dict[tuple[str, int, str], int]


async def _calls(app: Any, path: str, count: int) -> Calls:
    """Calls per function over `count` requests to `path`, after the warm-up."""
    scope = dict(SCOPE, path=path, raw_path=path.encode())

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    for _ in range(WARM_UP):
        await app(dict(scope, state={}), receive, send)
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(count):
        await app(dict(scope, state={}), receive, send)
    profile.disable()
    return {key: row[1] for key, row in pstats.Stats(profile).stats.items()}  # type: ignore[attr-defined]


def _package(key: tuple[str, int, str]) -> str:
    return next((name for name in PACKAGES if f"/{name}/" in key[0]), "stdlib and builtins")


async def _run(count: int) -> None:
    from bench.apps.protected import app  # after the environment is set

    async with LifespanManager(app) as manager:
        public = await _calls(manager.app, PUBLIC_URL_PATH, count)
        protected = await _calls(manager.app, URL_PATH, count)
    added = {
        key: (protected.get(key, 0) - public.get(key, 0)) / count for key in {*public, *protected}
    }
    print(
        f"calls per request: public {sum(public.values()) / count:.0f}, "
        f"protected {sum(protected.values()) / count:.0f}"
    )
    by_package: Counter[str] = Counter()
    for key, calls in added.items():
        by_package[_package(key)] += calls
    for package, calls in by_package.most_common():
        print(f"  {package:22} {calls:+6.1f}")
    print("functions (at least half a call per request more):")
    for key, calls in sorted(added.items(), key=lambda item: -item[1]):
        if calls >= 0.5:
            where = key[0].split("site-packages/")[-1]
            print(f"  {calls:+5.1f}  {_package(key):18} {where}:{key[1]}({key[2]})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chain_calls", description=__doc__)
    parser.add_argument("--requests", type=int, default=3_000)
    args = parser.parse_args(argv)
    with BenchRedis() as redis_server:
        os.environ.update(appkit_environment(redis_server.url))
        asyncio.run(_run(args.requests))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
