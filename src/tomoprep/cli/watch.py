"""``tomoprep watch SESSION_DIR``: process each tilt series of a session folder as soon as it is complete."""

from __future__ import annotations

import inspect
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from tomoprep.cli.execution import execution_parameters, pop_execution, project_executor
from tomoprep.cli.main import ProjectOption, console


def _say(on_terminal: bool) -> Callable[[str, bool], None]:
    """Print events as lines; on a terminal the status line stays at the bottom, rewritten in place."""

    def say(text: str, status: bool) -> None:
        if not on_terminal:
            print(f"[{text}]" if status else text, flush=True)
            return
        width = shutil.get_terminal_size().columns
        sys.stdout.write("\r\x1b[2K" + (text[: width - 1] if status else text + "\n"))
        sys.stdout.flush()

    return say


def watch(
    *,
    session: Path,
    project: Path,
    workflow: Path | None,
    until_idle: float | None,
    settle: float,
    poll: float,
    missing_timeout: float | None,
    mdoc: str,
    movies: Path | None,
    parallel: int,
    **execution: Any,
) -> None:
    """Watch a session folder while the microscope writes it: import each tilt series once its mdoc and every
    movie it names are there and unchanged for --settle seconds, and run it through the workflow (default: every
    step with its defaults) in runs of its own, while collection goes on. Stopped or killed, it goes on where it
    was when started again: what is done, and what is left, is read from the project."""
    from tomoprep.execution.workflow import read_workflow
    from tomoprep.live.chains import chain_template, default_workflow
    from tomoprep.live.session import mdoc_glob_of
    from tomoprep.live.watch import Watcher, WatchSettings
    from tomoprep.project import init_project, open_project
    from tomoprep.project.store import DB_NAME

    steps = read_workflow(workflow) if workflow is not None else default_workflow()
    given_movies = steps[0].values.get("movies") if steps and steps[0].name == "import" else None
    movies_dir = (session / movies) if movies is not None else (Path(given_movies) if given_movies else None)
    movies_dir = None if movies_dir is None else movies_dir.expanduser().resolve()
    template = chain_template(steps, mdoc_glob=mdoc_glob_of(session, mdoc), movies_dir=movies_dir,
                              project_root=project, source=workflow)  # fmt: skip
    settings = WatchSettings(settle_s=settle, poll_s=poll, until_idle_s=until_idle, missing_timeout_s=missing_timeout,
                             parallel=parallel)  # fmt: skip
    opened = open_project(project) if (project / DB_NAME).is_file() else init_project(project)
    say = _say(sys.stdout.isatty())
    with opened as proj, project_executor(proj, pop_execution(execution)) as (executor, note):
        watcher = Watcher(proj, template, settings, executor=executor, say=say, execution_note=note)
        where = f"movies in {movies_dir}" if movies_dir is not None else "movies beside their mdoc"
        say(f"Watching {template.mdoc_glob} ({where}) into {proj.root}, settle {settle:g} s; Ctrl-C stops.", False)
        try:
            watcher.watch()
        except KeyboardInterrupt:
            say("", True)
            console.print("Stopped. Run the same command again to go on: interrupted runs are resumed.")
            raise typer.Exit(code=130) from None
    say(watcher.status_line(), False)
    if watcher.counts()["failed"]:
        failed = [name for name, s in watcher.series.items() if s.state == "failed"]
        console.print(f"[red]failed:[/red] {', '.join(failed)} (`tomoprep status -p {project}` shows why)",
                      highlight=False, soft_wrap=True)  # fmt: skip
        raise typer.Exit(code=1)


def watch_command() -> Callable[..., None]:
    """:func:`watch` with its options and the executor options every step command has."""

    def option(annotation: Any, default: Any, *flags: str, text: str, **limits: Any) -> inspect.Parameter:
        name = flags[0].lstrip("-").replace("-", "_")
        typed = Annotated[annotation, typer.Option(*flags, help=text, **limits)]
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=typed)

    session = inspect.Parameter("session", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[
        Path, typer.Argument(metavar="SESSION_DIR", help="The session folder the microscope writes.",
                             exists=True, file_okay=False)])  # fmt: skip
    parameters = [
        session,
        inspect.Parameter("project", inspect.Parameter.KEYWORD_ONLY, default=Path("."), annotation=ProjectOption),
        option(Path | None, None, "--workflow", text="Workflow file (TOML, `tomoprep workflow template`); default: "
               "every step with its defaults. Its [import] mdoc is replaced by the session's."),
        option(float | None, None, "--until-idle", text="End after this many seconds without a new or changed file, "
               "once every series taken is processed; default: run until Ctrl-C.", min=0.0),
        option(float, 120.0, "--settle", text="Seconds a series' files must stay unchanged, every movie there, "
               "before it is taken; longer than the time between two tilts.", min=0.0),
        option(float, 5.0, "--poll", text="Seconds between two looks at the session folder.", min=0.1),
        option(float | None, None, "--missing-timeout", text="Take a series whose mdoc names movies that are "
               "still missing once nothing of it changed for this many seconds (the import's on_bad_movie decides "
               "what becomes of those tilts); default: wait for them.", min=0.0),
        option(str, "*.mdoc", "--mdoc", text="Glob of the mdoc files, relative to SESSION_DIR ('**/*.mdoc' for "
               "subfolders too)."),
        option(Path | None, None, "--movies", text="Folder of the movies, relative to SESSION_DIR; default: the "
               "workflow's [import] movies, else each mdoc's folder."),
        option(int, 1, "--parallel", text="Series whose chains run at once (each run's unit on the executor: give "
               "as many --jobs); Ctrl-C then lets the steps in progress finish.", min=1),
        *execution_parameters(),
    ]  # fmt: skip

    def command(**values: Any) -> None:
        watch(**values)

    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__doc__ = watch.__doc__
    command.__name__ = "watch"
    return command
