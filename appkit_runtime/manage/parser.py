"""The argparse parser of the operator CLI: every error is one line and exit status 2."""

from __future__ import annotations

import argparse
from typing import NoReturn

from appkit_runtime.ratelimit.limiter import MAX_LIMIT_VALUE
from appkit_runtime.settings import CONTROL_CHARACTERS, MAX_ID_LENGTH


class UsageError(Exception):
    """Bad input or a refused command: one line on stderr, exit 2."""


class Parser(argparse.ArgumentParser):
    """An argparse parser that raises `UsageError` instead of printing its usage block."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def positive_int(text: str) -> int:
    """An argument that must be a whole number the limiter can store (1 to 2**31 - 1)."""
    if not (text.strip().isascii() and text.strip().isdigit()) or not (
        1 <= int(text) <= MAX_LIMIT_VALUE
    ):
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 1 to {MAX_LIMIT_VALUE}, got {text!r}"
        )
    return int(text)


def port_number(text: str) -> int:
    """An argument that must be a TCP port to listen on (1 to 65535)."""
    if not (text.strip().isascii() and text.strip().isdigit()) or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, got {text!r}")
    return int(text)


def whole_number(text: str) -> int:
    """An argument that must be a whole number, 0 or more."""
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(text)


def endpoint(text: str) -> str:
    """A route template, such as `/items/{item_id}`."""
    if not text.startswith("/"):
        raise argparse.ArgumentTypeError(
            f"expected a route template starting with '/', got {text!r}"
        )
    return text


def identifier(text: str) -> str:
    """An organisation or project id, as a token may carry it: non-empty, printable, short.

    A longer id is refused rather than stored: no token can carry it, so it would never apply.
    """
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    if CONTROL_CHARACTERS.search(text):
        raise argparse.ArgumentTypeError("must not contain control characters")
    if len(text) > MAX_ID_LENGTH:
        raise argparse.ArgumentTypeError(f"at most {MAX_ID_LENGTH} characters (got {len(text)})")
    return text
