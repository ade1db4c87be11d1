"""Patch tracking: local alignment of an aligned tilt series, patch by patch.

After global alignment (one shift per tilt), parts of the field can still move on their own: the specimen
bends or drifts locally under the beam. Patches on a grid over the specimen are followed through the series, as
IMOD's patch tracking does, but each patch is matched against the same region of its tilt's leave-one-out
reprojection (:func:`.projection_matching.leave_one_out`, as AreTomo's local alignment does) rather than against
the neighbouring tilt: the reference holds every other tilt, so errors do not accumulate along the series, and
a patch whose content lies above or below the slab's centre is reprojected where it is, so the specimen's 3-D
structure is not mistaken for motion. What is left is each patch's local shift in each tilt: the deformation
a local reconstruction corrects.

Coordinates: specimen ``(x, y, z)`` in working pixels from the specimen centre (``x`` across the tilt axis,
``y`` along it); image shifts ``(x, y)`` in pixels of the working images, in RELION's sense (where the patch
lands relative to where the global alignment puts it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tomoprep.algorithms.projection_matching import leave_one_out, match_region
from tomoprep.algorithms.tilt_geometry import rotation_2d

#: Default patch side as a fraction of the image: patches overlap on a 4 x 4 grid; smaller ones see too few
#: particles at a working binning of 128-256 pixels (a third of the side left local shifts twice as noisy).
PATCH_FRACTION = 0.4


@dataclass(frozen=True)
class PatchTracks:
    """Patches followed through a series (working pixels).

    Attributes
    ----------
    grid_xyz_px
        ``(p, 3)`` where each patch was placed in the specimen (z = 0: the slab's centre).
    centres_px
        ``(n, p, 2)`` where each patch's grid point projects in each aligned image, ``(u, v)`` pixels from its
        centre (tilt axis along v).
    local_shifts_px
        ``(n, p, 2)`` local shift ``(x, y)`` of each patch in each tilt image, relative to the global alignment
        (0 where the patch is not inside the image).
    scores
        ``(n, p)`` normalised correlation of the patch with the reprojection.
    good
        ``(n, p)`` whether the patch was inside the image (and so measured).
    patch_size_px
        Side of the square patches.
    """

    grid_xyz_px: np.ndarray
    centres_px: np.ndarray
    local_shifts_px: np.ndarray
    scores: np.ndarray
    good: np.ndarray
    patch_size_px: int

    def residual_rms_px(self) -> np.ndarray:
        """``(n,)`` RMS over each tilt's good patches of the local shift (NaN where none is good)."""
        squared = (self.local_shifts_px**2).sum(axis=2)
        counts = self.good.sum(axis=1)
        total = np.where(self.good, squared, 0.0).sum(axis=1)
        return np.where(counts > 0, np.sqrt(total / np.maximum(counts, 1)), np.nan)


def patch_grid(shape_yx: tuple[int, int], *, n_patches: tuple[int, int], margin_px: float) -> np.ndarray:
    """``(p, 3)`` specimen points on a ``(nx, ny)`` grid whose outer points lie ``margin_px`` inside the field's
    edges, at z = 0 (rows along y, x fastest)."""
    ny, nx = shape_yx
    half_x, half_y = max(nx / 2 - margin_px, 0.0), max(ny / 2 - margin_px, 0.0)
    xs = np.linspace(-half_x, half_x, n_patches[0]) if n_patches[0] > 1 else np.zeros(1)
    ys = np.linspace(-half_y, half_y, n_patches[1]) if n_patches[1] > 1 else np.zeros(1)
    return np.array([(x, y, 0.0) for y in ys for x in xs], dtype=np.float64)


def _taper(size: int) -> torch.Tensor:
    """A square window falling to 0 at the edges with cosine flanks a quarter of the side wide."""
    r = (torch.arange(size, dtype=torch.float32) - (size - 1) / 2).abs()
    flank = max(2.0, size / 4)
    w = torch.clamp((size / 2 - r) / flank, 0, 1)
    w = 0.5 - 0.5 * torch.cos(math.pi * w)
    return w[:, None] * w[None, :]


def _cut(image: torch.Tensor, centre_uv: tuple[float, float], size: int) -> torch.Tensor | None:
    """The ``size``² region of ``image`` around ``centre_uv`` (pixels from the image centre), or None if it leaves."""
    ny, nx = image.shape
    u0 = round(centre_uv[0] + nx // 2) - size // 2
    v0 = round(centre_uv[1] + ny // 2) - size // 2
    if u0 < 0 or v0 < 0 or u0 + size > nx or v0 + size > ny:
        return None
    return image[v0 : v0 + size, u0 : u0 + size]


def _measure(images: torch.Tensor, tilts_deg: Sequence[float], *, axis_deg: float, shifts_px: torch.Tensor, nz: int,
             centres: np.ndarray, size: int, limit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Displacements ``(n, p, 2)`` ``(u, v)`` of every patch against its reprojection, scores, and which were inside."""
    n, p = centres.shape[:2]
    measured = np.zeros((n, p, 2))
    scores = np.zeros((n, p))
    inside = np.zeros((n, p), dtype=bool)
    window = _taper(size)
    references = leave_one_out(images, tilts_deg, axis_deg=axis_deg, shifts_px=shifts_px, nz=nz, shared_field=False)
    for i, aligned, reference in references:
        for k in range(p):
            centre = (float(centres[i, k, 0]), float(centres[i, k, 1]))
            a, b = _cut(aligned, centre, size), _cut(reference, centre, size)
            if a is None or b is None:
                continue
            displacement, score = match_region(b, a, window, limit)
            measured[i, k], scores[i, k], inside[i, k] = displacement.numpy(), score, True
    return measured, scores, inside


def track_patches(
    images: torch.Tensor,
    tilts_deg: Sequence[float],
    *,
    axis_deg: float,
    shifts_px: torch.Tensor,
    nz: int,
    n_patches: tuple[int, int] = (4, 4),
    patch_size_px: int | None = None,
    max_shift_px: float | None = None,
) -> PatchTracks:
    """Follow a grid of patches through an aligned series.

    Parameters
    ----------
    images
        ``(n, ny, nx)`` tilt images at the working binning.
    tilts_deg, axis_deg, shifts_px
        The global alignment (tilt angles with their offset, axis angle, ``(n, 2)`` shifts in pixels).
    nz
        Depth of the reconstruction the patches are matched against (the slab's).
    n_patches
        Patches across and along the tilt axis.
    patch_size_px
        Side of the patches; default :data:`PATCH_FRACTION` of the smaller image side.
    max_shift_px
        Largest local displacement searched; default a quarter of the patch.
    """
    ny, nx = images.shape[-2:]
    size = patch_size_px or max(16, round(PATCH_FRACTION * min(ny, nx))) // 2 * 2
    limit = max_shift_px if max_shift_px is not None else size / 4
    grid = patch_grid((ny, nx), n_patches=n_patches, margin_px=size / 2 + 4)
    tilts_rad = np.radians(np.asarray(tilts_deg, dtype=np.float64))
    centres = np.stack([np.stack([grid[:, 0] * math.cos(t) + grid[:, 2] * math.sin(t), grid[:, 1]], axis=1)
                        for t in tilts_rad])  # fmt: skip
    measured_uv, scores, inside = _measure(images, tilts_deg, axis_deg=axis_deg, shifts_px=shifts_px, nz=nz,
                                           centres=centres, size=size, limit=limit)  # fmt: skip
    rotation = rotation_2d(axis_deg).numpy()
    return PatchTracks(
        grid_xyz_px=grid,
        centres_px=centres,
        local_shifts_px=measured_uv @ rotation.T,
        scores=scores,
        good=inside,
        patch_size_px=size,
    )
