"""The export step's record: the tilt series as a RELION 5 project folder, or as IMOD / AreTomo alignment files.

Its work (:mod:`tomoprep.steps.export.series`: pandas, starfile, mrcfile) is imported when a unit runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tomoprep.model import TiltSeries
from tomoprep.steps.base import Step, Unit, UnitOutput
from tomoprep.steps.export.params import ExportParams
from tomoprep.steps.kinds import TILT_IMAGES, TILT_SERIES
from tomoprep.steps.tilt_series_set import plan_per_tilt_series


def plan_export(params: ExportParams, inputs: Sequence[TiltSeries]) -> list[Unit]:
    """One unit per tilt series; coordinate files are read now, so a wrong one stops the run before it starts."""
    if params.coordinates is not None:
        from tomoprep.steps.export.series import check_coordinate_files

        check_coordinate_files(params, [ts.name for ts in inputs])
    return plan_per_tilt_series(params, inputs)


def run_export(ts: TiltSeries, params: ExportParams, output_dir: Path) -> UnitOutput:
    """Export one tilt series (:func:`tomoprep.steps.export.series.export_one`)."""
    from tomoprep.steps.export.series import export_one

    return export_one(ts, params, output_dir)


def finalize(run_dir: Path, names: Sequence[str]) -> Path:
    """Close the run's tilt-series set and write the files of the whole export (:func:`.series.finish_export`)."""
    from tomoprep.steps.export.series import finish_export

    return finish_export(run_dir, names)


def summarize(outputs: Sequence[TiltSeries]) -> str:
    """How many series and kept tilts were exported (excluded tilts are left out of every exported file)."""
    kept = sum(len(ts.included_tilts) for ts in outputs)
    left_out = sum(ts.n_tilts for ts in outputs) - kept
    return f"{len(outputs)} tilt series exported, {kept} tilts ({left_out} excluded tilts left out)"


STEP = Step(
    name="export",
    title="Export the tilt series as a RELION 5 project folder (tomograms.star, particles), or as IMOD or AreTomo "
    "alignment files.",
    params=ExportParams,
    run=run_export,
    needs=frozenset({TILT_SERIES, TILT_IMAGES}),
    plan=plan_export,
    finalize=finalize,
    summarize=summarize,
)
