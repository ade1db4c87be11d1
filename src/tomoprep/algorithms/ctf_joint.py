"""Scores of one tilt's fit under changed conditions: the other hand, a series' shared astigmatism."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.optimize

from tomoprep.algorithms.ctf_fit import TiltCtfFit, TiltSpectra, _correlation, _depth_sinc
from tomoprep.algorithms.ctf_objective import RingObjective
from tomoprep.algorithms.ctf_spectrum import Band
from tomoprep.algorithms.ctf_tilt import _models, _Point

#: Astigmatism (Å) that moves the summed score about as much as one unit of the search's other variable.
_ASTIGMATISM_SCALE_ANGSTROM = 100.0


def _fitted_band(spectra: TiltSpectra, fit: TiltCtfFit) -> tuple[Band, np.ndarray, np.ndarray]:
    """The band up to ``fit``'s resolution (at least its first third), the data on it and the strips' fading."""
    k_low, k_high = float(np.sqrt(spectra.band.k2.min())), float(np.sqrt(spectra.band.k2.max()))
    limit = 1.0 / fit.fit_resolution_angstrom if math.isfinite(fit.fit_resolution_angstrom) else 0.0
    k_max = min(k_high, max(limit, k_low + (k_high - k_low) / 3))
    band = Band.build(spectra.settings.tile_px, spectra.optics.pixel_spacing_angstrom, (k_low, k_max))
    return band, spectra.strips.log_residuals(band), _depth_sinc(band, spectra)


def _point(fit: TiltCtfFit, astigmatism_xy_angstrom: tuple[float, float] | None = None) -> _Point:
    return _Point(fit.defocus_angstrom, astigmatism_xy_angstrom or fit.astigmatism_xy_angstrom,
                  math.radians(fit.phase_shift_deg), fit.spread_angstrom, fit.ring_decay_angstrom2)  # fmt: skip


def joint_astigmatism(
    spectra: Sequence[TiltSpectra], fits: Sequence[TiltCtfFit], start_xy_angstrom: tuple[float, float]
) -> tuple[float, float]:
    """The astigmatism ``(a_x, a_y)`` (Å) shared by the tilts of a series: the one maximising their summed score.

    Each tilt keeps its own defocus, spread, decay, hand and band (from ``fits``); astigmatism does not change
    the mean defocus, so those need no refit. One tilt's astigmatism rests on a few rings at 3 e⁻/Å² (10-15° of
    scatter in its angle); the series' pooled rings pin it.
    """
    terms = []
    for sp, fit in zip(spectra, fits, strict=True):
        band, _, static = _fitted_band(sp, fit)
        point = _point(fit)
        params = np.array([point.defocus_angstrom, 0.0, 0.0, point.phase_shift_rad, point.spread_angstrom,
                           point.decay_angstrom2])  # fmt: skip
        terms.append((RingObjective.build(sp, band, fit.hand, static), params))

    def negative(v: np.ndarray) -> tuple[float, np.ndarray]:
        total, gradient = 0.0, np.zeros(2)
        for objective, params in terms:
            params[1:3] = v * _ASTIGMATISM_SCALE_ANGSTROM
            value, full = objective.score_and_gradient(params)
            total += value
            gradient += full[1:3] * _ASTIGMATISM_SCALE_ANGSTROM
        return -total, -gradient

    x0 = np.array(start_xy_angstrom, dtype=float) / _ASTIGMATISM_SCALE_ANGSTROM
    result = scipy.optimize.minimize(negative, x0, jac=True, method="L-BFGS-B",
                                     options={"maxiter": 200, "ftol": 1e-10, "gtol": 1e-8})  # fmt: skip
    a_x, a_y = result.x * _ASTIGMATISM_SCALE_ANGSTROM
    return float(a_x), float(a_y)


def hand_scores(spectra: TiltSpectra, fit: TiltCtfFit, *, search_angstrom: float = 1000.0) -> dict[int, float]:
    """Best correlation with either sense of the gradient, the astigmatism and band of ``fit`` held.

    Each hand gets its own best centre defocus within ``±search_angstrom`` (Å) of ``fit``'s, on the band up to
    ``fit``'s resolution, with the same weights: the difference is the tilt's evidence for the hand.
    """
    band, data, static = _fitted_band(spectra, fit)
    point = _point(fit)
    step = 0.25 / (spectra.optics.wavelength_angstrom * float(band.k2.max()))  # a quarter ring at the band's edge
    grid = fit.defocus_angstrom + np.arange(-search_angstrom, search_angstrom + step / 2, step / 4)
    scores = {}
    for hand in (1, -1):
        coarse = _correlation(data, _models(spectra, band, hand, point, grid, static), spectra.weights)
        centre = float(grid[int(np.argmax(coarse))])
        result = scipy.optimize.minimize_scalar(
            lambda d, hand=hand: -float(_correlation(data, _models(spectra, band, hand, point, np.array([d]), static),
                                                     spectra.weights)[0]),
            bounds=(centre - step / 4, centre + step / 4), method="bounded", options={"xatol": 1.0},
        )  # fmt: skip
        scores[hand] = max(-float(result.fun), float(coarse.max()))
    return scores
