"""A team's service takes template v2 with `appkit-scaffold upgrade` and loses nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from scaffold.upgrade import upgrade
from tests.helpers import ServiceVenv, git_save, passed
from tests.upgrade.conftest import (
    V1,
    V2,
    add_endpoint,
    conflict_markers,
    edit,
    release_v2,
)

TEAM_MODEL = '''

class Customer(Base):
    """A customer: the team's own model."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(320))
'''


def test_upgrade_keeps_team_edits_and_brings_v2(
    appkit: Path,
    committed_service: Callable[[str], Path],
    service_venv: ServiceVenv,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A service from v1, committed; then the team's edits, committed.
    service = committed_service("story")
    package = service / "src" / "story"
    edit(
        package / "main.py",
        "    app.include_router(router)\n",
        '    app.include_router(router)\napp.state.owner = "team-orders"\n',
    )
    edit(service / "README.md", "## Run it\n", "## Run it\n\nOn call: #orders-oncall.\n")
    (package / "models.py").write_text((package / "models.py").read_text() + TEAM_MODEL)
    add_endpoint(service, "orders", "--method", "post", "--path", "/orders")
    edit(service / "Dockerfile", "WORKDIR /app\n", "WORKDIR /app\nLABEL team=orders\n")
    git_save(service, "team edits")

    # Template v2 changes other lines of the same files, adds a test, renames the Dockerfile.
    release_v2(appkit)

    assert upgrade(service, to=None, dry_run=False) == 0
    out = capsys.readouterr().out

    # The team's edits, the added endpoint and its registration are all still there.
    main = (package / "main.py").read_text()
    assert 'app.state.owner = "team-orders"' in main
    assert "On call: #orders-oncall." in (service / "README.md").read_text()
    assert "class Customer(Base):" in (package / "models.py").read_text()
    registry = (package / "routers" / "__init__.py").read_text()
    assert "from story.routers import items, orders\n" in registry
    assert "    items.router,\n    orders.router,\n" in registry
    assert (package / "routers" / "orders.py").is_file()
    assert (service / "tests" / "test_orders.py").is_file()
    # v2's changes are present, in the same files and elsewhere.
    assert main.startswith('"""The app (v2): ')
    assert registry.startswith('"""Routers (v2): ')
    assert "## Deploy it (v2)" in (service / "README.md").read_text()
    assert (service / "tests" / "test_openapi.py").is_file()
    # The migration moved the Dockerfile, the team's label with it.
    assert not (service / "Dockerfile").exists()
    containerfile = (service / "Containerfile").read_text()
    assert containerfile.startswith("# v2: build the service")
    assert "LABEL team=orders" in containerfile
    # Answers and runtime requirement at v2; no conflict marker anywhere.
    answers = yaml.safe_load((service / ".copier-answers.yml").read_text())
    assert answers["_commit"] == V2
    assert (
        f'"appkit-runtime @ git+file://localhost{appkit}@{V2}"'
        in (service / "pyproject.toml").read_text()
    )
    assert conflict_markers(service) == []
    # The summary says what happened.
    summary = out.splitlines()
    assert "conflicts (0)" in summary
    for line in (
        "  modified src/story/main.py",
        "  modified src/story/routers/__init__.py",
        "  added    tests/test_openapi.py",
        "  added    Containerfile",
        "  removed  Dockerfile",
        "  src/story/models.py",  # skipped: the team's, and the template's differs
        f"  _commit: {V1} -> {V2}",
    ):
        assert line in summary, out

    # The service's own tests pass: v1's, the added endpoint's and v2's new one.
    service_venv.install(service)
    run = service_venv.run("pytest", "-p", "no:cacheprovider", cwd=service)
    assert passed(run) == 19
