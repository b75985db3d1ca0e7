"""Releasing appkit: `python -m build` makes a wheel and an sdist that pass the packaging checks."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.helpers import ROOT, runtime_version

BIN = Path(sys.executable).parent


def test_build_makes_a_wheel_and_sdist_that_twine_and_check_wheel_contents_pass(
    tmp_path: Path,
) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = tmp_path / f"appkit_runtime-{runtime_version()}-py3-none-any.whl"
    sdist = tmp_path / f"appkit_runtime-{runtime_version()}.tar.gz"
    assert sorted(tmp_path.iterdir()) == [wheel, sdist]

    twine = subprocess.run([BIN / "twine", "check", "--strict", wheel, sdist], capture_output=True)
    contents = subprocess.run(
        [BIN / "check-wheel-contents", wheel], cwd=ROOT, capture_output=True, text=True
    )

    assert twine.returncode == 0, twine.stdout
    assert contents.returncode == 0, contents.stdout
    # The template travels inside the wheel, with the version file copier.yml reads.
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "scaffold/_template/copier.yml",
        "scaffold/_template/template/pyproject.toml.jinja",
        "scaffold/_template/appkit_runtime/_version.py",
    } <= names
