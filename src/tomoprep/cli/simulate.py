"""``tomoprep simulate`` and ``tomoprep demo``: simulated sessions with ground truth, and the whole pipeline on one."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tomoprep.cli.params import option_parameters
from tomoprep.execution import local_executor
from tomoprep.execution.workflow import StepOutcome, WorkflowStep, run_workflow, workflow_text
from tomoprep.project import init_project
from tomoprep.report import summarize_project, write_report
from tomoprep.simulate.params import SimulateParams

console = Console()

#: Steps of the demo and what it gives them beyond their defaults (alignment at 128 px: 12 Å on the demo field;
#: the CTF with the alignment's axis and tilts; tomograms at bin 8 and at the alignment's working binning, 4;
#: their deconvolved copies; the export to a RELION 5 project folder, ``relion5/`` beside the project).
DEMO_STEPS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("import", {}),
    ("motioncorr", {}),
    ("clean", {}),
    ("align", {"working_size_px": 128}),
    ("ctf", {}),
    ("reconstruct", {"binning": [8, 4]}),
    ("deconvolve", {}),
    ("export", {}),
)


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar fed by ``callback(stage, done, total)``."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        tasks: dict[str, Any] = {}

        def callback(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        yield callback


def simulate_command() -> Callable[..., None]:
    """``tomoprep simulate OUT [options]``, its options generated from :class:`SimulateParams`."""

    def command(*, out: Path, **values: Any) -> None:
        from tomoprep.simulate.session import simulate_session  # torch, scipy, matplotlib: only to simulate

        params = SimulateParams.model_validate(values)
        with progress_bar() as callback:
            simulate_session(out, params, progress=callback)
        console.print(f"Simulated session in [bold]{out}[/bold] (ground truth: {out / 'truth.json'})")

    out = inspect.Parameter(
        "out",
        inspect.Parameter.KEYWORD_ONLY,
        annotation=Annotated[Path, typer.Argument(help="Folder to write the session into (must be new or empty).")],
    )
    command.__signature__ = inspect.Signature([out, *option_parameters(SimulateParams)])  # type: ignore[attr-defined]
    command.__doc__ = "Simulate a tilt-series session (movies, mdoc, gain) with its ground truth in truth.json."
    return command


def demo(
    folder: Annotated[Path, typer.Argument(help="Folder for the simulated session and the project.")] = Path(
        "tomoprep-demo"
    ),
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Tilt series processed in parallel.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the simulated session.")] = 1,
) -> None:
    """Simulate a small realistic session and run the whole workflow on it (written to FOLDER/workflow.toml), to
    tomograms, a RELION 5 project folder and a report, printing where the results are."""
    from tomoprep.simulate.session import simulate_session

    session, project_dir = folder / "session", folder / "project"
    with progress_bar() as callback:
        simulate_session(session, demo_simulation(seed), progress=callback)
    console.print(f"Simulated session: [bold]{session}[/bold] (truth: {session / 'truth.json'})")
    workflow = folder / "workflow.toml"
    steps = [WorkflowStep(name, demo_params(name, folder) | extra) for name, extra in DEMO_STEPS]
    workflow.write_text(workflow_text(steps))

    def say(outcome: StepOutcome) -> None:
        console.print(f"{outcome.name}: {outcome.run.shown_status} -> {project_dir / outcome.run.directory}")

    with init_project(project_dir) as project, local_executor(jobs) as executor:
        outcomes = run_workflow(project, steps, executor=executor, on_step=say)
        if outcomes[-1].run.status != "SUCCEEDED" or len(outcomes) < len(steps):
            console.print(f"[red]{outcomes[-1].run.error}[/red]")
            raise typer.Exit(code=1)
        report = write_report(summarize_project(project), project_dir / "report.html")
    console.print(f"Project: [bold]{project_dir}[/bold]; see `tomoprep status -p {project_dir}`")
    console.print(f"Workflow: [bold]{workflow}[/bold] (`tomoprep workflow run {workflow} -p {project_dir}` runs it "
                  "again: every step is done already)")  # fmt: skip
    pictures = sorted(project_dir.glob("runs/*_reconstruct/*/tomograms/*.png"))
    if pictures:
        console.print(f"Tomograms and their pictures: [bold]{pictures[0].parent.parent.parent}[/bold]/*/tomograms/")
    console.print(f"RELION 5 project folder: [bold]{folder / 'relion5'}[/bold]; report: [bold]{report}[/bold]")


def demo_simulation(seed: int) -> SimulateParams:
    """The demo's session: the demo preset, its ice 500-800 Å thick. Its detector is small (a 1536 Å field), so
    the ice is as thin relative to the field as a 1500-3000 Å lamella is in the 7000 Å field of a 4K camera."""
    return SimulateParams(preset="demo", seed=seed, thickness_min_angstrom=500.0, thickness_max_angstrom=800.0)


def demo_params(step_name: str, folder: Path) -> dict[str, Any]:
    """Parameters the demo gives a step, from the demo's folder (its session in ``session/``)."""
    if step_name == "import":
        session = folder.resolve() / "session"
        return {"mdoc": str(session / "*.mdoc"), "movies": str(session / "frames")}
    if step_name == "export":
        return {"out": str(folder.resolve() / "relion5")}
    return {}
