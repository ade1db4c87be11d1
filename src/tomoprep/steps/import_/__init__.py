"""The import step: movies + mdoc files, or tilt stacks + tilt angles, into a tilt-series set.

The readers (:mod:`tomoprep.steps.import_.movies`, :mod:`tomoprep.steps.import_.stack`: tifffile, imagecodecs,
mrcfile) are imported when the step plans and runs, so ``tomoprep import --help`` starts without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tomoprep.model import TiltSeries
from tomoprep.steps.base import Step, Unit, UnitOutput
from tomoprep.steps.import_.params import ImportParams
from tomoprep.steps.kinds import ALIGNMENT, CTF, MOVIES, TILT_IMAGES, TILT_SERIES, Kind

if TYPE_CHECKING:
    from tomoprep.steps.import_.movies import MovieSeriesPayload
    from tomoprep.steps.import_.relion5 import Relion5Payload
    from tomoprep.steps.import_.stack import StackPayload


def plan_import(params: ImportParams, inputs: Sequence[TiltSeries]) -> list[Unit]:
    """Units of an import: one per stack, or one per tilt series described by the mdoc files."""
    if params.relion5 is not None:
        from tomoprep.steps.import_.relion5 import plan_relion5_import

        return plan_relion5_import(params)
    if params.is_stack_import:
        from tomoprep.steps.import_.stack import plan_stack_import

        return plan_stack_import(params)
    from tomoprep.steps.import_.movies import plan_movie_import

    return plan_movie_import(params)


def run_import(
    payload: MovieSeriesPayload | StackPayload | Relion5Payload, params: ImportParams, output_dir: Path
) -> UnitOutput:
    """Import one tilt series."""
    from tomoprep.steps.import_.movies import import_movie_series
    from tomoprep.steps.import_.relion5 import Relion5Payload, import_relion5_series
    from tomoprep.steps.import_.stack import StackPayload, import_stack

    if isinstance(payload, Relion5Payload):
        return import_relion5_series(payload, params, output_dir)
    if isinstance(payload, StackPayload):
        return import_stack(payload, params, output_dir)
    return import_movie_series(payload, params, output_dir)


def summarize(outputs: Sequence[TiltSeries]) -> str:
    """Counts of series, tilts and excluded tilts."""
    n_tilts = sum(ts.n_tilts for ts in outputs)
    excluded = sum(ts.n_tilts - len(ts.included_tilts) for ts in outputs)
    return f"{len(outputs)} tilt series, {n_tilts} tilts ({excluded} excluded)"


def kinds_made(params: ImportParams) -> frozenset[Kind]:
    """Tilt-series metadata, and the movies, or the tilt images of the stacks, or of a RELION 5 set with its
    alignment and CTF."""
    if params.relion5 is not None:
        return frozenset({TILT_SERIES, TILT_IMAGES, ALIGNMENT, CTF})
    return frozenset({TILT_SERIES, TILT_IMAGES if params.is_stack_import else MOVIES})


STEP = Step(
    name="import",
    title="Import tilt-series movies with their mdoc files, tilt stacks with their tilt angles, or a RELION 5 "
    "tomogram set.",
    params=ImportParams,
    run=run_import,
    makes=frozenset({TILT_SERIES, MOVIES, TILT_IMAGES, ALIGNMENT, CTF}),
    makes_for=kinds_made,
    plan=plan_import,
    summarize=summarize,
)
