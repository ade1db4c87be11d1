"""The deconvolution step's record. Its work (:mod:`tomoprep.steps.deconvolve.series`, torch) is imported when a
unit runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tomoprep.model import TiltSeries
from tomoprep.steps.base import Step, UnitOutput
from tomoprep.steps.deconvolve.params import DeconvolveParams
from tomoprep.steps.kinds import TILT_SERIES, TOMOGRAMS


def run_deconvolve(ts: TiltSeries, params: DeconvolveParams, output_dir: Path) -> UnitOutput:
    """Deconvolve the tomograms of one tilt series (:func:`tomoprep.steps.deconvolve.series.deconvolve_series`)."""
    from tomoprep.steps.deconvolve.series import deconvolve_series

    return deconvolve_series(ts, params, output_dir)


def summarize(outputs: Sequence[TiltSeries]) -> str:
    """How many tomograms of how many series were deconvolved."""
    done = sum(1 for ts in outputs for t in ts.tomograms if t.denoised_path is not None)
    return f"{len(outputs)} tilt series, {done} tomograms deconvolved"


STEP = Step(
    name="deconvolve",
    title="Deconvolve tomograms with the CTF at the series' mean defocus (Warp's or IsoNet's filter).",
    params=DeconvolveParams,
    run=run_deconvolve,
    needs=frozenset({TILT_SERIES, TOMOGRAMS}),
    makes=frozenset({TOMOGRAMS}),
    summarize=summarize,
)
