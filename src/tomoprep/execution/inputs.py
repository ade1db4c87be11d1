"""Which run a step takes as input: by the kinds of data it needs (:mod:`tomoprep.steps.kinds`), not by step name.

What a run holds is worked out from the records alone (its step's name and parameters, and its input runs), with
the kinds its step declares today: nothing stored names a kind, so runs recorded before kinds existed need no
migration. A run holds the kinds its step needs and makes, and those its input run holds but its step does not
make (a kind a step may make is made anew, or not at all with its options: a motion correction without odd/even
sums holds none, whatever its input held); where the input run is gone (see ``tomoprep repair``), only the first
two.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from tomoprep.errors import StepError, TomoprepError
from tomoprep.project import Project, RunRecord
from tomoprep.steps import all_steps, get_step
from tomoprep.steps.base import Params, Step
from tomoprep.steps.kinds import Kind, describe, made_stale_by


def needed(step: Step, params: Params | None) -> frozenset[Kind]:
    """The kinds ``step`` reads from its input run with ``params`` (all it may need when ``params`` is None)."""
    if step.needs_for is not None and params is not None:
        return frozenset(step.needs_for(params)) & frozenset(step.needs)
    return frozenset(step.needs)


def made(step: Step, params: Params | None) -> frozenset[Kind]:
    """The kinds a run of ``step`` with ``params`` adds (all it may make when ``params`` is None)."""
    if step.makes_for is not None and params is not None:
        return frozenset(step.makes_for(params)) & frozenset(step.makes)
    return frozenset(step.makes)


def _stored_params(step: Step, values: Mapping[str, Any]) -> Params:
    """The parameters of a stored run; those of an older version that no longer validate are taken as stored."""
    try:
        return step.params.model_validate(dict(values))
    except Exception:  # a record is history: a validator of today (a plugin's, too) must not make it unreadable
        return step.params.model_construct(**dict(values))


class HeldKinds:
    """The kinds each run of a project holds, worked out once per run from its records.

    ``steps`` are found by name first (a step being run need not be registered); the others with
    :func:`~tomoprep.steps.get_step`.
    """

    def __init__(self, project: Project, *steps: Step) -> None:
        self.project = project
        self.runs = {run.id: run for run in project.list_runs()}
        self.steps: dict[str, Step | None] = {step.name: step for step in steps}
        self.known: dict[int, frozenset[Kind]] = {}

    def _step(self, name: str) -> Step | None:
        if name not in self.steps:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # a broken plugin is reported where the steps are listed
                    self.steps[name] = get_step(name)
            except TomoprepError:
                self.steps[name] = None
        return self.steps[name]

    def __call__(self, run: RunRecord) -> frozenset[Kind]:
        """The kinds ``run`` holds; nothing for a run of a step not installed (a plugin removed since)."""
        if run.id not in self.known:
            step = self._step(run.step)
            if step is None:
                self.known[run.id] = frozenset()
                return self.known[run.id]
            params = _stored_params(step, run.params)
            kinds = set(needed(step, params) | made(step, params))
            for input_id in run.inputs:
                if input_id in self.runs and input_id < run.id:  # earlier runs only: no cycle, even in a bad index
                    # What the step may make is its own: made anew with these options, or not at all.
                    kinds |= self(self.runs[input_id]) - frozenset(step.makes)
            self.known[run.id] = frozenset(kinds)
        return self.known[run.id]


def resolve_input(project: Project, step: Step, params: Params | None, input_run: int | str | None) -> RunRecord | None:
    """The run ``step`` takes as input: the one asked for, else the newest successful run that holds every kind the
    step needs and none that it would make stale. Raises :class:`StepError` naming the run and the kinds where no
    run fits, or the run asked for lacks a kind."""
    if not step.needs:
        if input_run is not None:
            raise StepError(f"step {step.name!r} takes no input run (it starts from files).")
        return None
    held = HeldKinds(project, step)
    needs, stale = needed(step, params), made_stale_by(made(step, params))
    if input_run is not None:
        record = project.get_run(input_run)
        if record.status != "SUCCEEDED":
            raise StepError(unusable_input(project, record))
        _check_input(step, record, needs, stale, held)
        return record
    succeeded = [run for run in held.runs.values() if run.status == "SUCCEEDED"]
    holding = [run for run in succeeded if needs <= held(run)]
    fresh = [run for run in holding if not held(run) & stale]
    if fresh:
        return max(fresh, key=lambda run: run.id)
    if holding:
        newest = max(holding, key=lambda run: run.id)
        raise StepError(
            f"step {step.name!r} needs {describe(needs)}; the runs that hold them (the newest: {newest.label}) also "
            f"hold {describe(held(newest) & stale)}, which {step.name} would make stale. Fix: run {step.name} on a "
            f"run made before them (--input RUN; `tomoprep status` lists the runs)."
        )
    missing = needs - frozenset().union(*(held(run) for run in succeeded))
    raise StepError(
        f"step {step.name!r} needs {describe(needs)}, but no successful run holds {describe(missing)}"
        f"{_holdings(succeeded, held)}. Fix: {_makers(missing)}"
    )


def input_among(project: Project, step: Step, params: Params | None, candidates: list[RunRecord]) -> RunRecord | None:
    """The newest successful run of ``candidates`` that ``step`` can take as input (it holds every kind the step
    needs and none the step would make stale); ``None`` where none can, or the step takes no input run."""
    if not step.needs:
        return None
    held = HeldKinds(project, step)
    needs, stale = needed(step, params), made_stale_by(made(step, params))
    usable = [r for r in candidates if r.status == "SUCCEEDED" and needs <= held(r) and not held(r) & stale]
    return max(usable, key=lambda r: r.id, default=None)


def _check_input(
    step: Step, record: RunRecord, needs: frozenset[Kind], stale: frozenset[Kind], held: HeldKinds
) -> None:
    """Refuse an input run asked for that lacks a kind ``step`` needs, or holds one it would make stale."""
    holds = held(record)
    missing = needs - holds
    if missing:
        others = [r for r in held.runs.values() if r.status == "SUCCEEDED" and needs <= held(r)]
        fix = (f"give a run that holds them (the newest: {max(others, key=lambda r: r.id).label})" if others
               else _makers(missing).rstrip("."))  # fmt: skip
        raise StepError(
            f"run {record.label} holds {describe(holds)}, but not {describe(missing)}, which step {step.name!r} "
            f"needs. Fix: {fix}."
        )
    if holds & stale:
        raise StepError(
            f"run {record.label} holds {describe(holds & stale)}, which step {step.name!r} would make stale: it makes "
            f"again the data they were computed from. Fix: give a run made before them (--input RUN; `tomoprep "
            "status` lists the runs)."
        )


def _holdings(runs: list[RunRecord], held: HeldKinds) -> str:
    """What the newest successful runs hold, for a message: ``(001_import holds tilt-series metadata, ...)``."""
    shown = sorted(runs, key=lambda r: r.id)[-3:]
    return f" ({'; '.join(f'{r.label} holds {describe(held(r))}' for r in shown)})" if shown else " (there is none)"


def _makers(missing: frozenset[Kind]) -> str:
    """The steps that make the ``missing`` kinds, as a fix."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a broken plugin is reported where the steps are listed, not here
        steps = all_steps()
    makers = [f"{s.name} ({describe(s.makes & missing)})" for s in steps if frozenset(s.makes) & missing]
    if not makers:
        return "install a step that makes them."
    return f"run a step that makes them first: {', '.join(makers)}."


def unusable_input(project: Project, record: RunRecord) -> str:
    """Why a run that did not succeed cannot be an input, and what to do instead."""
    if record.status == "FAILED":
        failed = [u for u in record.units.values() if u.status == "FAILED"]
        if failed:  # the summary's first line only counts them: show the first unit's own reason
            first = (failed[0].error or "no reason recorded").strip().splitlines()[0]
            reason = f"{len(failed)} of {len(record.units)} units failed; {failed[0].name}: {first}"
        else:
            reason = (record.error or "no reason recorded").strip().splitlines()[0]
        state = f"failed ({reason}; see {project.run_dir(record) / 'log.txt'})"
    else:
        state = "has not finished (it is running, or was stopped)"
    return (
        f"run {record.label} {state}, so it cannot be an input. Fix: give a run that succeeded "
        f"(`tomoprep status` lists them), or finish this one with `tomoprep run --resume {record.id}`."
    )
