"""The specimen slab during alignment: found in a reconstruction, levelled and centred on, matched at its depth.

A lamella or an ice layer holds the specimen between two planes (:mod:`.specimen_slab` measures them). The
alignment centres the specimen on the slab, adds the tilt offset that makes it flat, and matches projections in
a reconstruction as deep as the slab; each matching sharpens the reconstruction, so the slab is measured again
until it settles. A slab that is not found with confidence gives no thickness.

Everything is in pixels of the working images; shifts ``(x, y)`` in RELION's sense.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from tomoprep.algorithms.backprojection import (
    align_images,
    backproject,
    filter_rows,
    shared_field_window,
    weighting_filter,
)
from tomoprep.algorithms.projection_matching import MatchingResult, refine_shifts
from tomoprep.algorithms.slab_blur import content_kernel, specimen_power
from tomoprep.algorithms.specimen_slab import SlabMeasurement, content, measure_slab
from tomoprep.algorithms.tilt_geometry import projection_rotation

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


def reconstruct(images: torch.Tensor, tilts_deg: Sequence[float], *, axis_deg: float | Sequence[float],
                shifts_px: torch.Tensor, nz: int, weighting: str = "sirt") -> torch.Tensor:  # fmt: skip
    """Slices ``(ny, nz, nx)`` of the aligned series (back projection with ``weighting``), each image tapered at its
    own edges: weighted by the field every tilt covers instead, blocks near the field's edge lose content at
    high tilts only, and the slab's tilt measured in them came out 1-3° short on slabs pretilted by -6°."""
    aligned = align_images(images, axis_deg=axis_deg, shifts_px=shifts_px)
    aligned = aligned - aligned.mean(dim=(-2, -1), keepdim=True)
    shape = (aligned.shape[-2], aligned.shape[-1])
    weight = weighting_filter(shape, kind=weighting, lowpass=0.45, n_tilts=len(tilts_deg))
    return backproject(filter_rows(aligned, weight), tilts_deg, nz=nz)


def measure_slab_in(images: torch.Tensor, tilts_deg: Sequence[float], *, axis_deg: float, shifts_px: torch.Tensor,
                    nz: int) -> tuple[SlabMeasurement, torch.Tensor]:  # fmt: skip
    """The slab in a reconstruction ``nz`` deep (ramp weighting), measured where every tilt saw it, and the slices.

    Columns beyond the field every tilt covers are reconstructed from some tilts only, their content lopsided
    in z: at an axis 30° from the image's sides they tilted the slab by 0.6-1.3°. A slab too thin for its blocks
    to show two faces is measured with the blur of a flat sheet reconstructed through the same tilts
    (:func:`.slab_blur.content_kernel`).
    """
    slices = reconstruct(images, tilts_deg, axis_deg=axis_deg, shifts_px=shifts_px, nz=nz, weighting="ramp")
    field = shared_field_window((images.shape[-2], images.shape[-1]), axis_deg=axis_deg, shifts_px=shifts_px)
    ny, nx = field.shape
    flat_x = float((field[ny // 2] > 0.999).sum()) / nx
    flat_y = float((field[:, nx // 2] > 0.999).sum()) / ny
    kernel = lambda: _blur_kernel(images, tilts_deg, axis_deg, shifts_px, slices)  # noqa: E731 (made when needed)
    return measure_slab(slices, central_fraction_xy=(flat_x, flat_y), blur_kernel=kernel), slices


def _blur_kernel(images: torch.Tensor, tilts_deg: Sequence[float], axis_deg: float, shifts_px: torch.Tensor,
                 slices: torch.Tensor) -> np.ndarray:  # fmt: skip
    """The content profile of a flat sheet reconstructed like ``slices`` (:func:`.slab_blur.content_kernel`),
    its particles sized by the three aligned images nearest 0°."""
    nearest = sorted(range(len(tilts_deg)), key=lambda i: abs(float(tilts_deg[i])))[:3]
    aligned = align_images(images[nearest], axis_deg=axis_deg, shifts_px=shifts_px[nearest])
    power = specimen_power(aligned[..., _middle(aligned.shape[-2]), _middle(aligned.shape[-1])])
    return content_kernel(slices, tilts_deg, power=power, content=content)


def _middle(n: int) -> slice:
    """The middle half of ``n`` pixels (an aligned image's corners are empty)."""
    return slice(n // 4, n // 4 + n // 2)


def recentre(
    shifts_px: torch.Tensor, tilts_deg: Sequence[float], *, axis_deg: float, centre_xyz_px: Sequence[float]
) -> torch.Tensor:
    """Shifts that make ``centre_xyz_px`` (specimen coordinates, pixels) the new specimen centre."""
    out = shifts_px.double().clone()
    point = torch.tensor(centre_xyz_px, dtype=torch.float64)
    for i, tilt in enumerate(tilts_deg):
        out[i] += (projection_rotation(y_tilt_deg=float(tilt), z_rot_deg=axis_deg) @ point)[:2]
    return out


def final_depth(slab: SlabMeasurement, nz: int) -> int:
    """Depth of the final reconstruction: the slab and a quarter of its thickness on each side (margin enough
    to measure its edges), at most ``nz``."""
    if not slab.is_plausible():
        return nz
    return min(nz, 2 * math.ceil(0.75 * slab.layer_thickness + 8))


def matching_depth(thickness_px: float, nz_max: int) -> int:
    """Depth of the reconstruction matched against: the slab and a thin margin. Rays through empty depth add
    only the other tilts' streaks, which the reprojection then matches: a reconstruction twice as deep as the
    slab leaves shifts wrong by pixels."""
    return max(16, min(nz_max, 2 * math.ceil(0.5 * thickness_px + 3)))


def match_at_best_depth(images: torch.Tensor, tilts: list[float], *, axis: float, shifts: torch.Tensor,
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


def find_slab(images: torch.Tensor, tilts: list[float], *, axis: float, shifts: torch.Tensor, nz: int,
              refine_tilt_offset: bool, limit: float, notes: list[str]) -> tuple:  # fmt: skip
    """The slab in the reconstruction at these shifts or, not found there, after matching at the depth whose
    reprojections match best (a thick specimen blurs in the coarse reconstruction; matching sharpens it).

    Returns the slab, tilts, shifts, tilt offset, whether it was found, and the depth to match at (the slab's,
    or the best-matching one).
    """
    slab, tilts, shifts, offset, found = level_on_slab(images, tilts, axis=axis, shifts=shifts, nz=nz,
                                                       refine_tilt_offset=refine_tilt_offset)  # fmt: skip
    if found:
        return slab, tilts, shifts, offset, True, matching_depth(slab.layer_thickness, nz)
    depth, shifts = match_at_best_depth(images, tilts, axis=axis, shifts=shifts, nz_max=min(nz, images.shape[-1]),
                                         limit=limit)  # fmt: skip
    notes.append(f"no slab in the reconstruction: matched at a depth of {depth} px, where reprojections match best")
    slab, tilts, shifts, offset, found = level_on_slab(images, tilts, axis=axis, shifts=shifts, nz=nz,
                                                       refine_tilt_offset=refine_tilt_offset)  # fmt: skip
    return slab, tilts, shifts, offset, found, (matching_depth(slab.layer_thickness, nz) if found else depth)


def level_on_slab(images: torch.Tensor, tilts: list[float], *, axis: float, shifts: torch.Tensor, nz: int,
                  refine_tilt_offset: bool, offset_so_far: float = 0.0, expected: SlabMeasurement | None = None,
                   ) -> tuple[SlabMeasurement, list[float], torch.Tensor, float, bool]:  # fmt: skip
    """Measure the slab; when one is found, centre the specimen on it and (if asked) add the offset that levels it.

    A slab is taken only if it is plausible, if the total tilt offset stays within
    :data:`MAX_TILT_OFFSET_DEG`, and (given an ``expected`` earlier measurement) if its thickness is within
    :data:`THICKNESS_CONSISTENCY` of that one's. Returns the measurement, the tilts, the shifts, the offset added
    (0 when nothing changed) and whether it was taken.
    """
    slab, _ = measure_slab_in(images, tilts, axis_deg=axis, shifts_px=shifts, nz=nz)
    # A tilt the blocks of the slab do not agree on (a sparse layer of particles) is not applied; its height is.
    determined = slab.tilt_offset_error_deg <= MAX_TILT_OFFSET_ERROR_DEG
    offset = slab.tilt_offset_deg if refine_tilt_offset and determined else 0.0
    taken = slab.is_plausible() and abs(offset_so_far + offset) <= MAX_TILT_OFFSET_DEG
    if expected is not None:
        taken = taken and abs(slab.layer_thickness / expected.layer_thickness - 1) <= THICKNESS_CONSISTENCY
    if not taken:
        return slab, tilts, shifts, 0.0, False
    shifts = recentre(shifts, tilts, axis_deg=axis, centre_xyz_px=(0.0, 0.0, slab.fit.centre))
    return slab, [t + offset for t in tilts], shifts, offset, True


def settle_on_slab(images: torch.Tensor, tilts: list[float], *, axis: float, shifts: torch.Tensor, nz: int,
                   refine_tilt_offset: bool, iterations: int, slab: SlabMeasurement, offset: float,
                   matching_nz: int, matching: MatchingResult, limit: float) -> tuple:  # fmt: skip
    """Each matching sharpens the reconstruction, so the slab is measured again (its depth, height and tilt
    tighter each time) and matched again, until neither moves (at most :data:`MAX_SLAB_ROUNDS` rounds).

    Returns the slab, tilts, shifts, total offset, matching depth and the last matching.
    """
    for _ in range(MAX_SLAB_ROUNDS):
        again, tilts, shifts, residual, taken = level_on_slab(images, tilts, axis=axis, shifts=shifts, nz=nz,
                                                              refine_tilt_offset=refine_tilt_offset,
                                                              offset_so_far=offset, expected=slab)  # fmt: skip
        if not taken:
            break
        slab, offset = again, offset + residual
        depth = matching_depth(again.layer_thickness, nz)
        settled = abs(depth - matching_nz) <= 2 and abs(residual) < 0.3 and abs(again.fit.centre) < 1.0
        matching_nz = depth
        before = shifts
        matching = refine_shifts(images, tilts, axis_deg=axis, shifts_px=shifts, nz=matching_nz,
                                 iterations=iterations, max_shift_px=limit)  # fmt: skip
        shifts = matching.shifts_px
        if settled and float((shifts - before).norm(dim=1).pow(2).mean().sqrt()) < 0.15:
            break
    return slab, tilts, shifts, offset, matching_nz, matching


def thickness_unreported(final: SlabMeasurement, aligned_on: SlabMeasurement | None) -> str:
    """Why the final slab's thickness is not reported (``""`` when it is): its own measurement does not hold
    (:meth:`.SlabMeasurement.why_thickness_unreported`), or it is not the slab the series was aligned on."""
    reason = final.why_thickness_unreported()
    if reason or aligned_on is None:
        return reason
    change = final.thickness / aligned_on.layer_thickness - 1
    if abs(change) > THICKNESS_CONSISTENCY:
        return f"{100 * change:+.0f} % from the slab the series was aligned on"
    return ""
