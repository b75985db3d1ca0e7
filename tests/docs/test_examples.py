"""The documentation's examples work as written: Python blocks run (or, where they need a
store or a Django project of yours, compile and import only what exists), shell blocks name
only commands and options that exist, and quoted figures come from a recorded run."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import re
import shlex
import sys
import uuid
from pathlib import Path

import pytest
import redis

from appkit_runtime.manage import main
from appkit_runtime.redis_pools import close_redis_connections
from appkit_runtime.settings import get_settings
from tests.docs.pages import DOCS, ROOT, Block, blocks, hooks

HOOKS = hooks()
PYTHON = blocks("python")
SHELL = blocks("sh", "console")
VENV_BIN = Path(sys.executable).parent
# Programs the examples may name that no Python package installs.
SYSTEM_PROGRAMS = {
    *("cd", "cp", "curl", "docker", "export", "git", "echo", "until", "sleep", "do", "done"),
    *("apt-get", "wrk", "valgrind", "redis-server"),
}


def _imports_resolve(tree: ast.Module, block: Block) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{block.name}: {node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert importlib.util.find_spec(alias.name), f"{block.name}: {alias.name}"
        elif isinstance(node, ast.Constant) and re.fullmatch(
            r"appkit_runtime(\.\w+)+", str(node.value)
        ):
            # A dotted path in a string (INSTALLED_APPS, MIDDLEWARE) names a module or a class.
            parent, _, name = node.value.rpartition(".")
            module = importlib.import_module(parent)
            found = hasattr(module, name) or importlib.util.find_spec(node.value)
            assert found, f"{block.name}: {node.value} does not exist"


@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.name)
async def test_python_examples_run(
    block: Block, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code = compile(block.text, block.name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    _imports_resolve(ast.parse(block.text), block)
    if block.compile_only:
        return
    # On the embedded defaults, in a folder of its own, with a Redis prefix of its own.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APPKIT_REDIS_URL", "memory://")
    monkeypatch.setenv("APPKIT_REDIS_PREFIX", f"docs-{uuid.uuid4().hex[:8]}")
    for variable in ("APPKIT_REDIS_URL_RATELIMIT", "APPKIT_API_KEYS"):
        monkeypatch.delenv(variable, raising=False)
    get_settings.cache_clear()
    try:
        result = eval(code, {"__name__": "docs_example"})  # noqa: S307 (our own pages)
        if inspect.iscoroutine(result):
            await result
    finally:
        await close_redis_connections()
        get_settings.cache_clear()


def test_python_examples_are_found_and_most_of_them_run() -> None:
    pages = {block.page.name for block in PYTHON}
    assert {"protected-chain.md", "overrides.md", "django.md", "testing.md"} <= pages
    assert sum(not block.compile_only for block in PYTHON) >= 3


def commands(block: Block) -> list[list[str]]:
    """Each simple command of a shell block, as words (`[...]` optional parts unwrapped)."""
    text = block.text.replace("\\\n", " ")
    lines = text.splitlines()
    if block.lang == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    found = []
    for line in lines:
        words = shlex.split(line.replace("[", " ").replace("]", " "), comments=True)
        command: list[str] = []
        for word in [*words, "&&"]:
            if word in {"&&", "||", ";", "|", "&", "{", "}"}:
                if command:
                    found.append(command)
                command = []
            elif command or not re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", word):
                command.append(word)
    return found


def _options(words: list[str]) -> set[str]:
    return {w.split("=", 1)[0] for w in words if w.startswith("-") and w not in {"-", "..."}}


def check_command(words: list[str], where: str) -> None:
    program, *rest = words
    if program == "appkit-scaffold":
        named = {c.words[1]: c for c in HOOKS.scaffold_commands() if len(c.words) == 2}
        assert rest and rest[0] in named, f"{where}: no appkit-scaffold command {rest[:1]}"
        unknown = _options(rest[1:]) - named[rest[0]].options
        assert not unknown, f"{where}: appkit-scaffold {rest[0]} has no option {unknown}"
    elif program in {"python", "python3"} and rest[:1] == ["-m"]:
        module = rest[1]
        assert importlib.util.find_spec(module), f"{where}: no module {module}"
        if module == "appkit_runtime.manage":
            by_words = {c.words[1:]: c for c in HOOKS.manage_commands()}
            path = tuple(w for w in rest[2:4] if not w.startswith("-"))
            while path not in by_words:
                path = path[:-1]
            assert len(path) == 2, f"{where}: no manage command {rest[2:4]}"
            unknown = _options(rest[2:]) - by_words[path].options
            assert not unknown, f"{where}: manage {' '.join(path)} has no option {unknown}"
    elif program == "pytest":
        plugin = (ROOT / "appkit_runtime" / "testing" / "plugin.py").read_text()
        for option in _options(rest):
            if option.startswith("--appkit"):
                assert f'"{option}"' in plugin, f"{where}: the plugin has no {option}"
    elif program not in SYSTEM_PROGRAMS and not program.startswith((".", "/")):
        assert (VENV_BIN / program).exists(), f"{where}: {program} is not installed by dev"


@pytest.mark.parametrize("block", SHELL, ids=lambda b: b.name)
def test_shell_examples_name_only_existing_commands_and_options(block: Block) -> None:
    found = commands(block)
    assert found, f"{block.name}: no command"
    for words in found:
        check_command(words, block.name)


@pytest.mark.parametrize(
    "line",
    [
        "appkit-scaffold add-endpoint orders --methods post",
        "appkit-scaffold add-resources order --field a:int",
        "python -m appkit_runtime.manage ratelimit set --org-id 1 --max 5",
        "python -m appkit_runtime.manage usage purge --once",
        "pytest --appkit-reuse-database",
        "alembic-ng upgrade head",
    ],
)
def test_a_wrong_command_or_option_is_caught(line: str) -> None:
    block = Block(DOCS / "example.md", 1, "sh", line + "\n", False)
    with pytest.raises(AssertionError):
        for words in commands(block):
            check_command(words, block.name)


# Figures

FIGURE = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+\.\d+)(?![\w.,]\d)")
RATIO = re.compile(r"([\d,.]+) ÷ ([\d,.]+) = ([\d.]+)")


def test_every_figure_on_the_performance_page_is_in_a_recorded_run() -> None:
    recorded = (ROOT / "BENCHMARKS.md").read_text()
    page = (DOCS / "performance" / "index.md").read_text()
    prose = "\n".join(line for line in page.splitlines() if not line.startswith(("python", "pip")))
    for a, b, quotient in RATIO.findall(prose):
        assert f"{float(a.replace(',', '')) / float(b.replace(',', '')):.2f}" == quotient
    prose = RATIO.sub(lambda m: f"{m[1]} ÷ {m[2]}", prose)
    figures = FIGURE.findall(prose)
    assert len(figures) > 20
    missing = [f for f in figures if f not in recorded]
    assert not missing, f"figures in docs/performance/index.md with no recorded run: {missing}"
    headings = [line.lower() for line in recorded.splitlines() if line.startswith("#")]
    runs = re.findall(r"[Rr]un of (\d{4}-\d{2}-\d{2}(?: [\d:–]+ UTC)?)", prose)
    assert len(runs) >= 4
    for run in runs:
        assert any(f"run of {run}".lower() in h for h in headings), f"no run of {run}"


# The operator CLI's examples, run


def operator_blocks() -> list[Block]:
    """Shell blocks made only of `python -m appkit_runtime.manage ratelimit ...` commands."""
    prefix = ["python", "-m", "appkit_runtime.manage", "ratelimit"]
    return [b for b in SHELL if all(c[:4] == prefix for c in commands(b))]


def test_the_operator_guide_has_a_block_of_ratelimit_commands() -> None:
    assert any(block.page.name == "overrides.md" for block in operator_blocks())


@pytest.mark.parametrize("block", operator_blocks(), ids=lambda b: b.name)
def test_operator_examples_run_in_order_against_the_real_redis(
    block: Block, monkeypatch: pytest.MonkeyPatch, real_redis: str, capsys: pytest.CaptureFixture
) -> None:
    prefix = f"test-docs-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("APPKIT_REDIS_PREFIX", prefix)
    monkeypatch.setenv("APPKIT_ENV", "development")
    monkeypatch.delenv("APPKIT_REDIS_URL_RATELIMIT", raising=False)
    get_settings.cache_clear()
    try:
        for words in commands(block):
            status = main(words[3:])
            assert status == 0, f"{' '.join(words)}: exit {status}: {capsys.readouterr().err}"
        assert "500" in capsys.readouterr().out  # `get` showed the override `set` wrote
    finally:
        with redis.Redis.from_url(real_redis) as shared:
            keys = list(shared.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                shared.delete(*keys)
        get_settings.cache_clear()
