"""Where a command's units run: ``--jobs`` local processes, or a Dask cluster (``--executor dask``)."""

from __future__ import annotations

import inspect
from concurrent.futures import Executor
from contextlib import AbstractContextManager
from typing import Annotated, Any, Literal

import typer

PANEL = "Where units run"

#: The options, their types and defaults (besides --jobs): ``name -> (annotation, default, help)``.
OPTIONS: dict[str, tuple[Any, Any, str]] = {
    "executor": (Literal["local", "dask"], "local", "local: this machine (--jobs processes); dask: a Dask cluster."),
    "scheduler": (str | None, None, "Dask: address of a running scheduler (tcp://HOST:8786) instead of starting a "
                  "cluster."),
    "cluster": (Literal["local", "slurm"], "local", "Dask without --scheduler: local worker processes (--jobs of "
                "them) or SLURM jobs (dask-jobqueue)."),
    "cores": (int, 8, "SLURM: cores per job."),
    "memory": (str, "32GB", "SLURM: memory per job."),
    "gpus": (int, 0, "SLURM: GPUs per job (--gres=gpu:N)."),
    "queue": (str | None, None, "SLURM: partition."),
    "walltime": (str, "04:00:00", "SLURM: time limit per job."),
    "min_jobs": (int, 0, "SLURM: fewest jobs kept while the run lasts."),
    "max_jobs": (int, 4, "SLURM: most jobs at once."),
    "max_worker_losses": (int, 1, "Dask: times a unit is run again on another worker when its worker is lost."),
}  # fmt: skip


def execution_parameters() -> list[inspect.Parameter]:
    """The options above as keyword-only typer parameters, in their own help panel."""
    parameters = []
    for name, (annotation, default, text) in OPTIONS.items():
        option = typer.Option("--" + name.replace("_", "-"), help=text, rich_help_panel=PANEL)
        parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                            annotation=Annotated[annotation, option]))  # fmt: skip
    return parameters


def pop_execution(values: dict[str, Any]) -> dict[str, Any]:
    """Take the execution options out of a command's values (the rest are the step's parameters)."""
    return {name: values.pop(name) for name in list(OPTIONS) if name in values}


def make_executor(jobs: int, options: dict[str, Any]) -> AbstractContextManager[Executor]:
    """The executor the options ask for, as a context manager."""
    from tomoprep.execution import local_executor

    if options.get("executor", "local") != "dask":
        return local_executor(jobs)
    from tomoprep.execution.dask_executor import ClusterSettings, dask_executor

    settings = {k: v for k, v in options.items() if k != "executor"}
    return dask_executor(ClusterSettings(workers=max(jobs, 1), **settings))
