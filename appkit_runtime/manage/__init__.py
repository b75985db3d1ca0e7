"""The operator CLI, `python -m appkit_runtime.manage <command> <action> [options]`.

argparse only, so the runtime's core install runs it. Exit status: 0 done, 1 nothing found
(`get`), 2 bad input or a refusal (one line on stderr), 3 Redis or the database unavailable.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from appkit_runtime.errors import DatabaseUnavailable, StorageError
from appkit_runtime.manage import ratelimit, usage
from appkit_runtime.manage.parser import Parser, UsageError

PROG = "python -m appkit_runtime.manage"
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="Operate an appkit service's shared state.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ratelimit.add_parser(commands)
    usage.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        return asyncio.run(args.run(args))
    except (UsageError, ValueError) as error:  # ConfigurationError is a ValueError
        return _fail(f"error: {error}", EXIT_USAGE)
    except (StorageError, DatabaseUnavailable) as error:
        return _fail(f"error: {error}", EXIT_UNAVAILABLE)


def _fail(line: str, status: int) -> int:
    print(f"{PROG}: {line}", file=sys.stderr)
    return status
