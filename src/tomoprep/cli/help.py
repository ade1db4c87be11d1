"""``--help`` of every command, laid out so that no option name is ever cut, whatever the terminal width.

Typer's rich help puts names, types and descriptions side by side in a table; at 80 columns the name column of a
step (``--eer-dose-per-group-e-per-angstrom2``) is cut to ``--eer-dose-per-gro…``. Here each option takes one line
for its names, type and default, and its description follows on the lines below, indented and wrapped to the
width left: names stay whole and only descriptions wrap.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from typing import Any

import typer.core
from rich.console import Console, Group
from rich.padding import Padding
from rich.panel import Panel
from rich.text import Text

#: Indent of a description under its option, in columns.
DESCRIPTION_INDENT = 4
OPTIONS_PANEL = "Options"
ARGUMENTS_PANEL = "Arguments"


def _entry(names: str, description: str) -> Group:
    """One option: its names (and type) on the first line, the description indented below."""
    head = Text(overflow="fold")  # a name wider than the terminal folds instead of being cut
    for k, word in enumerate(names.split(" ")):
        head.append(" " if k else "")
        style = "yellow" if word.startswith("<") else "bold cyan" if word != "/" else ""
        head.append(word, style=style)
    parts: list[Any] = [head]
    if description:
        parts.append(Padding(Text(description), (0, 0, 0, DESCRIPTION_INDENT)))
    return Group(*parts)


def _panels(command: typer.core.TyperCommand, ctx: Any) -> dict[str, list[Group]]:
    """The entries of every visible parameter, by the panel they are shown in, in declaration order."""
    panels: dict[str, list[Group]] = defaultdict(list)
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        record = param.get_help_record(ctx)
        if record is not None:
            default = ARGUMENTS_PANEL if param.param_type_name == "argument" else OPTIONS_PANEL
            panels[getattr(param, "rich_help_panel", None) or default].append(_entry(*record))
    return panels


def print_help(command: typer.core.TyperCommand, ctx: Any, console: Console | None = None) -> None:
    """Usage line, the command's description, then one panel per group of options (see module notes)."""
    console = console or Console(highlight=False)
    pieces = " ".join(command.collect_usage_pieces(ctx))
    console.print(Text.assemble(" Usage: ", (f"{ctx.command_path} {pieces}", "bold")))
    if command.help:
        console.print()
        console.print(Padding(Text(inspect.cleandoc(command.help)), (0, 0, 0, 1)))
    console.print()
    panels = _panels(command, ctx)
    order = [ARGUMENTS_PANEL, OPTIONS_PANEL] + [p for p in panels if p not in (ARGUMENTS_PANEL, OPTIONS_PANEL)]
    for title in order:
        if panels.get(title):
            console.print(Panel(Group(*panels[title]), title=title, title_align="left", border_style="dim"))


class StackedHelpCommand(typer.core.TyperCommand):
    """A typer command whose ``--help`` is :func:`print_help`'s layout."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        print_help(self, ctx)
