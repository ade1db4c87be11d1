"""The import step: movies + mdoc files, or tilt stacks + tilt angles, into a tilt-series set."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tomoprep.model import TiltSeries
from tomoprep.steps.base import Step, Unit, UnitOutput
from tomoprep.steps.import_movies import MovieSeriesPayload, import_movie_series, plan_movie_import, summarize
from tomoprep.steps.import_params import ImportParams
from tomoprep.steps.import_stack import StackPayload, import_stack, plan_stack_import


def plan_import(params: ImportParams, inputs: Sequence[TiltSeries]) -> list[Unit]:
    """Units of an import: one per stack, or one per tilt series described by the mdoc files."""
    return plan_stack_import(params) if params.is_stack_import else plan_movie_import(params)


def run_import(payload: MovieSeriesPayload | StackPayload, params: ImportParams, output_dir: Path) -> UnitOutput:
    """Import one tilt series."""
    if isinstance(payload, StackPayload):
        return import_stack(payload, params, output_dir)
    return import_movie_series(payload, params, output_dir)


STEP = Step(
    name="import",
    title="Import tilt-series movies with their mdoc files, or tilt stacks with their tilt angles.",
    params=ImportParams,
    run=run_import,
    plan=plan_import,
    summarize=summarize,
)
