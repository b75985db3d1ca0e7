"""MkDocs hooks: the reference's generated parts, made from the code at every build.

A page writes a marker (`<!-- appkit:settings -->`, `<!-- appkit:cli appkit-scaffold -->`,
`<!-- appkit:cli manage -->`) where the settings table or a command line's `--help` goes, so
neither can drift from the code. The settings table is also committed between its marker and
`<!-- /appkit:settings -->`, for readers of the Markdown; `python docs/hooks.py` rewrites it,
and `tests/docs/` checks it is current.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from pydantic.fields import FieldInfo

from appkit_runtime.settings import ENV_PREFIX, Settings

MARKER = re.compile(
    r"<!-- appkit:(settings|cli [\w-]+) -->(?:\n(?:(?!<!-- appkit:).)*?<!-- /appkit:\1 -->)?",
    flags=re.S,
)
SETTINGS_PAGE = Path(__file__).parent / "reference" / "settings.md"
HELP_COLUMNS = "100"


@dataclass(frozen=True)
class Command:
    """One command of a command line: its words, one-line help and full `--help` text."""

    words: tuple[str, ...]
    summary: str
    help_text: str
    options: frozenset[str]


def setting_variable(name: str, field: FieldInfo) -> str:
    """The environment variable a settings field reads (`APPKIT_<NAME>` unless it says)."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return str(extra.get("variable", f"{ENV_PREFIX}{name.upper()}"))


def shown_default(field: FieldInfo) -> str:
    """The default as the table shows it: the field's own words, else its value."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if "shown_default" in extra:
        return str(extra["shown_default"])
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int):
        return f"`{value:,}`"
    if isinstance(value, str | float):
        return f"`{value}`"
    return "none"  # an empty collection: no keys, no proxies


def settings_table() -> str:
    """The Markdown table of every `APPKIT_*` setting, in the model's order."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        description = (field.description or "").replace("|", "\\|")
        lines.append(
            f"| `{setting_variable(name, field)}` | {shown_default(field)} | {description} |"
        )
    return "\n".join(lines)


def scaffold_commands() -> Iterator[Command]:
    """`appkit-scaffold` and each of its subcommands, in the order `--help` lists them."""
    from scaffold.cli import PROG, cli

    # The group's own settings (`-h`, 100 columns), which a subcommand's context inherits; the
    # width is fixed so the page does not depend on the terminal that builds it.
    root = click.Context(
        cli, info_name=PROG, terminal_width=int(HELP_COLUMNS), **cli.context_settings
    )
    yield Command((PROG,), cli.get_short_help_str(100), cli.get_help(root), frozenset())
    for name in cli.list_commands(root):
        command = cli.commands[name]
        context = click.Context(command, info_name=name, parent=root)
        options = frozenset(
            o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")
        )
        yield Command(
            (PROG, name),
            command.get_short_help_str(100),
            command.get_help(context),
            options | {"-h", "--help"},
        )


def manage_commands() -> Iterator[Command]:
    """`python -m appkit_runtime.manage` and every command and action under it."""
    from appkit_runtime.manage import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS  # argparse wraps to the terminal's width
    try:
        yield from _argparse_commands(build_parser(), ("python -m appkit_runtime.manage",), "")
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def _argparse_commands(
    parser: argparse.ArgumentParser, words: tuple[str, ...], summary: str
) -> Iterator[Command]:
    options = frozenset(o for action in parser._actions for o in action.option_strings)
    yield Command(words, summary or (parser.description or ""), parser.format_help(), options)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, child in action.choices.items():
                yield from _argparse_commands(child, (*words, name), helps.get(name, ""))


COMMAND_LINES = {"appkit-scaffold": scaffold_commands, "manage": manage_commands}


def cli_reference(tool: str) -> str:
    """Each command of `tool` as a heading, its one-line help and its `--help` output."""
    parts = []
    for command in COMMAND_LINES[tool]():
        level = "##" if len(command.words) <= 2 else "###"
        parts.append(f"{level} `{' '.join(command.words)}`\n")
        if command.summary:
            parts.append(f"{command.summary}\n")
        parts.append(f"```text\n{command.help_text.rstrip()}\n```\n")
    return "\n".join(parts)


def generated(marker: str) -> str:
    """What replaces one marker."""
    if marker == "settings":
        return settings_table()
    return cli_reference(marker.split(" ", 1)[1])


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Replace each marker of the page (and what it held) by its generated Markdown."""
    return MARKER.sub(lambda match: generated(match[1]), markdown)


def committed_settings_page() -> str:
    """The settings page with its committed table brought up to date."""
    return MARKER.sub(
        lambda m: f"{m[0].split(chr(10))[0]}\n{settings_table()}\n<!-- /appkit:{m[1]} -->",
        SETTINGS_PAGE.read_text(),
    )


if __name__ == "__main__":
    SETTINGS_PAGE.write_text(committed_settings_page())
    print(f"{SETTINGS_PAGE}: settings table rewritten")
