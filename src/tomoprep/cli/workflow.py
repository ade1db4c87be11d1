"""``tomoprep workflow``: print a workflow file's template, run a workflow file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tomoprep.cli.execution import project_executor, with_execution_options
from tomoprep.cli.help import StackedHelpCommand
from tomoprep.cli.main import ProjectOption, console
from tomoprep.cli.main import _clear_errors as clear_errors


def workflow_app() -> typer.Typer:
    """The ``workflow`` command group: ``template`` and ``run``."""
    app = typer.Typer(no_args_is_help=True, add_completion=False,
                      help="The whole workflow in one TOML file: print a template, run it.")  # fmt: skip

    @app.command("template", cls=StackedHelpCommand)
    @clear_errors
    def template_command() -> None:
        """Print a workflow file with every step's parameters, described, the defaults commented out."""
        from tomoprep.execution.workflow import template

        typer.echo(template(), nl=False)

    @app.command("run", cls=StackedHelpCommand)
    @clear_errors
    @with_execution_options
    def run_command(
        file: Annotated[Path, typer.Argument(help="Workflow file (TOML), e.g. from `tomoprep workflow template`.")],
        project: ProjectOption = Path("."),
        *,
        execution: dict[str, Any],
    ) -> None:
        """Run the steps of a workflow file in order, skipping those already done with the same parameters and
        input and resuming interrupted ones."""
        from tomoprep.execution.workflow import StepOutcome, read_workflow, run_workflow
        from tomoprep.project import init_project, open_project
        from tomoprep.project.store import DB_NAME

        steps = read_workflow(file)
        opened = open_project(project) if (project / DB_NAME).is_file() else init_project(project)

        def say(outcome: StepOutcome) -> None:
            verb = {"skipped": "already done, not run again", "resumed": "resumed", "ran": "ran"}[outcome.action]
            console.print(f"{outcome.name}: {verb}: run {outcome.run.label} {outcome.run.shown_status}",
                          highlight=False)  # fmt: skip

        with opened as proj, project_executor(proj, execution) as (executor, note):
            outcomes = run_workflow(proj, steps, executor=executor, on_step=say, execution_note=note)
            last = outcomes[-1].run
            if last.status != "SUCCEEDED" or len(outcomes) < len(steps):
                console.print(f"[red]The workflow stopped at {outcomes[-1].name}: {last.error or last.status}[/red]",
                              highlight=False, soft_wrap=True)  # fmt: skip
                raise typer.Exit(code=1)
            if all(o.action == "skipped" for o in outcomes):
                console.print("Every step was already done with these parameters: nothing ran.")

    return app
