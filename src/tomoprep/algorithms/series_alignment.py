"""Marker-free alignment of a tilt series, end to end, at one working binning.

1. coarse: stretched cross-correlation of neighbours, chained from the tilt nearest 0° (:mod:`.tilt_xcorr`);
2. tilt axis, roughly: common lines over ±90° around the imported angle (:mod:`.tilt_axis`), trusted only where
   they put the axis far from the imported one; of the two equivalent angles ``a`` and ``a + 180°`` the one
   nearer the imported angle is kept (the defocus gradient decides between them elsewhere);
3. the specimen slab in a deep reconstruction (:mod:`.slab_alignment`): the specimen centred on it and the
   tilt offset that makes it flat added to every tilt; a slab not found there is looked for again after
   matching at the depth whose reprojections match best;
4. the axis within ±3° by cross-prediction of the near and the steep tilts (:mod:`.axis_refinement`), and the
   slab looked for again if it had not been found;
5. projection matching of every tilt against the reprojection of the others (:mod:`.projection_matching`) in a
   reconstruction as deep as the slab, repeated with the slab measured again until it settles;
6. the axis refined finely by cross-prediction, the slab levelled once more, and its thickness reported only
   when it is measured with confidence (:meth:`.SlabMeasurement.why_thickness_unreported`).

Everything is in pixels of the working images; shifts ``(x, y)`` in RELION's sense (where the specimen centre
lands relative to the image centre).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from tomoprep.algorithms.axis_refinement import refine_axis
from tomoprep.algorithms.projection_matching import MatchingResult, refine_shifts
from tomoprep.algorithms.slab_alignment import (
    final_depth,
    find_slab,
    level_on_slab,
    measure_slab_in,
    settle_on_slab,
    thickness_unreported,
)
from tomoprep.algorithms.slab_attenuation import tilt_offset_from_attenuation
from tomoprep.algorithms.specimen_slab import SlabMeasurement
from tomoprep.algorithms.tilt_axis import AxisSearch, search_axis, why_common_lines_fail
from tomoprep.algorithms.tilt_xcorr import CoarseAlignment, coarse_align

#: Common lines replace the imported axis only beyond this distance from it (degrees): nearer, the search by
#: cross-prediction (±3°, moving up to ±6°) starts from the imported axis and finds it better.
COMMON_LINE_TRUST_DEG = 5.0


@dataclass(frozen=True)
class AlignmentOptions:
    """What :func:`align_series` does (pixels of the working images; ``pixel_spacing_angstrom``, their spacing
    when known, bounds the coarse correlation's band at :data:`.tilt_xcorr.COARSE_RESOLUTION_ANGSTROM`)."""

    refine_axis: bool = True
    axis_search_half_range_deg: float = 90.0
    refine_tilt_offset: bool = True
    matching_iterations: int = 3
    max_shift_fraction: float = 0.45
    max_thickness_px: int | None = None
    pixel_spacing_angstrom: float | None = None


@dataclass(frozen=True)
class SeriesAlignment:
    """The alignment of one series (working pixels).

    Attributes
    ----------
    axis_deg
        Refined tilt-axis angle (degrees CCW from image Y), within ±90° of the imported one.
    tilt_offset_deg
        Added to every nominal tilt to make the specimen slab flat.
    tilts_deg
        ``(n,)`` aligned tilt angles (nominal + offset).
    shifts_px
        ``(n, 2)`` shifts ``(x, y)``: where the slab's centre lands, relative to the image centre.
    slab
        The slab measured in the final reconstruction (its z relative to the specimen centre, now ~0).
    slab_found
        Whether that measurement found a slab whose thickness can be reported; it means nothing otherwise.
    slices
        ``(ny, nz, nx)`` final reconstruction (SIRT-like weighting), for pictures.
    matching_depth_px
        Depth of the reconstruction the last matching used (the slab's, or the whole depth without one).
    coarse, axis_search, matching
        What the stages found (coarse shifts, the last axis search's curve, the last matching pass).
    common_lines
        The common-line search's curve (``None`` where the axis was not refined); ``axis_search`` is the final
        cross-prediction's then.
    notes
        What was decided, in words.
    thickness_reason
        Why the thickness is not reported, in words (``""`` when it is).
    """

    axis_deg: float
    tilt_offset_deg: float
    tilts_deg: np.ndarray
    shifts_px: np.ndarray
    slab: SlabMeasurement
    slab_found: bool
    slices: torch.Tensor
    matching_depth_px: int
    coarse: CoarseAlignment
    axis_search: AxisSearch | None
    matching: MatchingResult
    notes: tuple[str, ...]
    thickness_reason: str = ""
    common_lines: AxisSearch | None = None


def nearest_equivalent_axis(axis_deg: float, reference_deg: float) -> float:
    """``axis_deg`` or ``axis_deg ± 180°``, whichever is nearer ``reference_deg`` (result in (-180, 180])."""
    candidates = [axis_deg + k * 180.0 for k in range(-3, 4)]
    best = min(candidates, key=lambda a: abs(((a - reference_deg) + 180.0) % 360.0 - 180.0))
    return ((best + 180.0) % 360.0) - 180.0 if ((best + 180.0) % 360.0) != 0 else 180.0


def _search(images: torch.Tensor, tilts: Sequence[float], shifts: torch.Tensor, centre: float, half: float,
            step: float) -> AxisSearch:  # fmt: skip
    return search_axis(images, tilts, shifts_px=shifts, centre_deg=centre, half_range_deg=half, step_deg=step)


def _coarse(images: torch.Tensor, tilts: Sequence[float], axis: float, options: AlignmentOptions) -> CoarseAlignment:
    return coarse_align(images, tilts, axis_deg=axis, max_shift_fraction=options.max_shift_fraction,
                        pixel_spacing_angstrom=options.pixel_spacing_angstrom)  # fmt: skip


def _find_axis(images: torch.Tensor, tilts: Sequence[float], axis0: float, options: AlignmentOptions,
               notes: list[str]) -> tuple[float, CoarseAlignment, AxisSearch | None]:  # fmt: skip
    """The axis to start from, the coarse shifts there, and the common-line search.

    Common lines find an axis anywhere within ±90°, but only to a few degrees (their score is flat-topped: each
    tilt's band covers another part of a thick specimen at its edges; 0.4-2.7° off on 256-px blob stacks with
    the true shifts, and no peak at all on 128-px ones). They are trusted only where they put the axis beyond
    :data:`COMMON_LINE_TRUST_DEG` of the imported one, which the finer search would not reach.
    """
    coarse = _coarse(images, tilts, axis0, options)
    if not options.refine_axis:
        return axis0, coarse, None
    wide = _search(images, tilts, coarse.shifts_px, axis0, options.axis_search_half_range_deg, 2.0)
    found = nearest_equivalent_axis(wide.best_deg, axis0)
    if abs(found - axis0) <= COMMON_LINE_TRUST_DEG:
        notes.append(f"common lines: {found:.1f}°, within {COMMON_LINE_TRUST_DEG:g}° of the imported {axis0:.2f}°, "
                     "which is searched around")  # fmt: skip
        return axis0, coarse, wide
    doubt = why_common_lines_fail(wide, tilts, axis0)
    if doubt is not None:
        notes.append(f"common lines put the axis at {found:.1f}°, {abs(found - axis0):.1f}° from the imported "
                     f"{axis0:.2f}°, but {doubt}: the imported angle is searched around")  # fmt: skip
        return axis0, coarse, wide
    coarse = _coarse(images, tilts, found, options)
    fine = _search(images, tilts, coarse.shifts_px, found, 2.5, 0.25)
    axis = nearest_equivalent_axis(fine.best_deg, axis0)
    notes.append(f"tilt axis from common lines: {axis:.2f}°, {abs(axis - axis0):.1f}° from the imported {axis0:.2f}°")
    return axis, _coarse(images, tilts, axis, options), fine


def _slab_nz(images: torch.Tensor, options: AlignmentOptions) -> int:
    """Depth in which the slab is looked for: the field's width, at most ``max_thickness_px``. (Twice the width
    lost a blurred 2500 Å slab in a 5120 Å field among the streaks of the empty depth.)"""
    nx = images.shape[-1]
    return int(min(nx, options.max_thickness_px or nx)) // 2 * 2


def _axis_and_slab(images: torch.Tensor, tilts: list[float], axis: float, coarse: CoarseAlignment,
                   options: AlignmentOptions, notes: list[str]) -> tuple:  # fmt: skip
    """The slab found at the starting axis, then the axis within ±3° by cross-prediction, and the slab looked for
    again if it was not found. Returns the slab, tilts, shifts, offset, whether found, matching depth and axis."""
    nz, limit = _slab_nz(images, options), _matching_limit(images)
    slab, tilts, shifts, offset, found, depth = find_slab(images, tilts, axis=axis, shifts=coarse.shifts_px, nz=nz,
                                                          refine_tilt_offset=options.refine_tilt_offset,
                                                          limit=limit, notes=notes)  # fmt: skip
    if not options.refine_axis:
        return slab, tilts, shifts, offset, found, depth, axis
    # Common lines, or the imported axis, leave the axis up to a few degrees off: found again within ±3° (±6°
    # at most) before the slab is settled on.
    shifts = refine_shifts(images, tilts, axis_deg=axis, shifts_px=shifts, nz=depth, iterations=2,
                           max_shift_px=limit).shifts_px  # fmt: skip
    axis = refine_axis(images, tilts, axis_deg=axis, shifts_px=shifts, nz=depth, half_range_deg=3.0, step_deg=1.0,
                       max_rounds=2).best_deg  # fmt: skip
    notes.append(f"tilt axis by cross-prediction within ±3°: {axis:.2f}°")
    if not found:
        slab, tilts, shifts, offset, found, depth = find_slab(images, tilts, axis=axis, shifts=shifts, nz=nz,
                                                              refine_tilt_offset=options.refine_tilt_offset,
                                                              limit=limit, notes=notes)  # fmt: skip
    return slab, tilts, shifts, offset, found, depth, axis


def _matching_limit(images: torch.Tensor) -> float:
    """Largest shift correction searched per matching pass, pixels."""
    return 0.05 * images.shape[-1] + 2.0


def _offset_from_attenuation(images: torch.Tensor, nominal_tilts_deg: Sequence[float],
                             exposures: Sequence[float] | None, options: AlignmentOptions,
                             notes: list[str]) -> tuple[float, AlignmentOptions]:  # fmt: skip
    """The tilt offset from the tilts' mean intensities (:mod:`.slab_attenuation`) where they are intensities,
    and the options for the rest (the slab then only centred on, not levelled); else 0 and the options as given.

    The slab's tilt measured in a reconstruction errs by about a degree with the true geometry (where its
    particles lie at its faces); the means' fall with the path gave 0.03° on the session simulator's series and
    at most 0.23° on blob stacks.
    """
    if not options.refine_tilt_offset:
        return 0.0, options
    means = images.double().mean(dim=(-2, -1)).numpy()
    found = tilt_offset_from_attenuation(means, nominal_tilts_deg, exposures=exposures)
    if not found.usable:
        notes.append(f"tilt offset not from the tilts' mean intensities ({found.reason}): from the slab's tilt")
        return 0.0, options
    notes.append(f"tilt offset from the fall of the tilts' mean intensity with the path through the slab: "
                 f"{found.offset_deg:+.2f}° (standard error {found.offset_error_deg:.2f}°); the slab is centred "
                 "on, not levelled")  # fmt: skip
    return found.offset_deg, replace(options, refine_tilt_offset=False)


def align_series(images: torch.Tensor, nominal_tilts_deg: Sequence[float], *, axis_deg: float,
                 options: AlignmentOptions | None = None,
                 exposures: Sequence[float] | None = None) -> SeriesAlignment:  # fmt: skip
    """Align a tilt series (see the module docstring for the stages).

    Parameters
    ----------
    images
        ``(n, ny, nx)`` tilt images at the working binning (excluded tilts left out).
    nominal_tilts_deg
        ``(n,)`` nominal tilt angles, degrees.
    axis_deg
        Imported tilt-axis angle, degrees counter-clockwise from image Y.
    options
        Stages and limits; defaults for a typical series.
    exposures
        ``(n,)`` each tilt's exposure (e/Å²) when known, for the tilt offset from the images' mean intensities.
    """
    options = options or AlignmentOptions()
    notes: list[str] = []
    start, options = _offset_from_attenuation(images, nominal_tilts_deg, exposures, options, notes)
    started = [float(t) + start for t in nominal_tilts_deg]
    axis, coarse, search = _find_axis(images, started, axis_deg, options, notes)
    common_lines = search
    slab, tilts, shifts, offset, found, depth, axis = _axis_and_slab(images, started, axis, coarse, options, notes)
    offset += start
    nz, limit = _slab_nz(images, options), _matching_limit(images)
    matching = refine_shifts(images, tilts, axis_deg=axis, shifts_px=shifts, nz=depth,
                             iterations=options.matching_iterations, max_shift_px=limit)  # fmt: skip
    if found:
        slab, tilts, shifts, offset, depth, matching = settle_on_slab(
            images, tilts, axis=axis, shifts=matching.shifts_px, nz=nz, refine_tilt_offset=options.refine_tilt_offset,
            iterations=options.matching_iterations, slab=slab, offset=offset, matching_nz=depth, matching=matching,
            limit=limit)  # fmt: skip
        notes.append(f"slab: a layer {slab.layer_thickness:.1f} px deep, centre {slab.fit.centre:+.1f} px, tilt offset "
                     f"{offset:+.2f}°; matched at a depth of {depth} px")  # fmt: skip
    else:
        notes.append(f"no slab found in a {nz}-px-deep reconstruction: tilt offset and height left as they were")
    if options.refine_axis:
        search = refine_axis(images, tilts, axis_deg=axis, shifts_px=matching.shifts_px, nz=depth)
        axis = search.best_deg
        notes.append(f"tilt axis refined by cross-prediction of the near and steep tilts: {axis:.2f}°")
        matching = refine_shifts(images, tilts, axis_deg=axis, shifts_px=matching.shifts_px, nz=depth, iterations=1,
                                 max_shift_px=limit)  # fmt: skip
    # The slab measured again in the aligned geometry: what is left of its tilt and height is removed too.
    last, tilts, shifts, residual, taken = level_on_slab(
        images, tilts, axis=axis, shifts=matching.shifts_px, nz=nz, refine_tilt_offset=options.refine_tilt_offset,
        offset_so_far=offset, expected=slab if found else None)  # fmt: skip
    final, slices = measure_slab_in(images, tilts, axis_deg=axis, shifts_px=shifts,
                                    nz=final_depth(last, nz) if taken else nz)  # fmt: skip
    reason = thickness_unreported(final, slab if found else None)
    notes.append(f"thickness {final.thickness:.1f} px" if not reason else f"no thickness: {reason}")
    return SeriesAlignment(axis, offset + residual, np.array(tilts), shifts.numpy(), final, not reason, slices, depth,
                           coarse, search, matching, tuple(notes), reason, common_lines)  # fmt: skip
