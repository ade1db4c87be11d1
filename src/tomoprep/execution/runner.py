"""The runner: validate -> record -> fan out -> collect -> finish, and resume an interrupted run.

It knows nothing of what a unit produces: the step's hooks read inputs, store each unit's output and close
the output set. A unit that fails is recorded with its error and the other units carry on. The input run is the
one that holds the kinds of data the step needs (:mod:`tomoprep.execution.inputs`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tomoprep import __version__
from tomoprep.errors import (
    ProjectError,
    RunStoppedError,
    StepError,
    TomoprepError,
    disk_full_message,
    is_disk_full,
)
from tomoprep.execution.executors import SerialExecutor
from tomoprep.execution.inputs import resolve_input
from tomoprep.execution.memory import heap_for_large_arrays, release_free_memory
from tomoprep.project import Project, RunRecord, UnitRecord
from tomoprep.project.records import Status, now
from tomoprep.steps import get_step
from tomoprep.steps.base import Params, Step
from tomoprep.steps.recorded_params import absolute_paths, params_from_record, recorded_params
from tomoprep.steps.unit import WARNING_PREFIX, StepFunction, Unit, UnitOutput


def validate_params(step: Step, values: Params | Mapping[str, Any] | None) -> Params:
    """The step's Params from a model or a mapping; a wrong value raises StepError naming the field."""
    if isinstance(values, step.params):
        return values
    try:
        return step.params.model_validate(dict(values or {}))
    except ValidationError as exc:
        # Named as the option is typed (--pixel-spacing-angstrom), since that is where the value came from.
        problems = "; ".join(
            f"{'--' + '.'.join(str(p) for p in err['loc']).replace('_', '-') + ': ' if err['loc'] else ''}"
            f"{err['msg']} (got {err.get('input')!r})"
            for err in exc.errors()
        )
        raise StepError(
            f"invalid parameters for step {step.name!r}: {problems}. "
            f"Fix: give a valid value (tomoprep {step.name} --help says what each option takes)."
        ) from exc


def _load_inputs(project: Project, step: Step, record: RunRecord | None) -> list[Any]:
    return [] if record is None else step.load_inputs(project.run_dir(record))


def run_step(
    project: Project,
    step: Step,
    params: Params | Mapping[str, Any] | None = None,
    *,
    input_run: int | str | None = None,
    executor: Executor | None = None,
    on_created: Callable[[RunRecord], None] | None = None,
    execution_note: str | None = None,
) -> RunRecord:
    """Run ``step`` on the project: record the run, run every unit, and return the finished record.

    ``on_created`` is called with the run's record as soon as it exists, before any unit runs (a launcher that
    shows the run while it works, such as the web UI's, learns its number there). ``execution_note``, where the
    caller says where the units run and why (:meth:`tomoprep.execution.options.Execution.note`), goes into the
    run's log."""
    validated = absolute_paths(validate_params(step, params))
    recorded = recorded_params(validated, project.root)
    source = resolve_input(project, step, validated, input_run)
    units = step.plan(validated, _load_inputs(project, step, source))
    run = project.create_run(step.name, recorded, [] if source is None else [source.id], __version__)
    source_text = "" if source is None else f" on run {source.label}"
    project.log_event(run.id, f"{step.name}{source_text}: {len(units)} units; params {validated.model_dump_json()}")
    if execution_note:
        project.log_event(run.id, execution_note)
    if on_created is not None:
        on_created(run)
    return _execute(project, step, run, validated, units, executor, skip=frozenset())


def resume_run(
    project: Project,
    run_ref: int | str,
    *,
    executor: Executor | None = None,
    step: Step | None = None,
    execution_note: str | None = None,
) -> RunRecord:
    """Finish an interrupted (or partly failed) run without redoing the units already done (``execution_note``: as
    for :func:`run_step`)."""
    run = project.get_run(run_ref)
    step = step or get_step(run.step)
    params = validate_params(step, params_from_record(step.params, run.params, project.root))
    sources = [project.get_run(i) for i in run.inputs]
    if step.needs and not sources:
        raise StepError(f"run {run.label} cannot be resumed: {run.error or 'it records no input run.'}")
    # A run that could not create its folder (or whose folder was removed) starts it again, all units to do.
    project.make_run_folder(run)
    units = step.plan(params, _load_inputs(project, step, sources[0] if sources else None))
    run_dir = project.run_dir(run)
    done = frozenset(u.name for u in run.units.values() if u.status == "SUCCEEDED" and step.unit_saved(run_dir, u.name))
    project.set_run_status(run.id, "RUNNING")
    project.log_event(run.id, f"resumed: {len(done)} of {len(units)} units already done")
    if execution_note:
        project.log_event(run.id, execution_note)
    return _execute(project, step, run, params, units, executor, skip=done)


@contextmanager
def _run_lock(run_dir: Path) -> Iterator[None]:
    with open(run_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ProjectError(f"{run_dir} is being run by another process; wait for it to finish.") from exc
        yield


def _execute(
    project: Project,
    step: Step,
    run: RunRecord,
    params: Params,
    units: Sequence[Unit],
    executor: Executor | None,
    *,
    skip: frozenset[str],
) -> RunRecord:
    run_dir = project.run_dir(run)
    with _run_lock(run_dir):
        try:
            succeeded = _run_units(project, step, run, params, [u for u in units if u.name not in skip], executor)
            names = [u.name for u in units if u.name in skip or u.name in succeeded]
            step.finalize(run_dir, names)
            return _finish(project, run.id, n_units=len(units), n_done=len(names))
        except BaseException as exc:
            _stop(project, run, exc)
            raise


def _stop(project: Project, run: RunRecord, exc: BaseException) -> None:
    """Record ``run`` FAILED after ``exc`` (the index first: it is written even where the run folder is not),
    and turn a fault of the surroundings into one clear error. A failure to record never hides ``exc``: both
    are told."""
    causes = [exc, *([exc.__cause__] if exc.__cause__ is not None else [])]
    full = next((e for e in causes if is_disk_full(e)), None)
    error = disk_full_message(full, project.run_dir(run), run.id) if full else "".join(traceback.format_exception(exc))
    try:  # the units' errors, where the run was being finished, stay in the record before this one
        earlier = project.get_run(run.id).error
    except Exception:
        earlier = None
    error = f"{earlier}\n{error}" if earlier else error
    unrecorded = []
    for record in (lambda: project.set_run_status(run.id, "FAILED", error=error),
                   lambda: project.log_event(run.id, error, level="ERROR")):  # fmt: skip
        try:
            record()
        except Exception as failure:
            unrecorded.append(failure)
    if full is None and not unrecorded:
        return
    what = disk_full_message(full, project.run_dir(run), run.id) if full else f"{type(exc).__name__}: {exc}"
    if full is None and exc.__cause__ is not None:
        what += f" (on recording the earlier error {type(exc.__cause__).__name__}: {exc.__cause__})"
    if earlier and full is None:
        what = f"{earlier.strip()}\nThen {what}"
    if unrecorded:
        again = unrecorded[0]
        if str(again) != str(exc):
            what += f"\nRecording that the run FAILED failed too ({type(again).__name__}: {again})."
        what += (
            f"\nThe index says FAILED where it could be written; make {project.run_dir(run)} writable (and free "
            f"space), then `tomoprep run --resume {run.id}`."
        )
    raise RunStoppedError(f"run {run.label} FAILED: {what}") from exc


def _finish(project: Project, run_id: int, *, n_units: int, n_done: int) -> RunRecord:
    record = project.get_run(run_id)
    failures = [f"{u.name}: {u.error}" for u in record.units.values() if u.status == "FAILED"]
    if n_units == 0:
        error = "nothing to do: the inputs gave no unit of work."
    elif failures:
        error = f"{len(failures)} of {n_units} units failed:\n" + "\n".join(failures)
    else:
        error = None
    status: Status = "SUCCEEDED" if n_done > 0 else "FAILED"
    project.log_event(run_id, f"finished {status}: {n_done} of {n_units} units done", level="INFO")
    return project.set_run_status(run_id, status, error=error)


def _start_unit(project: Project, run: RunRecord, unit: Unit) -> Path:
    # A unit's folder is emptied before it runs, so a unit stopped half-way never leaves stale files behind.
    out_dir = project.run_dir(run) / unit.name
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    project.set_unit(run.id, UnitRecord(unit.name, "RUNNING", started_at=now()))
    return out_dir


def _run_units(
    project: Project,
    step: Step,
    run: RunRecord,
    params: Params,
    units: Sequence[Unit],
    executor: Executor | None,
) -> set[str]:
    """Run ``units``, storing each result as soon as it is done, so a kill loses at most the units in flight."""
    executor = executor or SerialExecutor()
    elsewhere = not isinstance(executor, SerialExecutor)  # units in other processes or machines say where they ran
    window = max(1, 2 * int(getattr(executor, "_max_workers", 1) or 1))
    pending: dict[Future[UnitOutput], tuple[Unit, str]] = {}
    succeeded: set[str] = set()
    for unit in units:
        if unit.error is not None:
            _fail_unit(project, run, unit.name, unit.error, started=now())
            continue
        started = now()
        out_dir = _start_unit(project, run, unit)
        pending[executor.submit(run_unit, step.run, unit.payload, params, out_dir, where=elsewhere)] = (unit, started)
        _collect(project, step, run, pending, succeeded, block=len(pending) >= window)
    while pending:
        _collect(project, step, run, pending, succeeded, block=True)
    return succeeded


def run_unit(run: StepFunction, payload: Any, params: Params, out_dir: Path, *, where: bool = False) -> UnitOutput:
    """One unit, in whichever process the executor runs it, with large arrays kept on the heap
    (:mod:`tomoprep.execution.memory`) and the free memory given back when it ends; with ``where``, a note of the
    host and process it ran in is added (the run's log then says which worker did what)."""
    heap_for_large_arrays()
    try:
        output = run(payload, params, out_dir)
    finally:
        release_free_memory()
    if where:
        output = replace(output, notes=(*output.notes, f"ran on {socket.gethostname()} (process {os.getpid()})"))
    return output


def _collect(
    project: Project,
    step: Step,
    run: RunRecord,
    pending: dict[Future[UnitOutput], tuple[Unit, str]],
    succeeded: set[str],
    *,
    block: bool,
) -> None:
    """Store the results of the finished futures (waiting for at least one when ``block``)."""
    if block:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
    else:
        done = {f for f in pending if f.done()}
    for future in done:
        unit, started = pending.pop(future)
        try:
            output = future.result()
            artifacts = step.save_unit(output, project.run_dir(run))
        except Exception as exc:
            _record_unit_failure(project, run, unit.name, exc, started=started)
            continue
        _complete_unit(project, run, unit.name, output, artifacts, started=started)
        succeeded.add(unit.name)


def _record_unit_failure(project: Project, run: RunRecord, name: str, exc: Exception, *, started: str) -> None:
    """Record a unit's failure: a full disk as one line with the fix, tomoprep's errors as they are, others with
    their type. Where the record itself cannot be written, the run stops with both errors (:func:`_stop`)."""
    if is_disk_full(exc):
        message = disk_full_message(exc, project.run_dir(run) / name, run.id)
    else:
        message = str(exc) if isinstance(exc, TomoprepError) else f"{type(exc).__name__}: {exc}"
    try:
        project.log_event(run.id, "".join(traceback.format_exception(exc)), level="DEBUG", unit=name)
        _fail_unit(project, run, name, message, started=started)
    except Exception as failure:
        raise failure from exc


def _fail_unit(project: Project, run: RunRecord, name: str, message: str, *, started: str) -> None:
    project.log_event(run.id, message, level="ERROR", unit=name)
    project.set_unit(run.id, UnitRecord(name, "FAILED", message, started, now()))


def _complete_unit(
    project: Project, run: RunRecord, name: str, output: UnitOutput, artifacts: list[Path], *, started: str
) -> None:
    out_dir = project.run_dir(run) / name
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()
    for note in output.notes:
        level = "WARNING" if note.startswith(WARNING_PREFIX) else "INFO"
        project.log_event(run.id, note, level=level, unit=name)
    for path in artifacts:
        project.add_artifact(run.id, path, kind=path.suffix.lstrip(".") or "file", unit=name)
    if out_dir.is_dir():
        for path in sorted(p for p in out_dir.rglob("*") if p.is_file()):
            project.add_artifact(run.id, path, kind=path.suffix.lstrip(".") or "file", unit=name)
    project.set_unit(run.id, UnitRecord(name, "SUCCEEDED", None, started, now()))
