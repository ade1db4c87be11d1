"""The reconstruction step's record. Its work (:mod:`tomoprep.steps.reconstruct.series`: torch, matplotlib) is
imported when a unit runs, so that ``tomoprep reconstruct --help`` starts without them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tomoprep.model import TiltSeries
from tomoprep.steps.base import Step, UnitOutput
from tomoprep.steps.kinds import TILT_IMAGES, TILT_SERIES, TOMOGRAMS
from tomoprep.steps.reconstruct.params import ReconstructParams


def run_reconstruct(ts: TiltSeries, params: ReconstructParams, output_dir: Path) -> UnitOutput:
    """Reconstruct one tilt series (:func:`tomoprep.steps.reconstruct.series.reconstruct_series`)."""
    from tomoprep.steps.reconstruct.series import reconstruct_series

    return reconstruct_series(ts, params, output_dir)


def summarize(outputs: Sequence[TiltSeries]) -> str:
    """Tomograms made, at which binnings, and which series were reconstructed with the nominal geometry."""
    binnings = sorted({t.binning for ts in outputs for t in ts.tomograms}, reverse=True)
    count = sum(len(ts.tomograms) for ts in outputs)
    nominal = [ts.name for ts in outputs if not any(t.alignment is not None for t in ts.included_tilts)]
    line = f"{len(outputs)} tilt series, {count} tomograms (bin {', '.join(f'{b:g}' for b in binnings)})"
    if nominal:
        line += f"; not aligned, nominal geometry: {', '.join(nominal)}"
    return line


STEP = Step(
    name="reconstruct",
    title="Tomograms by weighted back projection (or its SIRT-like filter) at one or more binnings, with exposure "
    "filter, CTF correction, odd/even halves, aligned stacks and deconvolution.",
    params=ReconstructParams,
    run=run_reconstruct,
    needs=frozenset({TILT_SERIES, TILT_IMAGES}),
    makes=frozenset({TOMOGRAMS}),
    summarize=summarize,
)
