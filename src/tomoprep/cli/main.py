"""The ``tomoprep`` command: project commands written here, one command per step generated from its Params."""

from __future__ import annotations

import functools
import inspect
import sqlite3
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from tomoprep import __version__
from tomoprep.cli.crash import crash_message, write_crash_log
from tomoprep.cli.execution import execution_parameters, pop_execution, project_executor, with_execution_options
from tomoprep.cli.help import StackedHelpCommand
from tomoprep.cli.params import option_parameters
from tomoprep.cli.render import runs_table, tilt_series_table
from tomoprep.errors import TomoprepError, disk_full_message, is_disk_full
from tomoprep.execution import resume_run, run_step
from tomoprep.project import Project, RunRecord, init_project, open_project, repair_project
from tomoprep.project.records import MISSING_INPUT
from tomoprep.project.store import DB_NAME, damaged_index_message
from tomoprep.steps import BUILTIN_STEP_MODULES, Step, all_steps, get_step
from tomoprep.steps.kinds import describe, made_stale_by
from tomoprep.steps.unit import WARNING_PREFIX

console = Console()

ProjectOption = Annotated[
    Path,
    typer.Option("--project", "-p", envvar="TOMOPREP_PROJECT", help="Project folder.", show_default=True),
]
JobsOption = Annotated[int, typer.Option("--jobs", "-j", min=1, help="Tilt series processed in parallel.")]


#: Exit status of an error tomoprep did not foresee (its own clear errors exit with 2, a failed run with 1).
CRASH_EXIT_CODE = 3


def _clear_errors(command: Callable[..., None]) -> Callable[..., None]:
    """tomoprep's own errors print as one line (file, value, fix) and exit with status 2, no traceback; so do an
    index SQLite cannot read and a full device, each with the fix; any other error goes to :func:`_last_resort`."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except TomoprepError as exc:  # escaped: a message may name a workflow table, [import], which is no markup
            console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None
        except (sqlite3.DatabaseError, OSError) as exc:
            root = Path(kwargs.get("project") or kwargs.get("path") or ".").resolve()
            if is_disk_full(exc):
                message = disk_full_message(exc, root / DB_NAME, None)
            elif isinstance(exc, sqlite3.DatabaseError):
                message = damaged_index_message(root / DB_NAME, exc)
            else:
                _last_resort(exc)
            console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
            raise  # how typer ends a command or reports a wrong option: not errors of tomoprep
        except Exception as exc:
            _last_resort(exc)

    return wrapper


def _last_resort(exc: Exception) -> NoReturn:
    """Show an unforeseen error as a message, its traceback in a log file, and exit with CRASH_EXIT_CODE."""
    message = crash_message(exc, write_crash_log(exc))
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=CRASH_EXIT_CODE) from None


def init(path: Annotated[Path, typer.Argument(help="Folder of the new project.")]) -> None:
    """Create a project: an index (project.db) and a folder for runs (`repair` rebuilds a lost index)."""
    with init_project(path) as project:
        console.print(f"Created project [bold]{project.root}[/bold]")


def status(
    run: Annotated[str | None, typer.Argument(help="A run to show in detail (number or folder name).")] = None,
    project: ProjectOption = Path("."),
) -> None:
    """List the runs of the project, and the tilt series of a run (default: the newest successful one)."""
    with open_project(project, read_only=True) as proj:
        runs = proj.list_runs()
        console.print(runs_table(runs))
        for lost in (r for r in runs if (r.error or "").startswith(MISSING_INPUT)):
            note = (lost.error or "").splitlines()[0]
            console.print(f"[yellow]warning:[/yellow] run {lost.label}: {note}", highlight=False, soft_wrap=True)
        succeeded = [r for r in runs if r.status == "SUCCEEDED"]
        chosen = proj.get_run(run) if run is not None else (succeeded[-1] if succeeded else None)
        if chosen is not None:
            _print_outputs(proj, chosen, title=f"Tilt series of run {chosen.label}")


def repair(project: ProjectOption = Path(".")) -> None:
    """Rebuild the project index (project.db) from the run folders (run.json files), if lost or damaged."""
    report = repair_project(project)
    if report.set_aside is not None:
        console.print(f"The damaged index was kept as {report.set_aside}.", highlight=False, soft_wrap=True)
    console.print(f"Rebuilt the index from {report.n_runs} run folder{'' if report.n_runs == 1 else 's'}.")
    for run_id, gone in report.missing_inputs.items():
        console.print(
            f"[yellow]warning:[/yellow] run {run_id:03d} took as input run(s) {', '.join(f'{i:03d}' for i in gone)},"
            " whose folder is gone: its outputs stay, but it cannot be resumed.",
            highlight=False,
            soft_wrap=True,
        )


def resume(
    resume: Annotated[str, typer.Option("--resume", help="Resume this run (number or folder name).")],
    project: ProjectOption = Path("."),
    *,
    execution: dict[str, Any],
) -> None:
    """Resume an interrupted or partly failed run without redoing the units already done."""
    with open_project(project) as proj, project_executor(proj, execution) as (executor, note):
        _report(proj, resume_run(proj, resume, executor=executor, execution_note=note))


def report(
    project: ProjectOption = Path("."),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="HTML file to write; default: report.html in the project.")
    ] = None,
) -> None:
    """Write one self-contained HTML page of what was done: runs, parameters, versions, timings, pictures, and
    per tilt series what was decided and why."""
    from tomoprep.report import summarize_project, write_report

    with open_project(project, read_only=True) as proj:
        path = write_report(summarize_project(proj), output or proj.root / "report.html")
    console.print(f"Report: [bold]{path}[/bold]", highlight=False)


def serve(
    project: ProjectOption = Path("."),
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port; 0 takes a free one.")] = 0,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; another than 127.0.0.1 exposes the UI to the network.")
    ] = "127.0.0.1",
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="TOMOPREP_TOKEN", help="Token to require (default: a new random one)."),
    ] = None,
) -> None:
    """Serve the project's web UI; prints the address to open (with its token) and runs until Ctrl-C."""
    from tomoprep.web.serve import serve as run_server

    run_server(project, host=host, port=port, token=token)


def _print_outputs(project: Project, run: RunRecord, *, title: str) -> None:
    """The tilt series of ``run`` as a table, the step's one-line summary, and the units that failed."""
    try:
        step = get_step(run.step)
        outputs = step.load_inputs(project.run_dir(run))
    except TomoprepError:
        outputs = []
    if outputs:
        console.print(tilt_series_table(outputs, title=title))
        console.print(step.summarize(outputs), highlight=False, soft_wrap=True)
    for unit in run.units.values():
        if unit.status == "FAILED":
            console.print(f"[red]{unit.name} failed:[/red] {unit.error}", highlight=False, soft_wrap=True)


def _print_warnings(project: Project, run: RunRecord) -> None:
    for _, level, unit, message in project.events(run.id):
        if level == "WARNING":
            text = message.removeprefix(WARNING_PREFIX).strip()
            console.print(f"[yellow]warning:[/yellow] {unit}: {text}", highlight=False, soft_wrap=True)


def _report(project: Project, run: RunRecord) -> None:
    """The run's outcome; a run that is not wholly done ends the command with status 1 and says what failed."""
    shown = run.shown_status
    style = "green" if shown == "SUCCEEDED" else "red"
    console.print(f"Run [bold]{run.label}[/bold]: [{style}]{shown}[/{style}]")
    _print_warnings(project, run)
    _print_outputs(project, run, title=f"Tilt series of run {run.label}")
    if shown == "SUCCEEDED":
        return
    failed = run.failed_units
    if failed:
        console.print(
            f"{len(failed)} of {len(run.units)} tilt series failed ({', '.join(failed)}); the log is "
            f"{project.run_dir(run) / 'log.txt'}. Fix their inputs, then `tomoprep run --resume {run.id}` "
            "re-runs only those.",
            highlight=False,
            soft_wrap=True,
        )
    elif run.error:
        console.print(f"[red]{run.error}[/red]", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


def step_command(step: Step) -> Callable[..., None]:
    """The command of a step: one option per Params field, plus --project, --input and where units run."""

    def command(*, project: Path, input_run: str | None, **values: Any) -> None:
        execution = pop_execution(values)
        with open_project(project) as proj, project_executor(proj, execution) as (executor, note):
            _report(proj, run_step(proj, step, values, input_run=input_run, executor=executor, execution_note=note))

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
                    hidden=not step.needs,
                    help=f"Run to take as input (default: the newest successful run that holds {describe(step.needs)}"
                    f"{_stale_note(step)}).",
                ),
            ],
        ),
    ]
    parameters = [*common, *option_parameters(step.params), *execution_parameters()]
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__doc__ = step.title
    command.__name__ = step.name
    return command


def _stale_note(step: Step) -> str:
    """``, and no ...`` where the step would make kinds of its input stale (see tomoprep.steps.kinds)."""
    stale = made_stale_by(step.makes)
    return f", and no {describe(stale)}" if stale else ""


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


PROJECT_COMMANDS = (
    "init",
    "status",
    "repair",
    "run",
    "report",
    "serve",
    "simulate",
    "demo",
    "workflow",
    "config",
    "watch",
)


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
    app.command("run", cls=StackedHelpCommand)(_clear_errors(with_execution_options(resume)))
    app.command("report", cls=StackedHelpCommand)(_clear_errors(report))
    app.command("serve", cls=StackedHelpCommand)(_clear_errors(serve))
    from tomoprep.cli.config import config_app

    app.add_typer(config_app(), name="config")

    from tomoprep.cli.watch import watch_command  # a project command; its module imports this one

    app.command("watch", cls=StackedHelpCommand)(_clear_errors(watch_command()))
    if command in (None, "workflow") or command not in (*PROJECT_COMMANDS, *BUILTIN_STEP_MODULES):
        from tomoprep.cli.workflow import workflow_app

        app.add_typer(workflow_app(), name="workflow")
    if command in PROJECT_COMMANDS:
        steps: tuple[Step, ...] = ()
    elif command in BUILTIN_STEP_MODULES:
        steps = (get_step(command),)
    else:
        steps = _all_steps_warning_of_broken_plugins()
    for step in steps:
        app.command(step.name, help=step.title, cls=StackedHelpCommand)(_clear_errors(step_command(step)))
    if command in (None, "simulate", "demo") or command not in (*PROJECT_COMMANDS, *BUILTIN_STEP_MODULES):
        from tomoprep.cli.simulate import demo, simulate_command

        app.command("simulate", cls=StackedHelpCommand)(_clear_errors(simulate_command()))
        app.command("demo", cls=StackedHelpCommand)(_clear_errors(demo))
    return app


def _all_steps_warning_of_broken_plugins() -> tuple[Step, ...]:
    """:func:`all_steps`, its warnings about plugins left out printed as the command line's warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        steps = all_steps()
    for warning in caught:
        console.print(f"[yellow]warning:[/yellow] {warning.message}", highlight=False, soft_wrap=True)
    return steps


def _command_name(args: list[str]) -> str | None:
    """The command named on a command line (the first argument that is not an option), if any."""
    return next((arg for arg in args if not arg.startswith("-")), None)


def main() -> None:
    """Entry point of the ``tomoprep`` console script: no traceback reaches the terminal (see cli/crash.py)."""
    try:
        build_app(_command_name(sys.argv[1:]))(prog_name="tomoprep")
    except TomoprepError as exc:  # a clear error raised while the command line is built
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except Exception as exc:
        try:
            _last_resort(exc)
        except typer.Exit as exit_:
            sys.exit(exit_.exit_code)
