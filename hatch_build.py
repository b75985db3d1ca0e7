"""Wheel build hook: ship the runtime's version file inside the packaged template as well.

`copier.yml` reads `appkit_runtime/_version.py` from the template's root, so the template
packaged under `scaffold/_template/` needs its own copy. A plain `force-include` of that file
would move it out of `appkit_runtime/`; a copy made outside the project is added instead.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

VERSION_FILE = "appkit_runtime/_version.py"


class TemplateVersionHook(BuildHookInterface):
    """Adds `scaffold/_template/appkit_runtime/_version.py` to standard (non-editable) wheels."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version != "standard":
            return
        self._copy_dir = tempfile.mkdtemp(prefix="appkit-build-")
        copy = Path(self._copy_dir) / "_version.py"
        # A header of its own keeps the copy from being a duplicate file (check-wheel-contents).
        source = (Path(self.root) / VERSION_FILE).read_text(encoding="utf-8")
        copy.write_text(f"# A copy of {VERSION_FILE}, for copier.yml.\n{source}", encoding="utf-8")
        build_data["force_include"][str(copy)] = f"scaffold/_template/{VERSION_FILE}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        copy_dir = getattr(self, "_copy_dir", None)
        if copy_dir:
            shutil.rmtree(copy_dir, ignore_errors=True)
