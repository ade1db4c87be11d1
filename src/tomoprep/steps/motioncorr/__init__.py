"""The motion-correction step's record and plan. Its work (:mod:`tomoprep.steps.motioncorr.series`, torch) is imported
when a unit runs, so that a command that only lists or describes the step (``tomoprep motioncorr --help``) starts
without torch, and a series that cannot be corrected fails before torch is loaded."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tomoprep.errors import InputError
from tomoprep.model import TiltSeries
from tomoprep.steps.base import Step, Unit, UnitOutput
from tomoprep.steps.import_.dose import require_dose
from tomoprep.steps.kinds import MOVIES, ODD_EVEN, TILT_IMAGES, TILT_SERIES, Kind
from tomoprep.steps.motioncorr.params import (
    DOSE_WEIGHTING,
    DOSE_WEIGHTING_ALTERNATIVE,
    EER_GROUPING,
    EER_GROUPING_ALTERNATIVE,
    MotionCorrParams,
)


def plan_motioncorr(params: MotionCorrParams, inputs: Sequence[TiltSeries]) -> list[Unit]:
    """One unit per tilt series; a series whose dose is unknown fails at once, before any movie is read, when
    these parameters need the dose (dose weighting, EER frames grouped by dose), naming the options that help."""
    units = []
    for ts in inputs:
        try:
            _check_dose_is_there_if_needed(ts, params)
        except InputError as exc:
            units.append(Unit(ts.name, error=str(exc)))
            continue
        units.append(Unit(ts.name, payload=ts))
    return units


def _check_dose_is_there_if_needed(ts: TiltSeries, params: MotionCorrParams) -> None:
    movies = [t.acquisition.movie_path for t in ts.included_tilts if t.acquisition.movie_path is not None]
    if not movies or ts.dose_known:
        return
    if params.dose_weighting:
        require_dose(ts, needed_for=DOSE_WEIGHTING, alternative=DOSE_WEIGHTING_ALTERNATIVE)
    if params.eer_frames_per_group is None and any(m.suffix.lower() == ".eer" for m in movies):
        require_dose(ts, needed_for=EER_GROUPING, alternative=EER_GROUPING_ALTERNATIVE)


def run_motioncorr(ts: TiltSeries, params: MotionCorrParams, output_dir: Path) -> UnitOutput:
    """Motion-correct one tilt series (:func:`tomoprep.steps.motioncorr.series.motioncorr_series`)."""
    from tomoprep.steps.motioncorr.series import motioncorr_series

    return motioncorr_series(ts, params, output_dir)


def summarize(outputs: Sequence[TiltSeries]) -> str:
    """Series, aligned tilts, and the median total motion."""
    totals = [
        t.motion.accumulated_motion_angstrom[0]
        for ts in outputs
        for t in ts.tilts
        if t.motion is not None and t.motion.accumulated_motion_angstrom is not None
    ]
    median = np.median(totals) if totals else 0.0
    return f"{len(outputs)} tilt series, {len(totals)} movies aligned, median total motion {median:.1f} Å"


def kinds_made(params: MotionCorrParams) -> frozenset[Kind]:
    """Tilt images, and odd/even sums where asked for."""
    return frozenset({TILT_IMAGES, ODD_EVEN} if params.odd_even else {TILT_IMAGES})


STEP = Step(
    name="motioncorr",
    title="Motion correction: gain, defects, global and local motion, odd/even and dose-weighted sums.",
    params=MotionCorrParams,
    run=run_motioncorr,
    needs=frozenset({TILT_SERIES, MOVIES}),
    makes=frozenset({TILT_IMAGES, ODD_EVEN}),
    makes_for=kinds_made,
    plan=plan_motioncorr,
    summarize=summarize,
)
