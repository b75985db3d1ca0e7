"""The reference cannot drift: settings, command lines and the public API are each documented,
and what the reference names (tests, extras, files) exists."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import tomllib

import pytest

from appkit_runtime.settings import Settings
from tests.docs.pages import DOCS, ROOT, guide_pages, hooks, pages

HOOKS = hooks()
# The module map of the design (DESIGN.md): always in the reference, with or without `__all__`.
MODULE_MAP = {
    "appkit_runtime.settings",
    "appkit_runtime.ratelimit",
    "appkit_runtime.fastapi",
    "appkit_runtime.fastapi.fastapi",
    "appkit_runtime.fastapi.authentication",
    "appkit_runtime.fastapi.ratelimit",
    "appkit_runtime.fastapi.metrics",
    "appkit_runtime.db",
    "appkit_runtime.django.decorators",
    "appkit_runtime.testing",
}


def all_text() -> str:
    return "\n".join(page.read_text() for page in pages())


def guides_text() -> str:
    return "\n".join(page.read_text() for page in guide_pages())


# Settings


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_has_a_description(name: str) -> None:
    description = Settings.model_fields[name].description
    assert description and description.strip(), f"Settings.{name} has no description"


def test_the_settings_table_has_one_row_per_setting_in_the_models_order() -> None:
    rows = HOOKS.settings_table().splitlines()[2:]
    variables = [row.split("`")[1] for row in rows]
    assert variables == [
        HOOKS.setting_variable(name, field) for name, field in Settings.model_fields.items()
    ]
    assert "APPKIT_REDIS_URL_<NAME>" in variables
    assert "| `APPKIT_RATELIMIT_DEFAULT` | `100/60` |" in HOOKS.settings_table()


def test_the_settings_page_holds_the_table_as_generated() -> None:
    page = (DOCS / "reference" / "settings.md").read_text()
    assert page == HOOKS.committed_settings_page(), (
        "docs/reference/settings.md's table is stale: run `python docs/hooks.py`"
    )
    built = HOOKS.on_page_markdown(page, page=None, config=None, files=None)
    assert built.count(HOOKS.settings_table()) == 1
    assert "appkit:settings" not in built


def test_a_stale_settings_table_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    field = Settings.model_fields["access_log"]
    monkeypatch.setattr(field, "description", "one access line per request, or none")
    page = (DOCS / "reference" / "settings.md").read_text()
    assert page != HOOKS.committed_settings_page()


def test_every_appkit_variable_the_code_reads_is_documented() -> None:
    sources = [
        *ROOT.joinpath("appkit_runtime").rglob("*.py"),
        *ROOT.joinpath("scaffold").rglob("*.py"),
    ]
    named = set()
    for source in sources:
        named |= set(re.findall(r"\bAPPKIT_[A-Z][A-Z0-9_]*[A-Z0-9]\b", source.read_text()))
    documented = all_text() + HOOKS.settings_table()
    missing = sorted(v for v in named if f"`{v}" not in documented and f"{v}=" not in documented)
    assert not missing, f"APPKIT_* variables the code reads but no page documents: {missing}"


# Command lines


def commands() -> list:
    return [*HOOKS.scaffold_commands(), *HOOKS.manage_commands()]


@pytest.mark.parametrize("command", commands(), ids=lambda c: " ".join(c.words))
def test_every_command_has_help_and_a_guide_that_uses_it(command) -> None:
    assert command.summary.strip(), f"{' '.join(command.words)} has no help text"
    assert "usage:" in command.help_text.lower()
    words = r"\s+".join(re.escape(word) for word in command.words)
    assert re.search(rf"{words}(?![\w-])", guides_text()), (
        f"no guide shows `{' '.join(command.words)}`"
    )


def test_the_command_line_reference_lists_every_command() -> None:
    page = (DOCS / "reference" / "cli.md").read_text()
    generated = HOOKS.on_page_markdown(page, page=None, config=None, files=None)
    for command in commands():
        assert f"`{' '.join(command.words)}`\n" in generated
    assert "--max-requests" in generated and "--claim-idle" in generated
    assert "--rate-limit" in generated and "--dry-run" in generated


# Python API


def _modules_with_all() -> set[str]:
    found = set()
    for path in ROOT.joinpath("appkit_runtime").rglob("*.py"):
        tree = ast.parse(path.read_text())
        if any(
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
            for node in tree.body
        ):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def rendered_modules() -> list[str]:
    page = (DOCS / "reference" / "python-api.md").read_text()
    return re.findall(r"^::: ([\w.]+)$", page, flags=re.M)


def public_names(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module_name
    ]


def test_the_api_reference_renders_every_public_module() -> None:
    missing = (MODULE_MAP | _modules_with_all()) - {"appkit_runtime"} - set(rendered_modules())
    assert not missing, f"public modules missing from docs/reference/python-api.md: {missing}"


@pytest.mark.parametrize("module_name", rendered_modules())
def test_every_public_name_has_a_docstring(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert inspect.getdoc(module), f"{module_name} has no module docstring"
    undocumented = []
    for name in public_names(module_name):
        value = getattr(module, name)
        if (callable(value) or inspect.isclass(value)) and not inspect.getdoc(value):
            undocumented.append(name)
    assert not undocumented, f"{module_name}: no docstring for {undocumented}"


def test_a_public_name_without_a_docstring_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    import appkit_runtime.db as db

    monkeypatch.setattr(db.ping_database, "__doc__", None)
    with pytest.raises(AssertionError, match="ping_database"):
        test_every_public_name_has_a_docstring("appkit_runtime.db")


# What the pages name exists


def test_every_test_the_failure_table_names_exists() -> None:
    page = (DOCS / "reference" / "failures.md").read_text()
    cells = [row.rsplit("|", 2)[1] for row in page.splitlines() if row.startswith("| ")][2:]
    named = [m for cell in cells for m in re.findall(r"`([\w/]+\.py(?:::\w+)?)`", cell)]
    assert len(named) >= 20
    for name in named:
        path, _, function = name.partition("::")
        file = ROOT / path if path.startswith("tests/") else ROOT / "tests" / "reliability" / path
        assert file.is_file(), f"failure table names {name}: no such file"
        if function:
            assert re.search(rf"^(async )?def {function}\(", file.read_text(), flags=re.M), name


def test_the_extras_table_lists_every_extra_and_what_it_adds() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    rows = {
        row.split("`")[1]: row
        for row in (DOCS / "index.md").read_text().splitlines()
        if row.startswith("| `")
    }
    for extra, requirements in project["optional-dependencies"].items():
        assert extra in rows, f"docs/index.md does not list the extra {extra!r}"
        for requirement in requirements:
            name = re.split(r"[\[<>=~ ]", requirement, maxsplit=1)[0]
            if name == "appkit-runtime":
                for included in re.search(r"\[(.*)\]", requirement)[1].split(","):
                    assert f"`{included}`" in rows[extra], (extra, included)
            else:
                assert name.lower() in rows[extra].lower(), f"{extra}: {name} not listed"


def test_every_relative_link_of_the_readme_leads_to_a_file() -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme)
    assert any(link.startswith("docs/") for link in links)
    for link in links:
        assert (ROOT / link).is_file(), f"README links to {link}, which does not exist"


def test_the_readme_is_short_and_ci_builds_the_site_strictly() -> None:
    assert len((ROOT / "README.md").read_bytes()) <= 8 * 1024
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    build = [n for n, line in enumerate(lines) if "mkdocs build --strict" in line]
    assert build and build[0] < len(lines) - 1, ".ci/run builds the site before the tests"
    assert "mkdocs.yml" not in lines[-1]
    config = (ROOT / "mkdocs.yml").read_text()
    assert "strict: true" in config and "docs/hooks.py" in config
