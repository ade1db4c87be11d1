"""Marker-free alignment of a tilt series, end to end, at one working binning.

1. coarse: stretched cross-correlation of neighbours, chained from the tilt nearest 0° (:mod:`.tilt_xcorr`);
2. tilt axis: common lines over ±90° around the imported angle, then finely (:mod:`.tilt_axis`); of the two
   equivalent angles ``a`` and ``a + 180°`` the one nearer the imported angle is kept (the defocus gradient
   decides between them elsewhere);
3. the specimen slab in a deep reconstruction: thickness, height and tilt (:mod:`.specimen_slab`); the tilt
   offset that makes the slab flat is added to every tilt, and the specimen centre moved to the slab's centre.
   A thick slab may be too blurred by the coarse shifts to be found: then the shifts are first matched at the
   depth whose reprojections match best;
4. projection matching of every tilt against the reprojection of the others (:mod:`.projection_matching`) in a
   reconstruction as deep as the slab (deeper ones leave shifts wrong by pixels), repeated with the slab
   measured again until its depth, height and tilt settle;
5. a last axis search by the matching score, and the slab levelled once more.

Everything is in pixels of the working images; shifts ``(x, y)`` in RELION's sense (where the specimen centre
lands relative to the image centre).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tomoprep.algorithms.backprojection import align_images, backproject, filter_rows, weighting_filter
from tomoprep.algorithms.projection_matching import MatchingResult, refine_shifts
from tomoprep.algorithms.specimen_slab import SlabMeasurement, measure_slab
from tomoprep.algorithms.tilt_axis import AxisSearch, search_axis
from tomoprep.algorithms.tilt_geometry import projection_rotation
from tomoprep.algorithms.tilt_xcorr import CoarseAlignment, coarse_align

#: Rounds of (measure the slab, level and centre on it, match at its depth) at most.
MAX_SLAB_ROUNDS = 4
#: Largest tilt offset (stage offset and lamella pretilt together) a slab may ask for, degrees.
MAX_TILT_OFFSET_DEG = 35.0
#: A slab's tilt is applied only when its standard error (scatter of the slab's blocks about one plane) is at
#: most this, degrees: 0.4-1.8° on simulated ice slabs, 3-6° on a sparse layer of 50 complexes, whose first
#: "tilt" was 15°.
MAX_TILT_OFFSET_ERROR_DEG = 2.5
#: A slab measured again must be this close (fraction of thickness) to the first, or it is not taken.
THICKNESS_CONSISTENCY = 0.3


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
        Whether that measurement found a slab (:meth:`SlabMeasurement.is_plausible`); its thickness means
        nothing otherwise.
    slices
        ``(ny, nz, nx)`` final reconstruction (SIRT-like weighting), for pictures.
    matching_depth_px
        Depth of the reconstruction the last matching used (the slab's, or the whole depth without one).
    coarse, axis_search, matching
        What the stages found (coarse shifts, the last axis search's curve, the last matching pass).
    notes
        What was decided, in words.
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


def nearest_equivalent_axis(axis_deg: float, reference_deg: float) -> float:
    """``axis_deg`` or ``axis_deg ± 180°``, whichever is nearer ``reference_deg`` (result in (-180, 180])."""
    candidates = [axis_deg + k * 180.0 for k in range(-3, 4)]
    best = min(candidates, key=lambda a: abs(((a - reference_deg) + 180.0) % 360.0 - 180.0))
    return ((best + 180.0) % 360.0) - 180.0 if ((best + 180.0) % 360.0) != 0 else 180.0


def reconstruct(images: torch.Tensor, tilts_deg: Sequence[float], *, axis_deg: float, shifts_px: torch.Tensor,
                nz: int, weighting: str = "sirt") -> torch.Tensor:  # fmt: skip
    """Slices ``(ny, nz, nx)`` of the aligned series (back projection with ``weighting``)."""
    aligned = align_images(images, axis_deg=axis_deg, shifts_px=shifts_px)
    aligned = aligned - aligned.mean(dim=(-2, -1), keepdim=True)
    shape = (aligned.shape[-2], aligned.shape[-1])
    weight = weighting_filter(shape, kind=weighting, lowpass=0.45, n_tilts=len(tilts_deg))
    return backproject(filter_rows(aligned, weight), tilts_deg, nz=nz)


def _search(images: torch.Tensor, tilts: Sequence[float], shifts: torch.Tensor, centre: float, half: float,
            step: float) -> AxisSearch:  # fmt: skip
    return search_axis(images, tilts, shifts_px=shifts, centre_deg=centre, half_range_deg=half, step_deg=step)


def _coarse(images: torch.Tensor, tilts: Sequence[float], axis: float, options: AlignmentOptions) -> CoarseAlignment:
    return coarse_align(images, tilts, axis_deg=axis, max_shift_fraction=options.max_shift_fraction,
                        pixel_spacing_angstrom=options.pixel_spacing_angstrom)  # fmt: skip


def _find_axis(images: torch.Tensor, tilts: Sequence[float], axis0: float, options: AlignmentOptions,
               notes: list[str]) -> tuple[float, CoarseAlignment, AxisSearch | None]:  # fmt: skip
    coarse = _coarse(images, tilts, axis0, options)
    if not options.refine_axis:
        return axis0, coarse, None
    wide = _search(images, tilts, coarse.shifts_px, axis0, options.axis_search_half_range_deg, 2.0)
    axis = wide.best_deg
    if abs(axis - axis0) > 1.0:
        coarse = _coarse(images, tilts, axis, options)
    fine = _search(images, tilts, coarse.shifts_px, axis, 2.5, 0.25)
    axis = nearest_equivalent_axis(fine.best_deg, axis0)
    notes.append(f"tilt axis from common lines: {axis:.2f}° (imported {axis0:.2f}°)")
    return axis, _coarse(images, tilts, axis, options), fine


def _matching_scores(images: torch.Tensor, tilts_deg: Sequence[float], angles: np.ndarray, *,
                     shifts_px: torch.Tensor, nz: int, max_shift_px: float) -> np.ndarray:  # fmt: skip
    scores = []
    for angle in angles:
        result = refine_shifts(images, tilts_deg, axis_deg=float(angle), shifts_px=shifts_px, nz=nz, iterations=1,
                               max_shift_px=max_shift_px)  # fmt: skip
        scores.append(float(result.scores.mean()))
    return np.array(scores)


def refine_axis_by_matching(images: torch.Tensor, tilts_deg: Sequence[float], *, axis_deg: float,
                            shifts_px: torch.Tensor, nz: int, max_shift_px: float, half_range_deg: float = 0.6,
                            step_deg: float = 0.2, max_rounds: int = 4) -> AxisSearch:  # fmt: skip
    """The axis angle at which every tilt best matches the reprojection of the others (a parabola's top).

    Common lines leave a few tenths of a degree, sometimes a degree; the matching score, after one pass of shift
    refinement at each candidate angle, peaks closer to the true axis. When the best candidate is at the edge of
    the searched range, the range moves there and the search goes on.
    """
    offsets = step_deg * np.arange(-round(half_range_deg / step_deg), round(half_range_deg / step_deg) + 1)
    angles, values = np.zeros(0), np.zeros(0)
    centre = axis_deg
    for _ in range(max_rounds):
        new = np.array([a for a in centre + offsets if not np.any(np.isclose(a, angles, atol=1e-6))])
        scored = _matching_scores(images, tilts_deg, new, shifts_px=shifts_px, nz=nz, max_shift_px=max_shift_px)
        angles, values = np.concatenate([angles, new]), np.concatenate([values, scored])
        order = np.argsort(angles)
        angles, values = angles[order], values[order]
        k = int(np.argmax(values))
        if 0 < k < len(angles) - 1:
            break
        centre = float(angles[k])
    k = int(np.clip(np.argmax(values), 1, len(angles) - 2))
    coefficients = np.polyfit(angles[k - 1 : k + 2] - angles[k], values[k - 1 : k + 2], 2)
    best = float(angles[k])
    if coefficients[0] < 0:
        best += float(np.clip(-coefficients[1] / (2 * coefficients[0]), -step_deg, step_deg))
    return AxisSearch(angles, values, best)


def recentre(
    shifts_px: torch.Tensor, tilts_deg: Sequence[float], *, axis_deg: float, centre_xyz_px: Sequence[float]
) -> torch.Tensor:
    """Shifts that make ``centre_xyz_px`` (specimen coordinates, pixels) the new specimen centre."""
    out = shifts_px.double().clone()
    point = torch.tensor(centre_xyz_px, dtype=torch.float64)
    for i, tilt in enumerate(tilts_deg):
        out[i] += (projection_rotation(y_tilt_deg=float(tilt), z_rot_deg=axis_deg) @ point)[:2]
    return out


def _slab_nz(images: torch.Tensor, options: AlignmentOptions) -> int:
    """Depth in which the slab is looked for: the field's width, at most ``max_thickness_px``. (Twice the width
    lost a blurred 2500 Å slab in a 5120 Å field among the streaks of the empty depth.)"""
    nx = images.shape[-1]
    return int(min(nx, options.max_thickness_px or nx)) // 2 * 2


def _final_nz(slab: SlabMeasurement, nz: int) -> int:
    """Depth of the final reconstruction: the slab and a quarter of its thickness on each side (margin enough
    to measure its edges), at most ``nz``."""
    if not slab.is_plausible():
        return nz
    return min(nz, 2 * math.ceil(0.75 * slab.fit.thickness + 8))


def _matching_depth(thickness_px: float, nz_max: int) -> int:
    """Depth of the reconstruction matched against: the slab and a thin margin. Rays through empty depth add
    only the other tilts' streaks, which the reprojection then matches: a reconstruction twice as deep as the
    slab leaves shifts wrong by pixels."""
    return max(16, min(nz_max, 2 * math.ceil(0.5 * thickness_px + 3)))


def _match_at_best_depth(images: torch.Tensor, tilts: list[float], *, axis: float, shifts: torch.Tensor,
                         nz_max: int, limit: float) -> tuple[int, torch.Tensor]:  # fmt: skip
    """Shifts after two matching passes at the depth (of a few up to ``nz_max``) whose reprojections match best."""
    best: tuple[float, int, torch.Tensor] | None = None
    for fraction in (0.25, 0.4, 0.55, 0.7, 0.85):
        depth = max(16, round(fraction * nz_max / 2) * 2)
        result = refine_shifts(images, tilts, axis_deg=axis, shifts_px=shifts, nz=depth, iterations=2,
                               max_shift_px=limit)  # fmt: skip
        score = float(result.scores.mean())
        if best is None or score > best[0]:
            best = (score, depth, result.shifts_px)
    assert best is not None
    return best[1], best[2]


def _level_on_slab(images: torch.Tensor, tilts: list[float], *, axis: float, shifts: torch.Tensor, nz: int,
                   options: AlignmentOptions, offset_so_far: float = 0.0, expected: SlabMeasurement | None = None,
                   ) -> tuple[SlabMeasurement, list[float], torch.Tensor, float, bool]:  # fmt: skip
    """Measure the slab; when one is found, centre the specimen on it and (if asked) add the offset that levels it.

    A slab is taken only if it is plausible, if the total tilt offset stays within
    :data:`MAX_TILT_OFFSET_DEG`, and (given an ``expected`` earlier measurement) if its thickness is within
    :data:`THICKNESS_CONSISTENCY` of that one's. Returns the measurement, the tilts, the shifts, the offset added
    (0 when nothing changed) and whether it was taken.
    """
    slab = measure_slab(reconstruct(images, tilts, axis_deg=axis, shifts_px=shifts, nz=nz, weighting="ramp"))
    # A tilt the blocks of the slab do not agree on (a sparse layer of particles) is not applied; its height is.
    determined = slab.tilt_offset_error_deg <= MAX_TILT_OFFSET_ERROR_DEG
    offset = slab.tilt_offset_deg if options.refine_tilt_offset and determined else 0.0
    taken = slab.is_plausible() and abs(offset_so_far + offset) <= MAX_TILT_OFFSET_DEG
    if expected is not None:
        taken = taken and abs(slab.fit.thickness / expected.fit.thickness - 1) <= THICKNESS_CONSISTENCY
    if not taken:
        return slab, tilts, shifts, 0.0, False
    shifts = recentre(shifts, tilts, axis_deg=axis, centre_xyz_px=(0.0, 0.0, slab.fit.centre))
    return slab, [t + offset for t in tilts], shifts, offset, True


def _settle_on_slab(images: torch.Tensor, tilts: list[float], *, axis: float, shifts: torch.Tensor, nz: int,
                    options: AlignmentOptions, slab: SlabMeasurement, offset: float, matching_nz: int,
                    matching: MatchingResult, limit: float) -> tuple:  # fmt: skip
    """Each matching sharpens the reconstruction, so the slab is measured again (its depth, height and tilt
    tighter each time) and matched again, until neither moves (at most :data:`MAX_SLAB_ROUNDS` rounds).

    Returns the slab, tilts, shifts, total offset, matching depth and the last matching.
    """
    for _ in range(MAX_SLAB_ROUNDS):
        again, tilts, shifts, residual, taken = _level_on_slab(images, tilts, axis=axis, shifts=shifts, nz=nz,
                                                               options=options, offset_so_far=offset,
                                                               expected=slab)  # fmt: skip
        if not taken:
            break
        slab, offset = again, offset + residual
        depth = _matching_depth(again.fit.thickness, nz)
        settled = abs(depth - matching_nz) <= 2 and abs(residual) < 0.3 and abs(again.fit.centre) < 1.0
        matching_nz = depth
        before = shifts
        matching = refine_shifts(images, tilts, axis_deg=axis, shifts_px=shifts, nz=matching_nz,
                                 iterations=options.matching_iterations, max_shift_px=limit)  # fmt: skip
        shifts = matching.shifts_px
        if settled and float((shifts - before).norm(dim=1).pow(2).mean().sqrt()) < 0.15:
            break
    return slab, tilts, shifts, offset, matching_nz, matching


def align_series(images: torch.Tensor, nominal_tilts_deg: Sequence[float], *, axis_deg: float,
                 options: AlignmentOptions | None = None) -> SeriesAlignment:  # fmt: skip
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
    """
    options = options or AlignmentOptions()
    notes: list[str] = []
    tilts = [float(t) for t in nominal_tilts_deg]
    axis, coarse, search = _find_axis(images, tilts, axis_deg, options, notes)
    shifts = coarse.shifts_px
    nz = _slab_nz(images, options)
    limit = 0.05 * images.shape[-1] + 2.0
    slab, tilts, shifts, offset, found = _level_on_slab(images, tilts, axis=axis, shifts=shifts, nz=nz,
                                                        options=options)  # fmt: skip
    if not found:
        # A thick specimen blurs in the coarse reconstruction; matching at the depth the others match best at
        # first sharpens it enough to be found.
        widest = min(nz, images.shape[-1])
        depth, shifts = _match_at_best_depth(images, tilts, axis=axis, shifts=shifts, nz_max=widest, limit=limit)
        notes.append(f"no slab in the coarse reconstruction: first matched at a depth of {depth} px")
        slab, tilts, shifts, offset, found = _level_on_slab(images, tilts, axis=axis, shifts=shifts, nz=nz,
                                                            options=options)  # fmt: skip
    matching_nz = _matching_depth(slab.fit.thickness, nz) if found else nz
    matching = refine_shifts(images, tilts, axis_deg=axis, shifts_px=shifts, nz=matching_nz,
                             iterations=options.matching_iterations, max_shift_px=limit)  # fmt: skip
    shifts = matching.shifts_px
    if found:
        slab, tilts, shifts, offset, matching_nz, matching = _settle_on_slab(
            images, tilts, axis=axis, shifts=shifts, nz=nz, options=options, slab=slab, offset=offset,
            matching_nz=matching_nz, matching=matching, limit=limit)  # fmt: skip
    fit = slab.fit
    notes.append(
        f"slab: {fit.thickness:.1f} px thick, centre {fit.centre:+.1f} px, tilt offset {offset:+.2f}°; "
        f"matched at a depth of {matching_nz} px"
        if found
        else f"no slab found in a {nz}-px-deep reconstruction: tilt offset and height left as they were"
    )
    if options.refine_axis:
        search = refine_axis_by_matching(images, tilts, axis_deg=axis, shifts_px=shifts, nz=matching_nz,
                                         max_shift_px=limit)  # fmt: skip
        axis = search.best_deg
        notes.append(f"tilt axis refined by projection matching: {axis:.2f}°")
        matching = refine_shifts(images, tilts, axis_deg=axis, shifts_px=shifts, nz=matching_nz, iterations=1,
                                 max_shift_px=limit)  # fmt: skip
        shifts = matching.shifts_px
    # The slab measured again in the aligned geometry: what is left of its tilt and height is removed too.
    last, tilts, shifts, residual, taken = _level_on_slab(images, tilts, axis=axis, shifts=shifts, nz=nz,
                                                          options=options, offset_so_far=offset,
                                                          expected=slab if found else None)  # fmt: skip
    offset += residual
    depth = _final_nz(last, nz) if taken else nz
    slices = reconstruct(images, tilts, axis_deg=axis, shifts_px=shifts, nz=depth, weighting="ramp")
    final = measure_slab(slices)
    # The final slab is reported only if it is the one aligned on (a garbage fit must not become a thickness).
    reported = final.is_plausible() and (
        not found or abs(final.fit.thickness / slab.fit.thickness - 1) <= THICKNESS_CONSISTENCY
    )
    return SeriesAlignment(axis, offset, np.array(tilts), shifts.numpy(), final, reported, slices,
                           matching_nz, coarse, search, matching, tuple(notes))  # fmt: skip
