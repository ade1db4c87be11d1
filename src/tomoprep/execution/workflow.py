"""A workflow file: the steps of a project and their parameters in one TOML file, run in order.

Format
    One table per step, named as the step's command, in the order the steps run; its keys are the step's
    parameters (the Params fields, as the command's options without ``--`` and with ``_``), absent keys taking
    their defaults::

        [import]
        mdoc = "session/*.mdoc"
        [motioncorr]
        eer_dose_per_group_e_per_angstrom2 = 0.5

Running
    Each step takes as input the newest run made by the workflow's steps before it that holds the kinds of data it
    needs (a cleaning run again after a change takes the import, not the earlier cleaning); where none does (a
    workflow that starts at alignment), what it would take on the command line. A step whose newest run with the
    same parameters and the same input succeeded is not run again; one whose such run was interrupted or left tilt
    series failed is resumed (the units done are kept). A step whose run fails stops the workflow there; the runs
    before it stay.
"""

from __future__ import annotations

import json
import textwrap
import tomllib
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tomoprep.errors import InputError, StepError
from tomoprep.execution.inputs import input_among, resolve_input
from tomoprep.execution.runner import resume_run, run_step, validate_params
from tomoprep.project import Project, RunRecord
from tomoprep.steps import BUILTIN_STEP_MODULES, all_steps, get_step
from tomoprep.steps.base import Step
from tomoprep.steps.recorded_params import params_from_record, recorded_params

#: Values the template sets, where they differ from the defaults: the tutorial's workflow (movies and mdoc files of a
#: session folder, a quick bin-8 tomogram and one at bin 4). A key is used only where its step has the parameter.
TEMPLATE_VALUES: dict[str, dict[str, Any]] = {
    "import": {"mdoc": "session/*.mdoc", "movies": "session/frames"},
    "reconstruct": {"binning": [8, 4]},
    "export": {"out": "relion5"},
}


@dataclass(frozen=True)
class WorkflowStep:
    """One step of a workflow: the step's name and the parameter values the file gives."""

    name: str
    values: dict[str, Any]


def read_workflow(path: Path) -> list[WorkflowStep]:
    """The steps of a workflow file, in file order; an unknown step or a value that is not a table is refused
    naming the file and the fix (each value is checked by its step when it runs, all of a step's at once)."""
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InputError(path, "does not exist.", "write one with `tomoprep workflow template > FILE`.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, f"is not valid TOML: {exc}.") from exc
    known = {step.name for step in all_steps()}
    steps = []
    for name, values in document.items():
        if name not in known:
            raise InputError(path, f"names a step {name!r} that tomoprep does not have.",
                             f"use one of: {', '.join(sorted(known))}.")  # fmt: skip
        if not isinstance(values, dict):
            raise InputError(path, f"gives {name} = {values!r}; each step is a table of its parameters.",
                             f"write it as [{name}] followed by its parameters.")  # fmt: skip
        steps.append(WorkflowStep(name, values))
    if not steps:
        raise InputError(path, "names no step.", "write one with `tomoprep workflow template > FILE`.")
    return steps


def check_workflow(steps: list[WorkflowStep]) -> None:
    """Validate every step's parameters before anything runs, so a typo in the last step does not surface after
    an hour of the first ones; all problems are given at once."""
    problems = []
    for item in steps:
        try:
            validate_params(get_step(item.name), item.values)
        except StepError as exc:
            problems.append(f"[{item.name}] {exc}")
    if problems:
        raise StepError("the workflow has invalid parameters:\n" + "\n".join(problems))


def same_run(project: Project, step: Step, params: dict[str, Any], source: RunRecord | None) -> RunRecord | None:
    """The newest run of ``step`` with these parameters (as recorded: :mod:`tomoprep.steps.recorded_params`)
    on this input run, if any. Paths are compared as they resolve in the project, so a record that holds one
    absolute (made before paths in the project were recorded relative to it) still matches."""
    inputs = () if source is None else (source.id,)
    wanted = params_from_record(step.params, params, project.root)
    runs = [
        r
        for r in project.list_runs(step=step.name)
        if tuple(r.inputs) == inputs and params_from_record(step.params, r.params, project.root) == wanted
    ]
    return max(runs, key=lambda r: r.id, default=None)


@dataclass(frozen=True)
class StepOutcome:
    """What the workflow did with one step: ``"ran"``, ``"resumed"`` or ``"skipped"`` (done already), and the run."""

    name: str
    action: str
    run: RunRecord


def run_workflow(
    project: Project,
    steps: list[WorkflowStep],
    *,
    executor: Executor | None = None,
    on_step: Callable[[StepOutcome], None] | None = None,
    execution_note: str | None = None,
) -> list[StepOutcome]:
    """Run the steps of a workflow in order (module notes); stop at the first run that fails as a whole.
    ``execution_note`` goes into the log of each run that runs units (see :func:`run_step`)."""
    check_workflow(steps)
    outcomes: list[StepOutcome] = []
    for item in steps:
        step = get_step(item.name)
        params = validate_params(step, item.values)
        stored = recorded_params(params, project.root)
        source = input_among(project, step, params, [o.run for o in outcomes])
        source = source or resolve_input(project, step, params, None)
        earlier = same_run(project, step, stored, source)
        if earlier is not None and earlier.status == "SUCCEEDED" and not earlier.failed_units:
            outcome = StepOutcome(item.name, "skipped", earlier)
        elif earlier is not None:
            resumed = resume_run(project, earlier.id, executor=executor, step=step, execution_note=execution_note)
            outcome = StepOutcome(item.name, "resumed", resumed)
        else:
            source_id = None if source is None else source.id
            ran = run_step(project, step, params, input_run=source_id, executor=executor,
                           execution_note=execution_note)  # fmt: skip
            outcome = StepOutcome(item.name, "ran", ran)
        outcomes.append(outcome)
        if on_step is not None:
            on_step(outcome)
        if outcome.run.status != "SUCCEEDED":
            break
    return outcomes


def _toml_value(value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


def _field_lines(name: str, field: Any, given: Mapping[str, Any]) -> Iterator[str]:
    yield from textwrap.wrap(field.description or name, width=100, initial_indent="# ", subsequent_indent="# ")
    if name in given:
        yield f"{name} = {_toml_value(given[name])}"
    elif field.is_required():
        yield f"# {name} =   (required)"
    elif field.default is None:
        yield f"# {name} =   (not set by default)"
    else:
        yield f"# {name} = {_toml_value(field.default)}"


def workflow_text(steps: list[WorkflowStep]) -> str:
    """A workflow file holding ``steps`` with their values (each value as TOML; defaults left out)."""
    lines = ["# tomoprep workflow: `tomoprep workflow run THIS_FILE -p PROJECT` runs these steps in order."]
    for item in steps:
        lines += ["", f"[{item.name}]", *(f"{key} = {_toml_value(value)}" for key, value in item.values.items())]
    return "\n".join(lines) + "\n"


def template(steps: tuple[Step, ...] | None = None) -> str:
    """The text of a workflow file with every parameter of every step (built-in steps, in workflow order, by
    default), each with its description; defaults commented out, the tutorial's values (``TEMPLATE_VALUES``) set."""
    steps = steps if steps is not None else tuple(get_step(name) for name in BUILTIN_STEP_MODULES)
    lines = [
        "# tomoprep workflow: `tomoprep workflow run THIS_FILE -p PROJECT` runs these steps in order.",
        "# A commented-out parameter takes the default shown; remove a step's table to leave the step out.",
        "# Steps already done with the same parameters and input are not run again; interrupted ones resume.",
    ]
    for step in steps:
        params: type[BaseModel] = step.params
        given = {k: v for k, v in TEMPLATE_VALUES.get(step.name, {}).items() if k in params.model_fields}
        lines += ["", f"[{step.name}]", *(f"# {line}" for line in textwrap.wrap(step.title, width=98))]
        for name, field in params.model_fields.items():
            lines += ["", *_field_lines(name, field, given)]
    return "\n".join(lines) + "\n"
