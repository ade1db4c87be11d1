"""The step contract: a frozen Params model, a pure function over one unit of work, and a STEP record."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from tomoprep.model import TiltSeries
from tomoprep.steps.tilt_series_set import (
    finalize_tilt_series_set,
    is_tilt_series_saved,
    load_tilt_series_set,
    save_tilt_series,
)


class Params(BaseModel):
    """Base of every step's parameters: frozen, typed, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True)
class Unit:
    """One unit of work of a run (usually one tilt series).

    ``payload`` is what the step function receives (picklable). A unit that could not even be planned
    (for example an unreadable mdoc) carries ``error`` instead and fails without running.
    """

    name: str
    payload: Any = None
    error: str | None = None


#: A note that starts with this is a warning: logged at level WARNING and shown by the command line.
WARNING_PREFIX = "WARNING:"


@dataclass(frozen=True)
class UnitOutput:
    """What a step function returns for one unit: the resulting tilt series and notes for the log (those that
    start with :data:`WARNING_PREFIX` are warnings)."""

    tilt_series: TiltSeries
    notes: tuple[str, ...] = ()


StepFunction = Callable[[Any, Any, Path], UnitOutput]
PlanFunction = Callable[[Any, Sequence[TiltSeries]], list[Unit]]


def plan_per_tilt_series(params: Any, inputs: Sequence[TiltSeries]) -> list[Unit]:
    """The usual plan: one unit per input tilt series, its payload the tilt series itself."""
    return [Unit(name=ts.name, payload=ts) for ts in inputs]


def save_unit_tilt_series(output: UnitOutput, run_dir: Path) -> list[Path]:
    """Default saver: the unit's tilt series into the run's tilt-series set."""
    return [save_tilt_series(output.tilt_series, run_dir)]


def summarize_tilt_series(outputs: Sequence[TiltSeries]) -> str:
    """A one-line summary: how many tilt series and tilts."""
    n_tilts = sum(ts.n_tilts for ts in outputs)
    return f"{len(outputs)} tilt series, {n_tilts} tilts"


@dataclass(frozen=True)
class Step:
    """A registered step.

    Attributes
    ----------
    name
        Command name (``tomoprep <name>``) and run-folder suffix.
    title
        One line shown in ``--help``.
    params
        The frozen pydantic model of the step's parameters.
    run
        ``run(payload, params, output_dir) -> UnitOutput``: the pure function over one unit. It writes only
        into ``output_dir`` (created empty for it) and must not change its inputs.
    consumes
        Names of the steps whose output this step takes; the newest successful run of any of them is the
        default input. Empty for steps that start from files (import).
    plan
        ``plan(params, input_tilt_series) -> units``.
    load_inputs, save_unit, unit_saved, finalize
        How the runner reads an input run folder, stores one unit's output, tells whether a unit's output is
        stored (for resuming), and closes the run's output set. The defaults handle tilt-series sets, so the
        runner itself knows nothing of what a unit produces.
    """

    name: str
    title: str
    params: type[Params]
    run: StepFunction
    consumes: tuple[str, ...] = ()
    produces: str = "tilt_series"
    unit: str = "tilt_series"
    plan: PlanFunction = plan_per_tilt_series
    summarize: Callable[[Sequence[TiltSeries]], str] = summarize_tilt_series
    load_inputs: Callable[[Path], list[Any]] = load_tilt_series_set
    save_unit: Callable[[UnitOutput, Path], list[Path]] = save_unit_tilt_series
    unit_saved: Callable[[Path, str], bool] = is_tilt_series_saved
    finalize: Callable[[Path, Sequence[str]], Path] = finalize_tilt_series_set
    extra: dict[str, Any] = field(default_factory=dict)
