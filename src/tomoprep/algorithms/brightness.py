"""How bright the tilts of a series are: the series' Beer–Lambert trend and the dark part of each image.

Mean. Electrons crossing a slab of ice of thickness ``T`` at tilt ``θ`` are scattered out of the image with
probability ``1 - exp(-T / (cos(θ - θ0) λ))`` (``θ0`` the slab's pretilt, ``λ`` a mean free path), so
``log(mean / dose) = a - b / cos(θ - θ0)`` over a series. The fit is robust (a Tukey biweight, the offset
chosen by the least median of absolute residuals), so a few dark or bright tilts do not pull it; a tilt's
*mean ratio* is its mean divided by what the fit predicts for it.

Dark area. A low-passed *exposure map* shows where electrons arrived: the image itself when it is in counts,
or, for images normalised to mean 0 elsewhere (where levels mean nothing), the local power of its finest
detail, which for counted electrons is mostly shot noise and so proportional to the electrons. A pixel is dark
when its exposure is below a fraction of the image's bright level (its 90th percentile); the bright level is
the image's own, so a region behind a grid bar counts and a uniformly thick tilt does not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional

#: Gaussian low-pass of the exposure map: sigma as a fraction of the image's shorter side.
EXPOSURE_SIGMA_FRACTION = 1.0 / 64.0
#: Sigma (pixels) of the low-pass whose residual is the fine detail of normalised images.
DETAIL_SIGMA_PX = 1.5
#: Percentile of the exposure map taken as the image's bright level.
BRIGHT_PERCENTILE = 0.9
#: Images count as absolute (counts, not normalised) when fewer of their pixels than this are below 0.
NEGATIVE_FRACTION_OF_COUNTS = 0.01
#: Offsets of the slab tried by the Beer–Lambert fit (degrees).
OFFSETS_DEG = np.arange(-30.0, 30.5, 1.0)
#: Fewer measured tilts than this: no trend in the fit, the series' median is the expectation.
MIN_TILTS_FOR_TREND = 6


def gaussian_lowpass(images: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Images ``(n, ny, nx)`` convolved with a Gaussian of ``sigma_px`` (separable, mirrored at the edges)."""
    radius = max(1, math.ceil(3 * sigma_px))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=images.device)
    kernel = torch.exp(-0.5 * (x / sigma_px) ** 2)
    kernel = kernel / kernel.sum()
    out = images.float()[:, None]
    pad_y, pad_x = min(radius, images.shape[-2] - 1), min(radius, images.shape[-1] - 1)
    out = functional.pad(out, (pad_x, pad_x, pad_y, pad_y), mode="reflect")
    out = functional.conv2d(out, kernel[radius - pad_x : radius + pad_x + 1].reshape(1, 1, 1, -1))
    out = functional.conv2d(out, kernel[radius - pad_y : radius + pad_y + 1].reshape(1, 1, -1, 1))
    return out[:, 0]


def is_absolute(images: torch.Tensor) -> bool:
    """Whether images are in counts (hardly a pixel below 0), not normalised to mean 0 (about half below)."""
    return bool((images[..., ::2, ::2] < 0).float().mean() < NEGATIVE_FRACTION_OF_COUNTS)


def exposure_maps(images: torch.Tensor, *, absolute: bool) -> torch.Tensor:
    """Low-passed maps ``(n, ny, nx)`` proportional to the electrons each pixel received (module notes)."""
    sigma = max(2.0, EXPOSURE_SIGMA_FRACTION * min(images.shape[-2:]))
    if absolute:
        return gaussian_lowpass(images, sigma)
    detail = images.float() - gaussian_lowpass(images, DETAIL_SIGMA_PX)
    return gaussian_lowpass(detail * detail, sigma)


def dark_fractions(images: torch.Tensor, *, absolute: bool, dark_level: float) -> np.ndarray:
    """Fraction of each image whose exposure is below ``dark_level`` times the image's bright level.

    Parameters
    ----------
    images
        ``(n, ny, nx)`` tilt images.
    absolute
        Whether they are in counts (:func:`is_absolute`); else normalised, and the map is the fine detail's power.
    dark_level
        Fraction of the bright level (90th percentile of the exposure map) below which a pixel is dark.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` float64 fractions in [0, 1].
    """
    maps = exposure_maps(images, absolute=absolute)[:, ::2, ::2].reshape(images.shape[0], -1)
    bright = torch.quantile(maps, BRIGHT_PERCENTILE, dim=1, keepdim=True)
    return (maps < dark_level * bright).double().mean(dim=1).cpu().numpy()


def _tukey_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Robust ``y ≈ a - b x`` (``b ≥ 0``) by iteratively re-weighted least squares with Tukey's biweight."""
    weights = np.ones_like(y)
    a, b = float(np.median(y)), 0.0
    for _ in range(20):
        design = np.stack([np.ones_like(x), -x], axis=1) * np.sqrt(weights)[:, None]
        (a, b), *_ = np.linalg.lstsq(design, y * np.sqrt(weights), rcond=None)
        if b < 0:
            a, b = float(np.average(y, weights=weights)), 0.0
        residual = y - (a - b * x)
        scale = max(1.4826 * float(np.median(np.abs(residual))), 0.01)
        u = residual / (4.685 * scale)
        weights = np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0.0)
        if weights.sum() < 2:
            break
    return float(a), float(b)


def beer_lambert_fit(tilts_deg: np.ndarray, log_means: np.ndarray) -> tuple[float, float, float]:
    """Robust fit of ``log_means ≈ a - b / cos(tilt - offset)`` (module notes).

    Returns
    -------
    a, b, offset_deg
        Intercept, slope (≥ 0) and the slab's tilt offset in degrees. With fewer than
        :data:`MIN_TILTS_FOR_TREND` tilts: the median, 0 and 0.
    """
    if len(tilts_deg) < MIN_TILTS_FOR_TREND:
        return float(np.median(log_means)), 0.0, 0.0
    fits = []
    for offset in OFFSETS_DEG:
        x = 1.0 / np.cos(np.radians(np.clip(tilts_deg - offset, -85.0, 85.0)))
        a, b = _tukey_line(x, log_means)
        fits.append((float(np.median(np.abs(log_means - (a - b * x)))), a, b, float(offset)))
    _, a, b, offset = min(fits)
    return a, b, offset


def mean_ratios(
    means: np.ndarray, tilts_deg: np.ndarray, doses_e_per_angstrom2: Sequence[float] | None = None
) -> np.ndarray:
    """Each tilt's mean over what the series' Beer–Lambert fit predicts for it (1 = as expected).

    Parameters
    ----------
    means
        ``(n,)`` image means (counts; must be positive).
    tilts_deg
        ``(n,)`` tilt angles (degrees).
    doses_e_per_angstrom2
        ``(n,)`` dose of each tilt, so that tilts given more electrons are not taken for brighter; ``None``: equal.
    """
    doses = np.ones_like(means) if doses_e_per_angstrom2 is None else np.asarray(doses_e_per_angstrom2, float)
    doses = np.where(doses > 0, doses, 1.0)
    log_means = np.log(np.clip(means, 1e-12, None) / doses)
    a, b, offset = beer_lambert_fit(np.asarray(tilts_deg, float), log_means)
    x = 1.0 / np.cos(np.radians(np.clip(np.asarray(tilts_deg, float) - offset, -85.0, 85.0)))
    return np.asarray(np.exp(log_means - (a - b * x)))
