"""``--help`` of every command shows every option name whole, at any usual terminal width."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from tomoprep.cli.main import build_app
from tomoprep.cli.params import cli_extra, option_name
from tomoprep.simulate.params import SimulateParams
from tomoprep.steps import builtin_steps

APP = build_app()
COMMANDS = typer.main.get_command(APP).commands  # type: ignore[attr-defined]


def _help(command: str, columns: int) -> str:
    env = {"COLUMNS": str(columns), "TERMINAL_WIDTH": str(columns)}
    result = CliRunner().invoke(APP, [command, "--help"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _whole(name: str, text: str) -> bool:
    """``name`` appears as a whole word: not cut (``--eer-dose-per-gro…``) nor part of a longer name."""
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


def _option_names(command: str) -> list[str]:
    names = []
    for param in COMMANDS[command].params:
        if param.param_type_name == "option" and not param.hidden:
            names += [*param.opts, *param.secondary_opts]
    return names


@pytest.mark.parametrize("columns", [60, 80, 120])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_name_is_whole(command: str, columns: int) -> None:
    text = _help(command, columns)
    assert all(len(line) <= columns for line in text.splitlines()), "a line is wider than the terminal"
    cut = [name for name in _option_names(command) if not _whole(name, text)]
    assert not cut, f"cut or missing at {columns} columns: {cut}"


@pytest.mark.parametrize("step", builtin_steps(), ids=lambda s: s.name)
def test_every_step_parameter_is_an_option_shown_at_80_columns(step) -> None:
    """Every parameter shows as its option, or, where the step takes it as an argument, as its argument's name."""
    text = _help(step.name, 80)
    for field, info in step.params.model_fields.items():
        shown = field.upper() if cli_extra(info).get("argument") else option_name(field)
        assert _whole(shown, text), field


def test_every_simulate_parameter_is_shown_at_80_columns() -> None:
    text = _help("simulate", 80)
    assert all(_whole(option_name(field), text) for field in SimulateParams.model_fields)


def test_descriptions_wrap_under_their_option() -> None:
    """A long description continues on the next lines, indented under its option, without losing words."""
    text = _help("align", 60)
    flat = " ".join(text.replace("│", " ").split())
    assert "the defocus gradient of tilted images can, given the hand." in flat


def test_a_repeatable_option_shows_the_type_of_one_value() -> None:
    text = _help("reconstruct", 80)
    assert "--binning <int>" in text
    assert "list[" not in text
