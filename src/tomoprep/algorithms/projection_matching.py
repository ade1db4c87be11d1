"""Projection matching (AreTomo-style): each tilt against the reprojection of a reconstruction made without it.

One iteration reconstructs the aligned series by weighted back projection, and for every tilt ``i`` reprojects
the reconstruction less tilt ``i``'s own contribution at tilt ``i``; the shift between that reprojection and the
aligned image corrects tilt ``i``'s shift. The leave-one-out reprojection uses that back-projecting an image and
projecting it along the same direction gives the image times the ray's length through the slices, so it costs
one projection per tilt. Shift corrections that only move the specimen's centre in 3-D are removed (they are
not alignment, and would let the series drift). Conventions as in :mod:`tomoprep.algorithms.backprojection`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tomoprep.algorithms.backprojection import (
    align_images,
    align_to_shared_field,
    backproject_columns,
    filter_rows,
    project_columns,
    weighting_filter,
)
from tomoprep.algorithms.correlation import cross_correlation, find_peak_subpixel
from tomoprep.algorithms.tilt_geometry import rotation_2d
from tomoprep.algorithms.tilt_xcorr import bandpass

#: Low-pass of the reconstruction used for matching, cycles per pixel of the working images.
MATCHING_LOWPASS = 0.3


@dataclass(frozen=True)
class MatchingResult:
    """Refined shifts and how well each tilt matched.

    Attributes
    ----------
    shifts_px
        ``(n, 2)`` refined shifts ``(x, y)`` (pixels; RELION's sense).
    corrections_px
        ``(n, 2)`` the last iteration's correction in the aligned frame ``(u, y)``.
    residuals_px
        ``(n,)`` length of the total correction made by matching, per tilt.
    scores
        ``(n,)`` normalised correlation of each tilt with its leave-one-out reprojection (last iteration).
    """

    shifts_px: torch.Tensor
    corrections_px: torch.Tensor
    residuals_px: torch.Tensor
    scores: torch.Tensor


def matching_window(shape_yx: tuple[int, int], tilt_deg: float) -> torch.Tensor:
    """Where the reconstruction explains the aligned image: ``|u| < 0.45 nx cos t``, ``|y| < 0.45 ny``, soft edges."""
    ny, nx = shape_yx
    u = (torch.arange(nx, dtype=torch.float32) - nx // 2).abs()
    y = (torch.arange(ny, dtype=torch.float32) - ny // 2).abs()
    limit_u = 0.45 * nx * math.cos(math.radians(tilt_deg))
    edge = max(4.0, 0.05 * nx)
    wu = torch.clamp((limit_u - u) / edge, 0, 1)
    wy = torch.clamp((0.45 * ny - y) / edge, 0, 1)
    return (0.5 - 0.5 * torch.cos(math.pi * wy))[:, None] * (0.5 - 0.5 * torch.cos(math.pi * wu))[None, :]


def _band_spectra(reference: torch.Tensor, image: torch.Tensor, window: torch.Tensor) -> tuple:
    """Half spectra of ``image`` and ``reference`` inside ``window`` (each less its mean there), band-passed."""
    a = (image - (image * window).sum() / window.sum()) * window
    b = (reference - (reference * window).sum() / window.sum()) * window
    weight = bandpass((a.shape[-2], a.shape[-1]))
    return torch.fft.rfft2(a) * weight, torch.fft.rfft2(b) * weight


def _normalised(fa: torch.Tensor, fb: torch.Tensor) -> float:
    norm = math.sqrt(float((fa.abs() ** 2).sum()) * float((fb.abs() ** 2).sum())) + 1e-30
    return float((fa * fb.conj()).real.sum()) / norm


def band_correlation(reference: torch.Tensor, image: torch.Tensor, window: torch.Tensor) -> float:
    """Normalised correlation of ``image`` with ``reference`` inside ``window``, in the matching band, unshifted."""
    return _normalised(*_band_spectra(reference, image, window))


def match_region(reference: torch.Tensor, image: torch.Tensor, window: torch.Tensor, max_shift_px: float) -> tuple:
    """Displacement ``(u, y)`` of ``image`` relative to ``reference`` inside ``window``, and the correlation."""
    fa, fb = _band_spectra(reference, image, window)
    cc = cross_correlation(fa, fb, shape_yx=(image.shape[-2], image.shape[-1]))
    peak = find_peak_subpixel(cc, max_shift_px=max_shift_px).double()
    return torch.stack([peak[1], peak[0]]), _normalised(fa, fb)


def _remove_translation(corrections: torch.Tensor, tilts_deg: Sequence[float]) -> torch.Tensor:
    """Remove from ``(u, y)`` corrections what moving the specimen centre in 3-D makes: ``a cos t + b sin t``, ``c``."""
    t = np.radians(np.asarray(tilts_deg, dtype=np.float64))
    design = np.stack([np.cos(t), np.sin(t)], axis=1)
    u = corrections[:, 0].numpy()
    coefficients, *_ = np.linalg.lstsq(design, u, rcond=None)
    out = corrections.clone()
    out[:, 0] = torch.from_numpy(u - design @ coefficients)
    out[:, 1] = corrections[:, 1] - corrections[:, 1].mean()
    return out


def reconstruction_width(nx: int, nz: int, tilts_deg: Sequence[float]) -> int:
    """Width of slices ``nz`` deep for images ``nx`` wide: wider than the images, so that rays through the slab
    at the steepest tilt (at most 75°) stay inside them."""
    widest = max(abs(float(t)) for t in tilts_deg)
    return nx + 2 * math.ceil(0.5 * nz * math.tan(math.radians(min(widest, 75.0))))


def leave_one_out(
    images: torch.Tensor,
    tilts_deg: Sequence[float],
    *,
    axis_deg: float,
    shifts_px: torch.Tensor,
    nz: int,
    field: torch.Tensor | None = None,
    shared_field: bool = True,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """For every tilt ``i``: ``i``, its aligned image and the reprojection at tilt ``i`` of the others.

    Both ``(ny, nx)`` in the aligned frame (tilt axis along y, specimen centre at the image centre), the images
    weighted by ``field`` (:func:`.backprojection.align_to_shared_field`), the reconstruction low-passed at
    :data:`MATCHING_LOWPASS` with SIRT-like weighting, ``nz`` deep. Without ``shared_field`` each image is
    tapered at its own edges instead and keeps the whole field (patch tracking measures near the edges too).
    """
    if shared_field:
        aligned = align_to_shared_field(images, axis_deg=axis_deg, shifts_px=shifts_px, field=field)
    else:
        aligned = align_images(images, axis_deg=axis_deg, shifts_px=shifts_px)
        aligned = aligned - aligned.mean(dim=(-2, -1), keepdim=True)
    n, ny, nx = aligned.shape
    filtered = filter_rows(aligned, weighting_filter((ny, nx), kind="sirt", lowpass=MATCHING_LOWPASS, n_tilts=n))
    width = reconstruction_width(nx, nz, tilts_deg)
    columns = backproject_columns(filtered, tilts_deg, nz=nz, nx=width) * n
    for i, tilt in enumerate(tilts_deg):
        own = backproject_columns(filtered[i : i + 1], [float(tilt)], nz=nz, nx=width)
        # Projection is linear: the others' reprojection is the whole one less this tilt's own.
        yield i, aligned[i], project_columns(columns, float(tilt), nu=nx) - project_columns(own, float(tilt), nu=nx)


def match_once(
    images: torch.Tensor, tilts_deg: Sequence[float], *, axis_deg: float, shifts_px: torch.Tensor, nz: int,
    max_shift_px: float, field: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """One matching pass: the corrections ``(n, 2)`` in the aligned frame (translation removed) and the scores."""
    n, ny, nx = images.shape
    corrections = torch.zeros((n, 2), dtype=torch.float64)
    scores = torch.zeros(n, dtype=torch.float64)
    references = leave_one_out(images, tilts_deg, axis_deg=axis_deg, shifts_px=shifts_px, nz=nz, field=field)
    for i, aligned, reprojection in references:
        window = matching_window((ny, nx), float(tilts_deg[i]))
        corrections[i], scores[i] = match_region(reprojection, aligned, window, max_shift_px)
    return _remove_translation(corrections, tilts_deg), scores


def refine_shifts(
    images: torch.Tensor,
    tilts_deg: Sequence[float],
    *,
    axis_deg: float,
    shifts_px: torch.Tensor,
    nz: int,
    iterations: int = 3,
    max_shift_px: float = 20.0,
) -> MatchingResult:
    """Refine the shifts of a tilt series by projection matching.

    Parameters
    ----------
    images
        ``(n, ny, nx)`` tilt images at the working binning.
    tilts_deg
        ``(n,)`` tilt angles (degrees).
    axis_deg
        Tilt-axis angle, degrees counter-clockwise from Y.
    shifts_px
        ``(n, 2)`` starting shifts ``(x, y)`` in pixels.
    nz
        Thickness of the reconstruction used, pixels: it must hold the specimen, and should not hold much more
        (rays through empty depth add only noise, and at high tilt leave the slices' sides).
    iterations
        Matching passes; each moves every tilt to its leave-one-out reprojection.
    max_shift_px
        Largest correction searched per pass, pixels.
    """
    shifts = shifts_px.double().clone()
    rotation = rotation_2d(axis_deg)
    total = torch.zeros_like(shifts)
    corrections = torch.zeros_like(shifts)
    scores = torch.zeros(len(tilts_deg), dtype=torch.float64)
    for _ in range(iterations):
        corrections, scores = match_once(images, tilts_deg, axis_deg=axis_deg, shifts_px=shifts, nz=nz,
                                         max_shift_px=max_shift_px)  # fmt: skip
        shifts = shifts + corrections @ rotation.T
        total = total + corrections
    return MatchingResult(shifts, corrections, total.norm(dim=1), scores)
