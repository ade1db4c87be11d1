"""The tilt-axis angle from common lines: every tilt's projection along the direction across the axis is the same.

Summing an aligned image across the tilt axis, over a band of the specimen ``|x| ≤ h`` (``|u| ≤ h cos t`` in the
image), integrates the specimen over ``x`` and ``z``: the profile along the axis is the same at every tilt, but
only when the axis is where it is assumed to be. The agreement of the tilts' profiles, as a function of the
assumed axis angle, peaks at the true angle; it cannot tell ``a`` from ``a + 180°`` (the profiles reverse).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tomoprep.algorithms.backprojection import EDGE_TAPER_FRACTION, align_images

#: Half-width of the band summed across the axis, as a fraction of the image's smaller side.
BAND_FRACTION = 0.35
#: Profiles are high-passed along the axis at this many cycles per pixel (Gaussian sigma).
PROFILE_HIGHPASS = 0.01
#: Common lines are believed only where the tilts reach this far on both sides of 0° (degrees): within ±30-45°
#: every tilt sees nearly the same projection whatever the axis, and on 128-px blob stacks with noise as strong
#: as the signal the best angle lay 6-36° from the truth (±30°), 1-37° (±40-45°), 0.3-7° (±60°).
COMMON_LINE_MIN_TILT_DEG = 45.0
#: ... and only where the best angle scores above the imported one by this fraction of the scores' range: with
#: the imported axis true, the best lay 0-7 % of the range above it (±60°); 30° off, 20-58 % below.
COMMON_LINE_MIN_GAIN = 0.15


@dataclass(frozen=True)
class AxisSearch:
    """Scores of candidate axis angles and the best one (degrees)."""

    angles_deg: np.ndarray
    scores: np.ndarray
    best_deg: float


def _round_field(shape_yx: tuple[int, int], shifts_px: torch.Tensor) -> torch.Tensor:
    """A disc ``(ny, nx)`` on the aligned frame inside every image's untapered part (soft edge), whatever the axis.

    The images' own edges, turned by the axis tried, would otherwise move through the band summed, so that the
    score changes with the angle for reasons that have nothing to do with the specimen: it rose towards the axes
    along the image's sides (on a 128-px blob stack it climbed steadily from the true -95° to -89°).
    """
    ny, nx = shape_yx
    largest = float(shifts_px.abs().max()) if shifts_px.numel() else 0.0
    taper = max(2, round(EDGE_TAPER_FRACTION * min(ny, nx)))
    radius = max(min(ny, nx) / 2 - taper - largest - 1.0, 8.0)
    y = (torch.arange(ny, dtype=torch.float32) - ny // 2)[:, None]
    x = (torch.arange(nx, dtype=torch.float32) - nx // 2)[None, :]
    edge = torch.clamp((radius - torch.sqrt(x * x + y * y)) / taper, 0, 1)
    return 0.5 - 0.5 * torch.cos(math.pi * edge)


def axis_profiles(
    images: torch.Tensor, tilts_deg: Sequence[float], *, axis_deg: float, shifts_px: torch.Tensor
) -> torch.Tensor:
    """Profiles along the tilt axis, ``(n, ny)``: each aligned image summed over ``|u| ≤ h cos t``, high-passed."""
    aligned = align_images(images, axis_deg=axis_deg, shifts_px=shifts_px) * _round_field(
        (images.shape[-2], images.shape[-1]), shifts_px
    )
    _n, ny, nx = aligned.shape
    half = BAND_FRACTION * min(ny, nx)
    u = torch.arange(nx, dtype=torch.float32) - nx // 2
    rows = []
    for image, tilt in zip(aligned, tilts_deg, strict=True):
        limit = half * math.cos(math.radians(float(tilt)))
        weight = torch.clamp((limit - u.abs()) / 3.0 + 0.5, 0.0, 1.0)
        rows.append((image * weight).sum(dim=-1) / weight.sum())
    profiles = torch.stack(rows)
    keep = slice(round(ny * (0.5 - BAND_FRACTION)), round(ny * (0.5 + BAND_FRACTION)))
    profiles = profiles[:, keep]
    k = torch.fft.rfftfreq(profiles.shape[1])
    high = 1 - torch.exp(-(k**2) / (2 * PROFILE_HIGHPASS**2))
    profiles = torch.fft.irfft(torch.fft.rfft(profiles, dim=-1) * high, n=profiles.shape[1], dim=-1)
    profiles = profiles - profiles.mean(dim=-1, keepdim=True)
    return profiles / profiles.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def common_line_score(
    images: torch.Tensor, tilts_deg: Sequence[float], *, axis_deg: float, shifts_px: torch.Tensor
) -> float:
    """Mean correlation of each tilt's axis profile with the mean of the others' (1 = all identical)."""
    profiles = axis_profiles(images, tilts_deg, axis_deg=axis_deg, shifts_px=shifts_px)
    n = profiles.shape[0]
    total = profiles.sum(dim=0, keepdim=True)
    others = (total - profiles) / max(n - 1, 1)
    others = others / others.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return float((profiles * others).sum(dim=-1).mean())


def why_common_lines_fail(search: AxisSearch, tilts_deg: Sequence[float], imported_deg: float) -> str | None:
    """Why the common lines' best angle should not replace the imported one, or None when it may.

    ``search`` must hold ``imported_deg`` within its angles (a search centred there).
    """
    low, high = -min(min(tilts_deg), 0.0), max(max(tilts_deg), 0.0)
    if min(low, high) < COMMON_LINE_MIN_TILT_DEG:
        return (f"the tilts reach {-low:.0f}° and {high:+.0f}°, and common lines need ±{COMMON_LINE_MIN_TILT_DEG:g}° "
                "to tell axes apart")  # fmt: skip
    order = np.argsort(search.angles_deg)
    angles, scores = search.angles_deg[order], search.scores[order]
    spread = float(scores.max() - scores.min())
    gain = float(np.interp(search.best_deg, angles, scores) - np.interp(imported_deg, angles, scores))
    if spread <= 0 or gain < COMMON_LINE_MIN_GAIN * spread:
        return (f"the imported angle scores within {COMMON_LINE_MIN_GAIN:.0%} of their range of the best "
                f"({gain / spread if spread > 0 else 0:.0%})")  # fmt: skip
    return None


def search_axis(
    images: torch.Tensor,
    tilts_deg: Sequence[float],
    *,
    shifts_px: torch.Tensor,
    centre_deg: float,
    half_range_deg: float,
    step_deg: float,
) -> AxisSearch:
    """Score axis angles ``centre ± half_range`` in ``step`` increments; the best refined by a parabola."""
    count = max(1, round(half_range_deg / step_deg))
    angles = centre_deg + step_deg * np.arange(-count, count + 1)
    scores = np.array([common_line_score(images, tilts_deg, axis_deg=float(a), shifts_px=shifts_px) for a in angles])
    k = int(np.argmax(scores))
    best = float(angles[k])
    if 0 < k < len(angles) - 1:
        left, centre, right = scores[k - 1 : k + 2]
        curvature = left - 2 * centre + right
        if curvature < 0:
            best += float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5)) * step_deg
    return AxisSearch(angles, scores, best)
