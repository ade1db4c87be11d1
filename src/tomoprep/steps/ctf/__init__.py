"""The CTF estimation step's record. Its work (:mod:`tomoprep.steps.ctf.series`: numpy, scipy, torch to read the
images) is imported when a unit runs, so that ``tomoprep ctf --help`` starts without them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tomoprep.model import TiltSeries
from tomoprep.steps.base import Step, UnitOutput
from tomoprep.steps.ctf.params import CtfParams
from tomoprep.steps.kinds import CTF, TILT_IMAGES, TILT_SERIES


def run_ctf(ts: TiltSeries, params: CtfParams, output_dir: Path) -> UnitOutput:
    """Estimate the CTF of one tilt series (:func:`tomoprep.steps.ctf.series.estimate_series`)."""
    from tomoprep.steps.ctf.series import estimate_series

    return estimate_series(ts, params, output_dir)


def summarize(outputs: Sequence[TiltSeries]) -> str:
    """Series estimated, their defocus range, and how many tilts were flagged."""
    records = [t.ctf for ts in outputs for t in ts.tilts if t.ctf is not None]
    if not records:
        return f"{len(outputs)} tilt series, no CTF"
    defoci = [r.defocus_angstrom / 1e4 for r in records]
    flagged = sum(1 for r in records if r.flag)
    hands = [ts.ctf_hand.hand for ts in outputs if ts.ctf_hand is not None]
    undetermined = sum(1 for h in hands if h is None)
    return (f"{len(outputs)} tilt series, {len(records)} tilts: defocus {min(defoci):.2f}–{max(defoci):.2f} µm, "
            f"{flagged} tilts flagged, hand undetermined in {undetermined}")  # fmt: skip


STEP = Step(
    name="ctf",
    title="CTF estimation with the specimen's defocus gradient, joint over each series, with the defocus hand "
    "(or estimates from CTFFIND, ctfplotter, AreTomo).",
    params=CtfParams,
    run=run_ctf,
    needs=frozenset({TILT_SERIES, TILT_IMAGES}),
    makes=frozenset({CTF}),
    summarize=summarize,
)
