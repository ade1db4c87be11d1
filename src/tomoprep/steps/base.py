"""The step contract, types only: a frozen Params model, a pure function over one unit of work, and a STEP record.

The hooks a step does not set default to those of the tilt-series set (:mod:`tomoprep.steps.tilt_series_set`);
the kinds of data are in :mod:`tomoprep.steps.kinds`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from tomoprep.model import TiltSeries
from tomoprep.steps.kinds import Kind
from tomoprep.steps.tilt_series_set import (
    finalize_tilt_series_set,
    is_tilt_series_saved,
    load_tilt_series_set,
    plan_per_tilt_series,
    save_unit_tilt_series,
    summarize_tilt_series,
)
from tomoprep.steps.unit import WARNING_PREFIX, PlanFunction, StepFunction, Unit, UnitOutput


class Params(BaseModel):
    """Base of every step's parameters: frozen, typed, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


KindsFunction = Callable[[Any], frozenset[Kind]]


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
    needs
        Kinds of data (:mod:`tomoprep.steps.kinds`) the step reads from its input run: the newest successful run
        that holds them all is the default input. Empty for a step that starts from files (import), which takes
        no input run.
    makes
        Kinds of data the step's runs add to what they carry on from their input.
    needs_for, makes_for
        Where the kinds depend on the parameters: ``needs_for(params)``, a subset of ``needs`` (a cleaning by
        hand alone needs no tilt images), and ``makes_for(params)``, a subset of ``makes`` (an import of stacks
        makes tilt images, not movies). ``None``: always all of ``needs`` and ``makes``.
    plan
        ``plan(params, input_tilt_series) -> units``.
    summarize
        ``summarize(output_tilt_series) -> str``: one line on a finished run, shown by the command line.
    load_inputs, save_unit, unit_saved, finalize
        How the runner reads an input run folder, stores one unit's output, tells whether a unit's output is
        stored (for resuming), and closes the run's output set. The defaults handle tilt-series sets, so the
        runner itself knows nothing of what a unit produces.
    """

    name: str
    title: str
    params: type[Params]
    run: StepFunction
    needs: frozenset[Kind] = frozenset()
    makes: frozenset[Kind] = frozenset()
    needs_for: KindsFunction | None = None
    makes_for: KindsFunction | None = None
    plan: PlanFunction = plan_per_tilt_series
    summarize: Callable[[Sequence[TiltSeries]], str] = summarize_tilt_series
    load_inputs: Callable[[Path], list[Any]] = load_tilt_series_set
    save_unit: Callable[[UnitOutput, Path], list[Path]] = save_unit_tilt_series
    unit_saved: Callable[[Path, str], bool] = is_tilt_series_saved
    finalize: Callable[[Path, Sequence[str]], Path] = finalize_tilt_series_set


__all__ = ["WARNING_PREFIX", "KindsFunction", "Params", "PlanFunction", "Step", "StepFunction", "Unit", "UnitOutput"]
