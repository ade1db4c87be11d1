"""The ``tomoprep`` command: project commands written here, one command per step generated from its Params."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tomoprep import __version__
from tomoprep.cli.help import StackedHelpCommand
from tomoprep.cli.params import option_parameters
from tomoprep.cli.render import runs_table, tilt_series_table
from tomoprep.errors import TomoprepError
from tomoprep.execution import local_executor, resume_run, run_step
from tomoprep.project import Project, RunRecord, init_project, open_project
from tomoprep.steps import BUILTIN_STEP_MODULES, Step, all_steps, get_step
from tomoprep.steps.base import WARNING_PREFIX

console = Console()

ProjectOption = Annotated[
    Path,
    typer.Option("--project", "-p", envvar="TOMOPREP_PROJECT", help="Project folder.", show_default=True),
]
JobsOption = Annotated[int, typer.Option("--jobs", "-j", min=1, help="Tilt series processed in parallel.")]


def _clear_errors(command: Callable[..., None]) -> Callable[..., None]:
    """tomoprep's own errors print as one line (file, value, fix) and exit with status 2, no traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except TomoprepError as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper


def init(path: Annotated[Path, typer.Argument(help="Folder of the new project.")]) -> None:
    """Create a project: an index (project.db) and a folder for runs."""
    with init_project(path) as project:
        console.print(f"Created project [bold]{project.root}[/bold]")


def status(
    run: Annotated[str | None, typer.Argument(help="A run to show in detail (number or folder name).")] = None,
    project: ProjectOption = Path("."),
) -> None:
    """List the runs of the project, and the tilt series of a run (default: the newest successful one)."""
    with open_project(project) as proj:
        runs = proj.list_runs()
        console.print(runs_table(runs))
        succeeded = [r for r in runs if r.status == "SUCCEEDED"]
        chosen = proj.get_run(run) if run is not None else (succeeded[-1] if succeeded else None)
        if chosen is not None:
            _print_outputs(proj, chosen, title=f"Tilt series of run {chosen.label}")


def repair(project: ProjectOption = Path(".")) -> None:
    """Rebuild the project index from the run folders (run.json files)."""
    with open_project(project) as proj:
        console.print(f"Rebuilt the index from {proj.repair()} run folders.")


def resume(
    resume: Annotated[str, typer.Option("--resume", help="Resume this run (number or folder name).")],
    project: ProjectOption = Path("."),
    jobs: JobsOption = 1,
) -> None:
    """Resume an interrupted or partly failed run without redoing the units already done."""
    with open_project(project) as proj, local_executor(jobs) as executor:
        _report(proj, resume_run(proj, resume, executor=executor))


def _print_outputs(project: Project, run: RunRecord, *, title: str) -> None:
    try:
        outputs = get_step(run.step).load_inputs(project.run_dir(run))
    except TomoprepError:
        outputs = []
    if outputs:
        console.print(tilt_series_table(outputs, title=title))
    for unit in run.units.values():
        if unit.status == "FAILED":
            console.print(f"[red]{unit.name} failed:[/red] {unit.error}", highlight=False, soft_wrap=True)


def _print_warnings(project: Project, run: RunRecord) -> None:
    for _, level, unit, message in project.events(run.id):
        if level == "WARNING":
            text = message.removeprefix(WARNING_PREFIX).strip()
            console.print(f"[yellow]warning:[/yellow] {unit}: {text}", highlight=False, soft_wrap=True)


def _report(project: Project, run: RunRecord) -> None:
    style = "green" if run.status == "SUCCEEDED" else "red"
    console.print(f"Run [bold]{run.label}[/bold]: [{style}]{run.status}[/{style}]")
    _print_warnings(project, run)
    _print_outputs(project, run, title=f"Tilt series of run {run.label}")
    if run.status != "SUCCEEDED":
        raise typer.Exit(code=1)


def step_command(step: Step) -> Callable[..., None]:
    """The command of a step: one option per Params field, plus --project, --input and --jobs."""

    def command(*, project: Path, input_run: str | None, jobs: int, **values: Any) -> None:
        with open_project(project) as proj, local_executor(jobs) as executor:
            _report(proj, run_step(proj, step, values, input_run=input_run, executor=executor))

    consumes = "/".join(step.consumes)
    common = [
        inspect.Parameter("project", inspect.Parameter.KEYWORD_ONLY, default=Path("."), annotation=ProjectOption),
        inspect.Parameter(
            "input_run",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                str | None,
                typer.Option(
                    "--input",
                    hidden=not step.consumes,
                    help=f"Run to take as input (default: the newest successful {consumes} run).",
                ),
            ],
        ),
        inspect.Parameter("jobs", inspect.Parameter.KEYWORD_ONLY, default=1, annotation=JobsOption),
    ]
    command.__signature__ = inspect.Signature([*common, *option_parameters(step.params)])  # type: ignore[attr-defined]
    command.__doc__ = step.title
    command.__name__ = step.name
    return command


def _version(value: bool) -> None:
    if value:
        console.print(f"tomoprep {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """tomoprep: cryo-ET preprocessing from raw tilt-series movies to RELION 5."""


PROJECT_COMMANDS = ("init", "status", "repair", "run", "simulate", "demo")


def build_app(command: str | None = None) -> typer.Typer:
    """The whole command: project commands plus one generated command per step (plugins included).

    Given the name of the ``command`` about to run, a project command or a built-in step, the other steps'
    commands are left out, so their modules (and the libraries they import) are not loaded: ``tomoprep import``
    starts in well under a second instead of three.
    """
    app = typer.Typer(no_args_is_help=True, add_completion=False, callback=_root)
    app.command(cls=StackedHelpCommand)(_clear_errors(init))
    app.command(cls=StackedHelpCommand)(_clear_errors(status))
    app.command(cls=StackedHelpCommand)(_clear_errors(repair))
    app.command("run", cls=StackedHelpCommand)(_clear_errors(resume))
    if command in PROJECT_COMMANDS:
        steps: tuple[Step, ...] = ()
    elif command in BUILTIN_STEP_MODULES:
        steps = (get_step(command),)
    else:
        steps = all_steps()
    for step in steps:
        app.command(step.name, help=step.title, cls=StackedHelpCommand)(_clear_errors(step_command(step)))
    if command in (None, "simulate", "demo") or command not in (*PROJECT_COMMANDS, *BUILTIN_STEP_MODULES):
        from tomoprep.cli.simulate import demo, simulate_command

        app.command("simulate", cls=StackedHelpCommand)(_clear_errors(simulate_command()))
        app.command("demo", cls=StackedHelpCommand)(_clear_errors(demo))
    return app


def _command_name(args: list[str]) -> str | None:
    """The command named on a command line (the first argument that is not an option), if any."""
    return next((arg for arg in args if not arg.startswith("-")), None)


def main() -> None:
    """Entry point of the ``tomoprep`` console script."""
    build_app(_command_name(sys.argv[1:]))(prog_name="tomoprep")
