"""The cleaning step's record. Its work (:mod:`tomoprep.steps.clean.series`, torch) is imported when the step plans
and runs, so that a command that only lists or describes the step (``tomoprep clean --help``) starts without
torch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tomoprep.model import TiltSeries
from tomoprep.steps.base import Step, Unit, UnitOutput
from tomoprep.steps.clean.manual import AUTO_PREFIX, MANUAL_REASON
from tomoprep.steps.clean.params import CleanParams
from tomoprep.steps.kinds import EXCLUSIONS, TILT_IMAGES, TILT_SERIES, Kind

if TYPE_CHECKING:
    from tomoprep.steps.clean.series import CleanPayload


def plan_clean(params: CleanParams, inputs: Sequence[TiltSeries]) -> list[Unit]:
    """One unit per tilt series with its manual choices (:func:`tomoprep.steps.clean.series.plan_clean`)."""
    from tomoprep.steps.clean.series import plan_clean as plan

    return plan(params, inputs)


def run_clean(payload: CleanPayload, params: CleanParams, output_dir: Path) -> UnitOutput:
    """Clean one tilt series (:func:`tomoprep.steps.clean.series.clean_series`)."""
    from tomoprep.steps.clean.series import clean_series

    return clean_series(payload, params, output_dir)


def summarize(outputs: Sequence[TiltSeries]) -> str:
    """Series, tilts, and how many are excluded, automatically and by hand."""
    tilts = [t for ts in outputs for t in ts.tilts]
    reasons = [t.exclusion.reason for t in tilts if t.exclusion is not None]
    auto = sum(reason.startswith(AUTO_PREFIX) for reason in reasons)
    manual = sum(reason == MANUAL_REASON for reason in reasons)
    other = len(reasons) - auto - manual
    return (
        f"{len(outputs)} tilt series, {len(tilts)} tilts: {auto} excluded automatically, {manual} by hand, "
        f"{other} before"
    )


def kinds_needed(params: CleanParams) -> frozenset[Kind]:
    """The tilt images to measure; a cleaning by hand alone (``--no-auto``) needs only the tilt series."""
    return frozenset({TILT_SERIES, TILT_IMAGES} if params.auto else {TILT_SERIES})


STEP = Step(
    name="clean",
    title="Stack cleaning: exclude shifted, dark and blurred tilts (automatically or by hand) without deleting any.",
    params=CleanParams,
    run=run_clean,
    needs=frozenset({TILT_SERIES, TILT_IMAGES}),
    makes=frozenset({EXCLUSIONS}),
    needs_for=kinds_needed,
    plan=plan_clean,
    summarize=summarize,
)
