"""Time per test of a service's suite under the pytest plugin: `python -m bench.plugin_tests`.

Renders a service from the working tree's template, adds `--tests` tests (default 200) that
each use `app_client` for one request, runs them on the embedded SQLite and in-process Redis
(or whatever `APPKIT_*` the environment sets) and prints the wall time per test, session
start (the test database and its migrations) included.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

from tests.helpers import (
    ServiceVenv,
    build_file_tree,
    build_template_repo,
    render_service,
    service_environ,
)

ONE_TEST = """

async def test_request_{n}(app_client):
    assert (await app_client.get("/healthz")).status_code == 200
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        service = render_service(build_template_repo(root / "template"), root / "timed")
        tests = "".join(ONE_TEST.format(n=n) for n in range(args.tests))
        build_file_tree({service / "tests" / "test_timed.py": tests}, dedent=False)
        venv = ServiceVenv(root / "venv").create()
        venv.install(service)
        started = time.perf_counter()
        run = venv.run(
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "tests/test_timed.py",
            cwd=service,
            env=service_environ(),
        )
        wall = time.perf_counter() - started
    found = re.search(rf"\b{args.tests} passed in ([\d.]+)s", run.stdout)
    if found is None:
        print(run.stdout)
        return 1
    session = float(found.group(1))
    print(f"{args.tests} tests using app_client, one request each")
    print(f"pytest session {session:.2f} s: {session / args.tests * 1000:.1f} ms per test")
    print(f"wall {wall:.2f} s with interpreter start and imports")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
