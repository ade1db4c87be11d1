"""The alignment step's record. Its work (:mod:`tomoprep.steps.align.series`, torch) is imported when a unit runs, so
that a command that only lists or describes the step (``tomoprep align --help``) starts without torch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tomoprep.model import TiltSeries
from tomoprep.steps.align.params import AlignParams
from tomoprep.steps.base import Step, UnitOutput
from tomoprep.steps.kinds import ALIGNMENT, TILT_IMAGES, TILT_SERIES


def run_align(ts: TiltSeries, params: AlignParams, output_dir: Path) -> UnitOutput:
    """Align one tilt series (:func:`tomoprep.steps.align.series.align_tilt_series`)."""
    from tomoprep.steps.align.series import align_tilt_series

    return align_tilt_series(ts, params, output_dir)


def summarize(outputs: Sequence[TiltSeries]) -> str:
    """Series aligned, their thickness range, and in how many no slab was found with confidence."""
    thick = [ts.specimen_thickness_angstrom for ts in outputs if ts.specimen_thickness_angstrom is not None]
    span = f", thickness {min(thick):.0f}–{max(thick):.0f} Å" if thick else ""
    missing = len(outputs) - len(thick)
    unfound = f" (no thickness in {missing}: see the log)" if missing and thick else ", no thickness (see the log)"
    return f"{len(outputs)} tilt series aligned{span}{unfound if missing else ''}"


STEP = Step(
    name="align",
    title="Marker-free tilt-series alignment: tilt axis, shifts, tilt offset, thickness (or IMOD/AreTomo files).",
    params=AlignParams,
    run=run_align,
    needs=frozenset({TILT_SERIES, TILT_IMAGES}),
    makes=frozenset({ALIGNMENT}),
    summarize=summarize,
)
