"""Coarse tilt-series alignment: cross-correlation of neighbouring tilts with cosine stretching.

A flat specimen seen at tilt ``t`` is foreshortened across the tilt axis by ``cos t``; stretching the image of
the higher tilt by ``cos t_low / cos t_high`` across the axis makes it look like its neighbour, so their
cross-correlation peaks sharply at their relative shift (IMOD ``tiltxcorr``). Shifts are chained outward from
the tilt nearest 0°, whose shift is 0. Positions and shifts follow :mod:`tomoprep.algorithms.tilt_geometry`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tomoprep.algorithms.correlation import cross_correlation, find_peak_subpixel
from tomoprep.algorithms.fourier import (
    rfft_squared_frequencies,
    taper_edges,
)
from tomoprep.algorithms.tilt_geometry import resample, stretch_matrix

#: Band of the correlation, in cycles per pixel of the working images: high-pass sigma, low-pass radius, fall-off.
HIGHPASS_SIGMA = 0.02
LOWPASS_RADIUS = 0.25
LOWPASS_FALLOFF = 0.05
#: Width of the edge taper as a fraction of the image size.
TAPER_FRACTION = 0.1
#: Finest detail neighbouring tilts are correlated on, Å. A thick specimen's layers move against each other
#: between neighbouring tilts (parallax: thickness × Δsin t, ±40-80 Å for 1200-3000 Å at 3-4° steps), which
#: decorrelates finer detail: at 12 Å pixels a band reaching 0.25 cycles/pixel left shifts 5 pixels off.
COARSE_RESOLUTION_ANGSTROM = 120.0


def coarse_lowpass(pixel_spacing_angstrom: float | None) -> float:
    """Low-pass radius (cycles/pixel) of the coarse correlation at this working pixel spacing (None: unknown)."""
    if pixel_spacing_angstrom is None:
        return LOWPASS_RADIUS
    return min(LOWPASS_RADIUS, pixel_spacing_angstrom / COARSE_RESOLUTION_ANGSTROM)


@dataclass(frozen=True)
class CoarseAlignment:
    """Result of :func:`coarse_align`, one entry per input image.

    Attributes
    ----------
    shifts_px
        ``(n, 2)`` float64 content displacement ``(x, y)`` of each image relative to the reference tilt's image,
        in pixels (the reference's is 0).
    pair_shifts_px
        ``(n, 2)`` displacement of each image relative to its neighbour nearer 0°, in its own unstretched frame
        (0 for the reference).
    pair_scores
        ``(n,)`` normalised correlation peak with that neighbour (1 = identical); ``nan`` for the reference.
    neighbours
        ``(n,)`` index of the neighbour each image was correlated with (-1 for the reference).
    reference_index
        Index of the tilt nearest 0°.
    """

    shifts_px: torch.Tensor
    pair_shifts_px: torch.Tensor
    pair_scores: torch.Tensor
    neighbours: tuple[int, ...]
    reference_index: int


def bandpass(
    shape_yx: tuple[int, int], *, lowpass: float = LOWPASS_RADIUS, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The correlation band as a weight on an rfft2 half spectrum, ``(ny, nx // 2 + 1)`` (computed once per shape
    and low-pass radius; the fall-off is a fifth of the radius)."""
    return _bandpass(tuple(shape_yx), float(lowpass), str(device))


@functools.lru_cache(maxsize=16)
def _bandpass(shape_yx: tuple[int, int], lowpass: float, device: str) -> torch.Tensor:
    k2 = rfft_squared_frequencies(shape_yx, device=device)
    k = k2.sqrt()
    high = 1.0 - torch.exp(-k2 / (2 * HIGHPASS_SIGMA**2))
    falloff = LOWPASS_FALLOFF * lowpass / LOWPASS_RADIUS
    fall = torch.exp(-((k - lowpass).clamp_min(0) ** 2) / (2 * falloff**2))
    return high * fall


def _unstretch(axis_deg: float, reference_tilt_deg: float, moving_tilt_deg: float) -> torch.Tensor:
    """Inverse of the stretch ``cos t_ref / cos t_moving`` across the axis that makes the moving tilt look like
    the reference, ``(2, 2)`` float64."""
    factor = math.cos(math.radians(reference_tilt_deg)) / max(math.cos(math.radians(moving_tilt_deg)), 1e-3)
    return torch.linalg.inv(stretch_matrix(axis_deg, factor))


def frame_change(axis_deg: float, from_tilt_deg: float, to_tilt_deg: float) -> torch.Tensor:
    """``(2, 2)`` float64 matrix taking a displacement in the frame of the image at ``from_tilt_deg`` to the frame
    of the image at ``to_tilt_deg`` (foreshortening across the axis, ``cos`` of the tilts)."""
    return _unstretch(axis_deg, from_tilt_deg, to_tilt_deg)


def _tapered(images: torch.Tensor) -> torch.Tensor:
    """Mean-subtracted images multiplied by a raised-cosine window over their outer :data:`TAPER_FRACTION`."""
    width = max(2, round(TAPER_FRACTION * min(images.shape[-2:])))
    return taper_edges(images, width)


def _normalised_peak(cc: torch.Tensor, a: torch.Tensor, b: torch.Tensor, shift_yx: torch.Tensor) -> float:
    """Correlation coefficient at the integer peak nearest ``shift_yx``."""
    ny, nx = cc.shape[-2:]
    iy, ix = round(float(shift_yx[0])) % ny, round(float(shift_yx[1])) % nx
    norm = math.sqrt(float((a * a).sum()) * float((b * b).sum())) + 1e-30
    return float(cc[iy, ix]) / norm


def pair_shift(
    reference: torch.Tensor,
    moving: torch.Tensor,
    *,
    axis_deg: float,
    reference_tilt_deg: float,
    moving_tilt_deg: float,
    max_shift_px: float | None = None,
    lowpass: float = LOWPASS_RADIUS,
) -> tuple[torch.Tensor, float]:
    """Displacement of ``moving`` relative to ``reference``, measured after cosine stretching.

    Parameters
    ----------
    reference, moving
        ``(ny, nx)`` images of two tilts (the same size).
    axis_deg
        Tilt-axis angle, degrees counter-clockwise from image Y.
    reference_tilt_deg, moving_tilt_deg
        Their tilt angles (degrees).
    max_shift_px
        Largest displacement searched along each axis (pixels of the stretched frame); ``None``: half the image.
    lowpass
        Low-pass radius of the correlation band, cycles/pixel (:func:`coarse_lowpass`).

    Returns
    -------
    shift, score
        ``(2,)`` float64 displacement ``(x, y)`` in pixels in ``moving``'s own frame (``moving(r) ≈
        reference'(r - shift)`` with ``reference'`` the reference seen at the moving tilt), and the normalised
        correlation peak.
    """
    unstretch = _unstretch(axis_deg, reference_tilt_deg, moving_tilt_deg)
    stretched = resample(moving[None], unstretch, torch.zeros(2))[0]
    a, b = _tapered(stretched), _tapered(reference[None].float())[0]
    shape = (a.shape[-2], a.shape[-1])
    weight = bandpass(shape, lowpass=lowpass, device=a.device)
    fa, fb = torch.fft.rfft2(a) * weight, torch.fft.rfft2(b) * weight
    cc = cross_correlation(fa, fb, shape_yx=shape)
    peak_yx = find_peak_subpixel(cc, max_shift_px=max_shift_px).double()
    filtered_a, filtered_b = torch.fft.irfft2(fa, s=shape), torch.fft.irfft2(fb, s=shape)
    score = _normalised_peak(cc, filtered_a, filtered_b, peak_yx)
    stretched_shift = torch.stack([peak_yx[1], peak_yx[0]])
    return unstretch @ stretched_shift, score


def neighbour_order(tilts_deg: Sequence[float]) -> tuple[int, list[tuple[int, int]]]:
    """The tilt nearest 0° and ``(image, neighbour)`` pairs walking outward from it on both sides.

    Returns
    -------
    reference, pairs
        Index of the reference tilt, and pairs ``(j, i)`` in an order where ``i`` is always done before ``j``.
    """
    order = sorted(range(len(tilts_deg)), key=lambda k: tilts_deg[k])
    start = min(range(len(order)), key=lambda r: abs(tilts_deg[order[r]]))
    pairs = [(order[r], order[r - 1]) for r in range(start + 1, len(order))]
    pairs += [(order[r], order[r + 1]) for r in range(start - 1, -1, -1)]
    return order[start], pairs


def coarse_align(
    images: torch.Tensor,
    tilts_deg: Sequence[float],
    *,
    axis_deg: float,
    max_shift_fraction: float = 0.45,
    pixel_spacing_angstrom: float | None = None,
) -> CoarseAlignment:
    """Align a tilt series coarsely: stretched cross-correlation of each tilt with its neighbour nearer 0°.

    Parameters
    ----------
    images
        ``(n, ny, nx)`` tilt images at the working binning.
    tilts_deg
        ``(n,)`` tilt angles (degrees), in the order of ``images``.
    axis_deg
        Tilt-axis angle, degrees counter-clockwise from image Y.
    max_shift_fraction
        Largest relative shift searched between neighbours, as a fraction of the image size.
    pixel_spacing_angstrom
        Of the working images: the correlation then stops at :data:`COARSE_RESOLUTION_ANGSTROM`.
    """
    n = images.shape[0]
    reference, pairs = neighbour_order(list(tilts_deg))
    shifts = torch.zeros((n, 2), dtype=torch.float64)
    relative = torch.zeros((n, 2), dtype=torch.float64)
    scores = torch.full((n,), math.nan, dtype=torch.float64)
    neighbours = [-1] * n
    limit = max_shift_fraction * min(images.shape[-2:])
    for j, i in pairs:
        shift, score = pair_shift(images[i], images[j], axis_deg=axis_deg, reference_tilt_deg=tilts_deg[i],
                                  moving_tilt_deg=tilts_deg[j], max_shift_px=limit,
                                  lowpass=coarse_lowpass(pixel_spacing_angstrom))  # fmt: skip
        # The neighbour's own displacement, stretched into this tilt's frame, adds to the measured one.
        shifts[j] = shift + _unstretch(axis_deg, tilts_deg[i], tilts_deg[j]) @ shifts[i]
        relative[j], scores[j], neighbours[j] = shift, score, i
    return CoarseAlignment(shifts, relative, scores, tuple(neighbours), reference)
