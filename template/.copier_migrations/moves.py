"""Files and folders the template moved, by the version that moved them.

`MOVES["X.Y.Z"]` lists `(old, new)` paths, relative to the service, that template version
vX.Y.Z renamed; `{package_name}` and other answers may appear in them. `apply_moves.py` carries
each service's own version of `old`, edits included, to `new` when an update crosses vX.Y.Z,
or on to wherever the later versions the update crosses move `new`.
"""

from __future__ import annotations

MOVES: dict[str, list[tuple[str, str]]] = {}
