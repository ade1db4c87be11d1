"""What the Thon rings show of the specimen, on request: its tilt (axis and offset) and its thickness, each as a
cross-check of the alignment's, written beside it (``CtfSample``) and never in its place."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tomoprep.algorithms.ctf_sample_tilt import SampleTilt, SampleTiltSettings, fit_sample_tilt
from tomoprep.algorithms.ctf_series import SeriesCtf
from tomoprep.algorithms.ctf_spectrum import Optics
from tomoprep.algorithms.ctf_thickness import ThicknessEstimate, ThicknessSettings, fit_thickness, prepare_wide
from tomoprep.model import CtfSample, TiltSeries
from tomoprep.steps.base import WARNING_PREFIX
from tomoprep.steps.ctf.params import CtfParams

#: Tiles (px) of the thickness fit where the images hold two across: the window of a smaller tile fades the dense
#: rings of a high defocus by the nodes (100 nm at 3 µm, 1024² at 1.5 Å: claimed in 3 of 3 series, not 2 of 3).
THICKNESS_TILE_PX = 512
#: The CTF's tilt offset sets the path through the slab for the thickness only where its error is below this (°).
MAX_OFFSET_ERROR_DEG = 1.0


def _good(result: SeriesCtf) -> list[int]:
    """The tilts with a fit of their own (not flagged)."""
    return [i for i, flag in enumerate(result.flags) if not flag]


def sample_tilt(images: Sequence[np.ndarray], result: SeriesCtf, tilts_deg: np.ndarray, *, axis_deg: float,
                optics: Optics, params: CtfParams) -> tuple[SampleTilt | None, str]:  # fmt: skip
    """The series' tilt axis and offset from its defocus gradients, or None and why not."""
    good = _good(result)
    hand = result.hand.hand if result.hand.hand is not None else result.hand.leaning
    try:
        found = fit_sample_tilt([images[i] for i in good], [result.fits[i] for i in good],
                                [float(tilts_deg[i]) for i in good], axis_deg=axis_deg, hand=hand, optics=optics,
                                low_resolution_angstrom=params.low_resolution_angstrom,
                                settings=SampleTiltSettings(tile_px=params.tile_px))  # fmt: skip
    except ValueError as error:
        return None, f"{WARNING_PREFIX} sample tilt not refined: {error}"
    return found, ""


def thickness(images: Sequence[np.ndarray], result: SeriesCtf, tilts_deg: np.ndarray, *, axis_deg: float,
              optics: Optics, params: CtfParams) -> tuple[ThicknessEstimate | None, str]:  # fmt: skip
    """The specimen's thickness from the rings' nodes over the tilts with a fit of their own, or None and why
    not."""
    good = _good(result)
    settings = ThicknessSettings(max_thickness_angstrom=params.max_thickness_nm * 10.0)
    wide_enough = bool(good) and min(np.shape(images[good[0]])) >= 2 * THICKNESS_TILE_PX
    tile_px = max(params.tile_px, THICKNESS_TILE_PX) if wide_enough else params.tile_px
    try:
        spectra = [prepare_wide(np.asarray(images[i]), tilt_deg=float(tilts_deg[i]), axis_deg=axis_deg,
                                optics=optics, tile_px=tile_px,
                                low_resolution_angstrom=params.low_resolution_angstrom, settings=settings)
                   for i in good]  # fmt: skip
        found = fit_thickness(spectra, [result.fits[i] for i in good], [float(tilts_deg[i]) for i in good], settings)
    except ValueError as error:  # no good tilt, or a band with too few frequencies for the tiles
        return None, f"{WARNING_PREFIX} thickness not measured: {error}"
    return found, ""


def thickness_note(estimate: ThicknessEstimate, ts: TiltSeries) -> str:
    """The log's line: the CTF's thickness and, where the alignment measured one, the two compared."""
    line = estimate.describe()
    aligned = ts.specimen_thickness_angstrom
    if aligned is None or estimate.thickness_angstrom is None:
        return line
    difference = estimate.thickness_angstrom - aligned
    sigma = estimate.error_angstrom if math.isfinite(estimate.error_angstrom) and estimate.error_angstrom > 0 else 0
    said = f", {abs(difference) / sigma:.1f} standard errors" if sigma else ""
    return f"{line}; the alignment's slab is {aligned / 10:.0f} nm (CTF {difference / 10:+.0f} nm{said})"


def measure_sample(images: Sequence[np.ndarray], result: SeriesCtf, ts: TiltSeries, tilts_deg: np.ndarray, *,
                   axis_deg: float, source: str, optics: Optics, params: CtfParams
                   ) -> tuple[CtfSample | None, list[str]]:  # fmt: skip
    """The sample tilt and thickness asked for by ``params`` (None when neither was), and the log's lines."""
    if not (params.refine_sample_tilt or params.fit_thickness):
        return None, []
    notes: list[str] = []
    given = "the alignment" if source.startswith("the alignment") else "the nominal geometry"
    tilt, offset = None, 0.0
    if params.refine_sample_tilt:
        tilt, why = sample_tilt(images, result, tilts_deg, axis_deg=axis_deg, optics=optics, params=params)
        notes.append(tilt.describe(axis_deg, given) if tilt is not None else why)
        # The path through the slab is t / cos of the specimen's tilt: the CTF's own offset where it is sure of it
        # (an offset known to ±1° changes the path at 45° by under 2 %), else the geometry given.
        if tilt is not None and tilt.offset_error_deg <= MAX_OFFSET_ERROR_DEG:
            offset = tilt.offset_deg
    estimate = None
    if params.fit_thickness:
        estimate, why = thickness(images, result, tilts_deg + offset, axis_deg=axis_deg, optics=optics, params=params)
        notes.append(thickness_note(estimate, ts) if estimate is not None else why)
    measured = estimate is not None and estimate.thickness_angstrom is not None
    sample = CtfSample(
        thickness_angstrom=estimate.thickness_angstrom if measured else None,  # type: ignore[union-attr]
        thickness_error_angstrom=estimate.error_angstrom if measured else None,  # type: ignore[union-attr]
        tilt_axis_deg=None if tilt is None else tilt.axis_deg,
        tilt_axis_error_deg=None if tilt is None else tilt.axis_error_deg,
        tilt_offset_deg=None if tilt is None else tilt.offset_deg,
        tilt_offset_error_deg=None if tilt is None else tilt.offset_error_deg,
    )  # fmt: skip
    return sample, notes
