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
    """Units of an import: one per stack, or one per tilt series described by the mdoc files (only those that
    ``params.series`` names, when it names some)."""
    if params.relion5 is not None:
        from tomoprep.steps.import_.relion5 import plan_relion5_import

        units = plan_relion5_import(params)
    elif params.is_stack_import:
        from tomoprep.steps.import_.stack import plan_stack_import

        units = plan_stack_import(params)
    else:
        from tomoprep.steps.import_.movies import plan_movie_import

        units = plan_movie_import(params)
    return units if params.series is None else _only_series(units, params)


def _only_series(units: list[Unit], params: ImportParams) -> list[Unit]:
    """The units of the series ``params.series`` names; a name no unit has becomes a failing unit that says so
    (a series asked for by name and silently left out would look imported)."""
    wanted = list(dict.fromkeys(params.series or ()))
    found = {unit.name for unit in units}
    source = params.mdoc or params.stack or params.relion5
    missing = [
        Unit(name=name, error=f"no tilt series named {name!r} in {source}: the files there describe "
             f"{', '.join(sorted(found)) or 'none'}. Fix: check the name, or wait until its files are there.")
        for name in wanted if name not in found
    ]  # fmt: skip
    return [unit for unit in units if unit.name in wanted] + missing


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
