"""One chain of runs per tilt series: the workflow's steps for that series alone, and how far the project has it.

A series' chain is the workflow with its import narrowed to that series (``series = [NAME]``, the session's mdoc
glob and movie folder) and its export written to a folder of its own (``<out>/<NAME>``); every later step takes
its input from the chain's earlier runs (:func:`tomoprep.execution.workflow.run_workflow`). So what the project
records is the whole state of a series: the chain's runs are found again from their parameters and inputs, and
running the chain again skips the steps done, resumes an interrupted or failed run, and runs the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tomoprep.errors import InputError
from tomoprep.execution.inputs import input_among, made, needed
from tomoprep.execution.runner import validate_params
from tomoprep.execution.workflow import WorkflowStep, check_workflow, same_run
from tomoprep.project import Project, RunRecord
from tomoprep.steps import BUILTIN_STEP_MODULES, get_step
from tomoprep.steps.recorded_params import recorded_params

#: The default export folder, inside the project, when the workflow gives none.
DEFAULT_EXPORT_FOLDER = "export"

ChainStatus = Literal["new", "started", "done", "failed"]


def default_workflow() -> list[WorkflowStep]:
    """The built-in steps in workflow order (as ``tomoprep workflow template`` lists them), defaults throughout."""
    return [WorkflowStep(name, {}) for name in BUILTIN_STEP_MODULES]


@dataclass(frozen=True)
class ChainTemplate:
    """The workflow and where the session is, from which each series' chain is made.

    ``mdoc_glob`` is absolute; ``movies_dir`` as the import's ``movies`` (``None``: the mdoc's folder);
    ``export_root`` the folder that holds each series' export folder."""

    steps: tuple[WorkflowStep, ...]
    mdoc_glob: str
    movies_dir: Path | None
    export_root: Path

    def for_series(self, name: str) -> list[WorkflowStep]:
        """The chain of series ``name``."""
        chain = []
        for item in self.steps:
            values: dict[str, Any] = dict(item.values)
            if item.name == "import":
                values.update(mdoc=self.mdoc_glob, series=[name])
                if self.movies_dir is not None:
                    values["movies"] = str(self.movies_dir)
            elif item.name == "export":
                values["out"] = str(self.export_root / name)
            chain.append(WorkflowStep(item.name, values))
        return chain


def chain_template(
    steps: list[WorkflowStep], *, mdoc_glob: str, movies_dir: Path | None, project_root: Path, source: Path | None
) -> ChainTemplate:
    """Check a workflow for live use and make the template of its chains.

    The workflow must start with ``[import]`` (of movies with mdoc files: its ``mdoc`` is the session's, and a
    ``stack`` or ``relion5`` source is refused), and each later step must find its input among the runs of the
    steps before it, so that no step of a series' chain takes another series' run. ``source`` names the workflow
    file in errors (``None``: the default workflow)."""
    where = source if source is not None else Path("the default workflow")
    if not steps or steps[0].name != "import":
        raise InputError(where, "does not start with [import].", "put the [import] table first.")
    given = steps[0].values
    if any(given.get(key) is not None for key in ("stack", "relion5")) or given.get("series") is not None:
        raise InputError(where, "gives [import] a stack, relion5 or series value.", "leave them out: the watch "
                         "imports each series of the session's mdoc files alone.")  # fmt: skip
    export = next((item for item in steps if item.name == "export"), None)
    out = None if export is None else export.values.get("out")
    export_root = Path(out).expanduser().resolve() if out else project_root.resolve() / DEFAULT_EXPORT_FOLDER
    template = ChainTemplate(tuple(steps), mdoc_glob, movies_dir, export_root)
    example = template.for_series("SERIES")
    check_workflow(example)
    _check_inputs_within(example, where)
    return template


def _check_inputs_within(chain: list[WorkflowStep], where: Path) -> None:
    """Refuse a chain in which a step needs a kind of data no earlier step of it makes."""
    held: frozenset[Any] = frozenset()
    for item in chain:
        step = get_step(item.name)
        params = validate_params(step, item.values)
        lacking = needed(step, params) - held
        if step.needs and lacking:
            raise InputError(where, f"has [{item.name}] where no step before it makes what it needs.",
                             "order the tables as `tomoprep workflow template` does.")  # fmt: skip
        held = held | made(step, params)


@dataclass(frozen=True)
class ChainState:
    """How far the project has a series' chain: its runs in step order (the last may be unfinished or failed),
    and what that means: ``new`` (no run), ``started`` (some steps left, or a run to resume), ``done``, or
    ``failed`` (a run of it failed: it is resumed when the chain is run again)."""

    runs: tuple[RunRecord, ...]
    status: ChainStatus


def chain_state(project: Project, chain: list[WorkflowStep]) -> ChainState:
    """The chain's runs as :func:`~tomoprep.execution.workflow.run_workflow` would find them, without running."""
    runs: list[RunRecord] = []
    for item in chain:
        step = get_step(item.name)
        params = validate_params(step, item.values)
        source = input_among(project, step, params, runs)
        if step.needs and source is None:
            break
        earlier = same_run(project, step, recorded_params(params, project.root), source)
        if earlier is None:
            break
        runs.append(earlier)
        if earlier.status != "SUCCEEDED" or earlier.failed_units:
            return ChainState(tuple(runs), "failed" if earlier.status == "FAILED" else "started")
    if not runs:
        return ChainState((), "new")
    return ChainState(tuple(runs), "done" if len(runs) == len(chain) else "started")
