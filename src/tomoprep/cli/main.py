"""The ``tomoprep`` command: project commands written here, one command per step generated from its Params."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console

from tomoprep import __version__
from tomoprep.cli.params import options_for, values_from_cli
from tomoprep.cli.render import runs_table, tilt_series_table
from tomoprep.errors import TomoprepError
from tomoprep.execution import local_executor, resume_run, run_step
from tomoprep.project import Project, RunRecord, init_project, open_project
from tomoprep.steps import Step, all_steps, get_step

console = Console()
app = typer.Typer(help="tomoprep: cryo-ET preprocessing from raw tilt-series movies to RELION 5.",
                  no_args_is_help=True, add_completion=False)

ProjectOption = Annotated[
    Path, typer.Option("--project", "-p", envvar="TOMOPREP_PROJECT", help="Project folder.", show_default=True)
]
JobsOption = Annotated[int, typer.Option("--jobs", "-j", min=1, help="Tilt series processed in parallel.")]


@app.command()
def init(path: Annotated[Path, typer.Argument(help="Folder of the new project.")]) -> None:
    """Create a project: an index (project.db) and a folder for runs."""
    with init_project(path) as project:
        console.print(f"Created project [bold]{project.root}[/bold]")


@app.command()
def status(
    run: Annotated[str | None, typer.Argument(help="A run to show in detail (number or folder name).")] = None,
    project: ProjectOption = Path("."),
) -> None:
    """List the runs of the project, and the tilt series of a run (default: the newest successful one)."""
    with open_project(project) as proj:
        runs = proj.list_runs()
        console.print(runs_table(runs))
        chosen = proj.get_run(run) if run is not None else next((r for r in reversed(runs) if r.status == "SUCCEEDED"), None)
        if chosen is not None:
            _print_run_detail(proj, chosen)


def _print_run_detail(project: Project, run: RunRecord) -> None:
    step = get_step(run.step)
    try:
        outputs = step.load_inputs(project.run_dir(run))
    except TomoprepError:
        outputs = []
    if outputs:
        console.print(tilt_series_table(outputs, title=f"Tilt series of run {run.label}"))
    for unit in run.units.values():
        if unit.status == "FAILED":
            console.print(f"[red]{unit.name} failed:[/red] {unit.error}")


@app.command()
def repair(project: ProjectOption = Path(".")) -> None:
    """Rebuild the project index from the run folders (run.json files)."""
    with open_project(project) as proj:
        console.print(f"Rebuilt the index from {proj.repair()} run folders.")


@app.command("run")
def run_command(
    resume: Annotated[str, typer.Option("--resume", help="Resume this run (number or folder name).")],
    project: ProjectOption = Path("."),
    jobs: JobsOption = 1,
) -> None:
    """Resume an interrupted or partly failed run without redoing the units already done."""
    with open_project(project) as proj, _executor(jobs) as executor:
        _report(proj, resume_run(proj, resume, executor=executor))


def _executor(jobs: int) -> Any:
    return local_executor(jobs)


def _report(project: Project, run: RunRecord) -> None:
    style = "green" if run.status == "SUCCEEDED" else "red"
    console.print(f"Run [bold]{run.label}[/bold]: [{style}]{run.status}[/{style}]")
    step = get_step(run.step)
    try:
        outputs = step.load_inputs(project.run_dir(run))
    except TomoprepError:
        outputs = []
    if outputs:
        console.print(step.summarize(outputs))
    for unit in run.units.values():
        if unit.status == "FAILED":
            console.print(f"[red]{unit.name} failed:[/red] {unit.error}")
    if run.status != "SUCCEEDED":
        raise typer.Exit(code=1)


def step_command(step: Step) -> click.Command:
    """The click command of a step: one option per Params field, plus --project, --input and --jobs."""

    def callback(project: Path, input_run: str | None, jobs: int, **values: Any) -> None:
        params = values_from_cli(step.params, values)
        with open_project(project) as proj, _executor(jobs) as executor:
            _report(proj, run_step(proj, step, params, input_run=input_run, executor=executor))

    params: list[click.Parameter] = [
        click.Option(["--project", "-p"], type=click.Path(path_type=Path), default=Path("."), envvar="TOMOPREP_PROJECT",
                     show_default=True, help="Project folder."),
        click.Option(["--jobs", "-j"], type=click.IntRange(min=1), default=1, show_default=True,
                     help="Tilt series processed in parallel."),
        *options_for(step.params),
    ]
    if step.consumes:
        params.insert(1, click.Option(["--input", "input_run"], default=None,
                                      help=f"Run to take as input (default: newest successful {'/'.join(step.consumes)})."))
    else:
        params.insert(1, click.Option(["--input", "input_run"], default=None, hidden=True))
    return click.Command(step.name, callback=callback, params=params, help=step.title, short_help=step.title)


def build_cli() -> click.Group:
    """The whole command: typer's project commands plus one generated command per step."""
    group = typer.main.get_command(app)
    assert isinstance(group, click.Group)
    for step in all_steps():
        group.add_command(step_command(step))
    group.params.append(click.Option(["--version"], is_flag=True, expose_value=False, is_eager=True,
                                     callback=_print_version, help="Show the version and exit."))
    return group


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        click.echo(f"tomoprep {__version__}")
        ctx.exit()


def main() -> None:
    """Entry point of the ``tomoprep`` console script; tomoprep's own errors print as one clear line."""
    try:
        build_cli().main(prog_name="tomoprep", standalone_mode=False)
    except click.exceptions.Exit as done:
        raise SystemExit(done.exit_code) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Abort:
        raise SystemExit(130) from None
    except TomoprepError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise SystemExit(2) from None
