"""add_model on models.py files a team has shaped: imports land where ruff's isort puts them,
names already imported are not imported again, comments stay."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scaffold.errors import Conflict, UsageProblem
from scaffold.models_edit import add_model

RUFF = Path(sys.executable).parent / "ruff"
CLASS = 'class Order(Base):\n    """Orders."""\n\n    __tablename__ = "orders"\n'
IMPORTS = [
    "import datetime",
    "import uuid",
    "from typing import Any",
    "import sqlalchemy as sa",
    "from sqlalchemy.orm import Mapped, mapped_column",
    "from shop.db import Base",
]
TEAM_MODELS = '''"""Models."""

from __future__ import annotations

# Standard library first.
import enum
from typing import TYPE_CHECKING

from sqlalchemy import String
from sqlalchemy.orm import Mapped

from shop.db import Base

__all__ = ["Base", "Customer"]


class Customer(Base):
    """A customer."""

    __tablename__ = "customers"

    id: Mapped[int]
'''


def isort_clean(source: str, folder: Path) -> None:
    # The service's ruff settings; F is left out, as the stand-in class uses none of the names.
    settings = (
        '[tool.ruff]\nline-length = 100\nsrc = ["src"]\n[tool.ruff.lint]\nselect = ["I", "E"]\n'
    )
    (folder / "pyproject.toml").write_text(settings)
    (folder / "src" / "shop").mkdir(parents=True)
    (folder / "src" / "shop" / "__init__.py").write_text("")
    path = folder / "src" / "shop" / "models.py"
    path.write_text(source)
    for args in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        run = subprocess.run([RUFF, *args], cwd=folder, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr


def test_imports_join_their_sections_and_comments_stay(tmp_path: Path) -> None:
    edited = add_model(TEAM_MODELS, "shop", "Order", "orders", CLASS, IMPORTS, "models.py")

    assert edited.startswith(
        '"""Models."""\n\nfrom __future__ import annotations\n\n# Standard library first.\n'
        "import datetime\nimport enum\nimport uuid\nfrom typing import TYPE_CHECKING, Any\n\n"
        "import sqlalchemy as sa\nfrom sqlalchemy import String\n"
        "from sqlalchemy.orm import Mapped, mapped_column\n\nfrom shop.db import Base\n\n"
        '__all__ = ["Base", "Customer", "Order"]\n'
    )
    assert edited.endswith("\n\n\nclass Order(Base):\n" + CLASS.split("\n", 1)[1])
    isort_clean(edited, tmp_path)


def test_a_module_with_no_imports_gets_each_section(tmp_path: Path) -> None:
    edited = add_model('"""Models."""\n', "shop", "Order", "orders", CLASS, IMPORTS, "models.py")

    isort_clean(edited, tmp_path)
    assert "from shop.db import Base\n\n\nclass Order(Base):" in edited


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("Customer", Conflict, "'Customer' is already taken in models.py"),
        ("String", UsageProblem, "its model 'String' is a name models.py binds"),
        ("Any", UsageProblem, "its model 'Any' is a name models.py binds"),
    ],
)
def test_taken_names_are_refused(name: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        add_model(TEAM_MODELS, "shop", name, "x", CLASS, IMPORTS, "models.py")


def test_a_taken_table_is_a_conflict() -> None:
    with pytest.raises(Conflict, match="table 'customers' is already declared in models.py"):
        add_model(TEAM_MODELS, "shop", "Client", "customers", CLASS, IMPORTS, "models.py")
