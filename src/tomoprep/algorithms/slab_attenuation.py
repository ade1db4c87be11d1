"""The tilt offset from how each tilt's mean intensity falls with the beam's path through the slab.

A slab of thickness ``T`` tilted by ``t + θ`` from the beam's normal (``t`` the nominal tilt, ``θ`` the offset that
makes it flat: stage offset and lamella pretilt together) is crossed on a path ``T / cos(t + θ)``. The electrons
scattered out of the objective aperture or inelastically go with the path (Beer–Lambert), so a bright-field
image's mean intensity per unit exposure is ``I0 exp(−T / (λ cos(t + θ)))``: symmetric about ``t = −θ``. The
offset found from it depends on no reconstruction and on none of the specimen's particles, whose placement
limits the slab's tilt measured in a reconstruction to about a degree.

``ln(mean / exposure)`` is fitted by a quadratic in ``u = 1 / cos(t + θ) − 1`` (the quadratic term takes up
what is not exactly exponential: images written as a level less the projected density, a mean free path that
changes with energy loss), ``θ`` by a search over :data:`MAX_OFFSET_DEG`. Images are usable only where they are
intensities: every mean positive, the mean falling with the path over the whole range (a dark-field image
brightens), the fall explaining most of the means' variance, and ``θ``'s standard error small; otherwise the
reason is given and the caller measures the offset otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Largest offset searched, degrees (as for a slab found in a reconstruction).
MAX_OFFSET_DEG = 35.0
#: Fewest tilts the fit is made from.
MIN_TILTS = 7
#: The offset is used only when its standard error is at most this, degrees. Measured errors on simulated
#: series of both generators: at most 0.23° (blob stacks) and 0.03° (the session simulator).
MAX_OFFSET_ERROR_DEG = 0.25
#: The path's fall must explain at least this fraction of the variance of the log-means.
MIN_EXPLAINED = 0.9
#: Steps of the coarse and the fine search, degrees.
COARSE_STEP_DEG, FINE_STEP_DEG = 0.25, 0.005


@dataclass(frozen=True)
class AttenuationOffset:
    """What the means of the tilts say about the tilt offset.

    Attributes
    ----------
    offset_deg
        Offset to add to every nominal tilt to make the slab flat, degrees (``nan`` where not measured).
    offset_error_deg
        Its standard error from the fit's residuals, degrees (``nan`` where not measured).
    explained
        Fraction of the log-means' variance the fitted fall explains.
    reason
        Why the offset is not usable, in words; ``""`` when it is.
    """

    offset_deg: float
    offset_error_deg: float
    explained: float
    reason: str

    @property
    def usable(self) -> bool:
        return not self.reason


def _design(tilts_deg: np.ndarray, offsets_deg: np.ndarray | float) -> np.ndarray:
    """``(..., n, 3)`` columns ``1, u, u²`` of ``u = 1 / cos(t + θ) − 1`` for each offset ``θ``."""
    u = 1.0 / np.cos(np.radians(tilts_deg + np.asarray(offsets_deg, dtype=np.float64)[..., None])) - 1.0
    return np.stack([np.ones_like(u), u, u**2], axis=-1)


def _fit(tilts_deg: np.ndarray, log_means: np.ndarray, offsets_deg: np.ndarray | float) -> tuple:
    """Least-squares coefficients ``(..., 3)`` and residual sums ``(...)`` of the quadratic at each offset."""
    design = _design(tilts_deg, offsets_deg)
    normal = np.einsum("...ni,...nj->...ij", design, design)
    coefficients = np.linalg.solve(normal, np.einsum("...ni,n->...i", design, log_means)[..., None])[..., 0]
    residual = np.einsum("...ni,...i->...n", design, coefficients) - log_means
    return coefficients, (residual**2).sum(axis=-1)


def _residual_sum(tilts_deg: np.ndarray, log_means: np.ndarray, offset_deg: float) -> float:
    return float(_fit(tilts_deg, log_means, offset_deg)[1])


def _best_offset(tilts_deg: np.ndarray, log_means: np.ndarray) -> float:
    """The offset of least residual: a coarse grid over the tilts' allowed range, then a fine one about its best."""
    steepest = float(np.abs(tilts_deg).max())
    bound = min(MAX_OFFSET_DEG, 89.0 - steepest)
    coarse = np.arange(-bound, bound + COARSE_STEP_DEG / 2, COARSE_STEP_DEG)
    start = float(coarse[np.argmin(_fit(tilts_deg, log_means, coarse)[1])])
    fine = np.arange(start - COARSE_STEP_DEG, start + COARSE_STEP_DEG + FINE_STEP_DEG / 2, FINE_STEP_DEG)
    fine = fine[np.abs(fine) <= bound]
    return float(fine[np.argmin(_fit(tilts_deg, log_means, fine)[1])])


def _offset_error_deg(tilts_deg: np.ndarray, log_means: np.ndarray, offset_deg: float) -> float:
    """Standard error of the offset: the residual variance over half the curvature of the residual sum."""
    h = 0.05
    sums = [_residual_sum(tilts_deg, log_means, offset_deg + d) for d in (-h, 0.0, h)]
    curvature = (sums[0] - 2 * sums[1] + sums[2]) / h**2
    variance = sums[1] / max(1, len(tilts_deg) - 4)
    return math.sqrt(variance / (0.5 * curvature)) if curvature > 0 else math.inf


def tilt_offset_from_attenuation(mean_intensities: Sequence[float] | np.ndarray, nominal_tilts_deg: Sequence[float], *,
                                 exposures: Sequence[float] | None = None) -> AttenuationOffset:  # fmt: skip
    """The tilt offset that makes the slab flat, from the tilts' mean intensities (module docstring).

    Parameters
    ----------
    mean_intensities
        ``(n,)`` mean of each tilt image, in the units the images were recorded in (counts, or any positive scale
        common to all tilts).
    nominal_tilts_deg
        ``(n,)`` nominal tilt angles, degrees.
    exposures
        ``(n,)`` each tilt's exposure (e/Å²), when known: the means are divided by it, so that a series exposed
        longer at high tilt is not taken for a thinner path there.

    Returns
    -------
    AttenuationOffset
        The offset and its standard error, or the reason the means cannot give it.
    """
    means = np.asarray(mean_intensities, dtype=np.float64)
    tilts = np.asarray(nominal_tilts_deg, dtype=np.float64)
    if exposures is not None:
        exposure = np.asarray(exposures, dtype=np.float64)
        if np.all(exposure > 0):
            means = means / exposure
    unused = lambda why: AttenuationOffset(math.nan, math.nan, math.nan, why)  # noqa: E731
    if len(means) < MIN_TILTS:
        return unused(f"{len(means)} tilts, fewer than the {MIN_TILTS} the fit needs")
    if not np.all(np.isfinite(means)) or means.min() <= 0:
        return unused("the images' means are not all positive: not intensities (normalised or dark-subtracted)")
    log_means = np.log(means)
    offset = _best_offset(tilts, log_means)
    coefficients, residual_sum = _fit(tilts, log_means, offset)
    spread = float(((log_means - log_means.mean()) ** 2).sum())
    explained = 1.0 - float(residual_sum) / spread if spread > 0 else 0.0
    error = _offset_error_deg(tilts, log_means, offset)
    u_max = float(_design(tilts, offset)[:, 1].max())
    falls = coefficients[1] < 0 and coefficients[1] + 2 * coefficients[2] * u_max < 0
    at_bound = abs(offset) >= min(MAX_OFFSET_DEG, 89.0 - float(np.abs(tilts).max())) - FINE_STEP_DEG
    return AttenuationOffset(offset, error, explained, _why_unusable(falls, explained, error, at_bound))


def _why_unusable(falls: bool, explained: float, error_deg: float, at_bound: bool) -> str:
    """Why a fitted offset is not to be used (``""`` when it is)."""
    if not falls:
        return "the mean does not fall with the path through the slab over the tilt range (not a bright-field image)"
    if explained < MIN_EXPLAINED:
        return (f"the path through a slab explains {100 * explained:.0f} % of the means' variance (at least "
                f"{100 * MIN_EXPLAINED:.0f} % needed)")  # fmt: skip
    if not error_deg <= MAX_OFFSET_ERROR_DEG:
        return f"its standard error {error_deg:.2f}° is over {MAX_OFFSET_ERROR_DEG:g}°"
    if at_bound:
        return "the fit asks for an offset at the end of the range searched"
    return ""
