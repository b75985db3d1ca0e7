"""The scaffold's refusals: each carries the one line to print and the exit code."""

from __future__ import annotations

from appkit_runtime.errors import AppkitError


class ScaffoldError(AppkitError):
    """A refusal of the scaffold CLI: printed as one line, never as a traceback."""

    exit_code = 1


class UsageProblem(ScaffoldError):
    """Bad usage: a bad name, path or option, or not run inside a service (exit 2)."""

    exit_code = 2


class Conflict(ScaffoldError):
    """The request is fine but the service is in the way: a file or route exists (exit 1)."""

    exit_code = 1
