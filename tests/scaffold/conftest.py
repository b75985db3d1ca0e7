"""Fixtures of the scaffold tests: a rendered service and the CLI run in this process."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from scaffold.cli import run


@dataclass
class Result:
    """What one `appkit-scaffold` run did: its exit code and output."""

    code: int
    out: str
    err: str


@pytest.fixture
def scaffold(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """`scaffold(*args) -> Result`: run the CLI in this process, as the console script does."""

    def invoke(*args: str | Path) -> Result:
        capsys.readouterr()
        code = run([str(arg) for arg in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def service(service_factory: Callable[..., Path]) -> Path:
    """A service rendered with the example endpoint, package `shop`."""
    return service_factory(package_name="shop")


def tree_hashes(root: Path) -> dict[str, str]:
    """Every file under `root` (caches aside) with the SHA-256 of its bytes."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }
