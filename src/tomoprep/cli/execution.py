"""Where a command's units run: ``--jobs`` local processes, or a Dask cluster (``--executor dask``).

Every command that runs steps takes the same options (:data:`tomoprep.execution.options.OPTIONS`); one not given
takes the project's setting (``tomoprep config``), else its default, so the typer options default to ``None``
("not given").
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor
from contextlib import AbstractContextManager, contextmanager
from typing import Annotated, Any, Literal

import typer

from tomoprep.execution.options import OPTIONS, Execution, resolve_execution, setting_name
from tomoprep.project import Project
from tomoprep.project.settings import read_settings, settings_path

PANEL = "Where units run"

#: The command line's type of each option (the rules beyond the type are checked by the option's own parse).
_TYPES: dict[str, Any] = {"executor": Literal["local", "dask"], "cluster": Literal["local", "slurm"]}

__all__ = ["OPTIONS", "execution_parameters", "executor_for", "make_executor", "pop_execution", "project_executor",
           "with_execution_options"]  # fmt: skip


def execution_parameters() -> list[inspect.Parameter]:
    """The options as keyword-only typer parameters, in their own help panel, each ``None`` when not given."""
    parameters = []
    for name, option in OPTIONS.items():
        kind = _TYPES.get(name, int if isinstance(option.default, int) else str)
        names = ("--jobs", "-j") if name == "jobs" else ("--" + setting_name(name),)
        default = "none" if option.default is None else option.default
        text = f"{option.help} [default: {default}, or the project's setting (tomoprep config)]"
        typer_option = typer.Option(*names, help=text, rich_help_panel=PANEL, show_default=False)
        parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                            annotation=Annotated[kind | None, typer_option]))  # fmt: skip
    return parameters


def pop_execution(values: dict[str, Any]) -> dict[str, Any]:
    """Take the execution options out of a command's values (the rest are the step's parameters)."""
    return {name: values.pop(name) for name in list(OPTIONS) if name in values}


def with_execution_options(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` with the execution options added to its options; it receives what the command line gave of
    them as one mapping, ``execution``."""
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "execution"]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        command(*args, execution=pop_execution(kwargs), **kwargs)

    wrapper.__signature__ = inspect.Signature([*own, *execution_parameters()])  # type: ignore[attr-defined]
    return wrapper


def executor_for(execution: Execution) -> AbstractContextManager[Executor]:
    """The executor ``execution`` asks for, as a context manager."""
    from tomoprep.execution import local_executor

    values = execution.values
    if values["executor"] != "dask":
        return local_executor(values["jobs"])
    from tomoprep.execution.dask_executor import ClusterSettings, dask_executor

    settings = {k: v for k, v in values.items() if k not in ("executor", "jobs")}
    return dask_executor(ClusterSettings(workers=values["jobs"], **settings))


def make_executor(jobs: int | None, options: Mapping[str, Any]) -> AbstractContextManager[Executor]:
    """The executor the command line's ``jobs`` and other ``options`` ask for, the defaults where not given (no
    project settings: a command on a project takes :func:`project_executor`)."""
    return executor_for(resolve_execution({**options, "jobs": jobs}, {}))


@contextmanager
def project_executor(project: Project, given: Mapping[str, Any]) -> Iterator[tuple[Executor, str]]:
    """The executor for a command on ``project``: the options the command line ``given``, else the project's
    settings, else the defaults; with the line that says where each came from, for the run's log."""
    execution = resolve_execution(given, read_settings(project.root), settings_file=str(settings_path(project.root)))
    with executor_for(execution) as executor:
        yield executor, execution.note()
