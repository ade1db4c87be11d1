"""``tomoprep config``: the project's settings of where units run (``settings.toml`` in the project folder).

Every command that runs steps takes them as its defaults; an option given on the command line wins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tomoprep.cli.help import StackedHelpCommand
from tomoprep.cli.main import ProjectOption, console
from tomoprep.cli.main import _clear_errors as clear_errors
from tomoprep.execution.options import OPTIONS, check_option, option_name, resolve_execution, setting_name
from tomoprep.project import open_project
from tomoprep.project.settings import Value, change_setting, read_settings, settings_path

KeyArgument = Annotated[str, typer.Argument(help="The setting, e.g. executor (`tomoprep config list` shows all).")]


def _shown(value: object) -> str:
    return "none" if value is None else str(value)


def _spellings(root: Path, name: str) -> list[str]:
    """The keys of the project's settings file that name option ``name`` (``min-jobs``, or ``min_jobs`` written by
    hand)."""
    return [key for key in read_settings(root) if key.strip().lower().replace("_", "-") == setting_name(name)]


def _kept(root: Path, name: str) -> Value | None:
    """The value the project keeps for option ``name``, as stored, if any."""
    settings = read_settings(root)
    return next((settings[key] for key in _spellings(root, name)), None)


def _forget(root: Path, name: str, *, keep: str | None = None) -> None:
    """Remove option ``name``'s keys from the project's settings, all but ``keep``."""
    for key in _spellings(root, name):
        if key != keep:
            change_setting(root, key, None)


def config_app() -> typer.Typer:
    """The ``config`` command group: ``set``, ``get``, ``unset`` and ``list``."""
    app = typer.Typer(no_args_is_help=True, add_completion=False,
                      help="The project's settings of where units run (executor, cluster, jobs, ...): the defaults "
                           "of every command that runs steps; an option on the command line wins.")  # fmt: skip

    @app.command("set", cls=StackedHelpCommand)
    @clear_errors
    def set_command(key: KeyArgument, value: Annotated[str, typer.Argument(help="Its value.")],
                    project: ProjectOption = Path(".")) -> None:  # fmt: skip
        """Keep a setting in the project, checked by the rules of its command-line option."""
        name = option_name(key)
        checked = check_option(name, value)
        with open_project(project) as proj:
            before = _kept(proj.root, name)
            _forget(proj.root, name, keep=setting_name(name))
            change_setting(proj.root, setting_name(name), checked)
            proj.log_event(None, f"setting {setting_name(name)} = {checked!r}")
        was = f"{before!r} in the project" if before is not None else f"the default, {_shown(OPTIONS[name].default)}"
        console.print(f"{setting_name(name)} = {checked} (was {was})", highlight=False)

    @app.command("get", cls=StackedHelpCommand)
    @clear_errors
    def get_command(key: Annotated[str | None, typer.Argument(help="The setting; none: every setting kept.")] = None,
                    project: ProjectOption = Path(".")) -> None:  # fmt: skip
        """Print the value a setting gives commands (the project's, else the default); no key: the project's."""
        with open_project(project, read_only=True) as proj:
            settings = read_settings(proj.root)
            execution = resolve_execution({}, settings, settings_file=str(settings_path(proj.root)))
        if key is None:
            for name in (option_name(k) for k in settings):
                typer.echo(f"{setting_name(name)} = {execution.values[name]}")
            return
        typer.echo(_shown(execution.values[option_name(key)]))

    @app.command("unset", cls=StackedHelpCommand)
    @clear_errors
    def unset_command(key: KeyArgument, project: ProjectOption = Path(".")) -> None:
        """Remove a setting from the project: commands take its default again."""
        name = option_name(key)
        with open_project(project) as proj:
            before = _kept(proj.root, name)
            _forget(proj.root, name)
            if before is not None:
                proj.log_event(None, f"setting {setting_name(name)} removed")
        state = "removed" if before is not None else "was not set"
        console.print(f"{setting_name(name)}: {state}; the default is {_shown(OPTIONS[name].default)}",
                      highlight=False)  # fmt: skip

    @app.command("list", cls=StackedHelpCommand)
    @clear_errors
    def list_command(project: ProjectOption = Path(".")) -> None:
        """Show every setting: its value, whether the project keeps it or it is the default, what it takes."""
        with open_project(project, read_only=True) as proj:
            path = settings_path(proj.root)
            execution = resolve_execution({}, read_settings(proj.root), settings_file=str(path))
        table = Table(title=f"Settings ({path})")
        for column in ("setting", "value", "from", "takes"):
            table.add_column(column)
        for name, option in OPTIONS.items():
            table.add_row(setting_name(name), _shown(execution.values[name]), execution.sources[name], option.allowed)
        console.print(table)

    return app
