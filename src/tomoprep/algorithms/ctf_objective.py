"""The 2-D refinement's score and its analytic gradient (model: :mod:`.ctf_spectrum`, fit: :mod:`.ctf_tilt`).

The score is the weighted correlation ``r = N / sqrt(M D)`` of the background-free data ``d`` (``(s, n)``) with
the background-free model ``P m``: ``N = <m, d>`` (``d`` is already projected, and the projection ``P`` is
symmetric and idempotent), ``M = <P m, P m> = <m, m> - |Bᵀ m|²`` (``B`` the orthonormal background basis),
``D = <d, d>``; ``<·,·>`` sums over pixels and strips with the strips' weights. The model of strip ``j`` is
``m = -cos 2θ · S · I · E``: ``θ = χ + asin A + φ`` at the strip's defocus, ``S`` the fading that stays fixed
(the strip's own depth spread, the matched filter), ``I = sinc(2 λ w k²)`` the ice's spread and
``E = exp(-b k²)`` the rings' decay. With ``u = d - (N / M) P m``, ``∂r/∂p = <∂m/∂p, u> / sqrt(M D)``, and
``θ`` is linear in the defocus, the astigmatism ``(a_x, a_y)`` and ``φ``: one pass over the pixels gives the
score and every derivative, which lets a quasi-Newton search (L-BFGS) replace a simplex search that needed
hundreds of scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tomoprep.algorithms.ctf_fit import TiltSpectra
from tomoprep.algorithms.ctf_spectrum import Band


def _sinc_and_slope(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sinc(x) = sin(πx)/(πx)`` and its derivative in ``x``."""
    value = np.sinc(x)
    small = np.abs(x) < 1e-6
    safe = np.where(small, 1.0, x)
    slope = np.where(small, -(math.pi**2) * x / 3.0, (np.cos(math.pi * safe) - value) / safe)
    return value, slope


@dataclass
class RingObjective:
    """Score and gradient of one tilt's strip spectra on a band, for a fixed hand and fixed fading.

    Parameters are ``(defocus Å, a_x Å, a_y Å, phase shift rad, spread Å, decay Å²)``.
    """

    band: Band
    data: np.ndarray
    static: np.ndarray
    weights: np.ndarray
    fixed_phase: np.ndarray
    wavelength_angstrom: float

    @classmethod
    def build(cls, spectra: TiltSpectra, band: Band, hand: int, static: np.ndarray) -> RingObjective:
        """The objective on ``band`` with the strips' defocus ``centre + hand · depth``; ``static`` ``(s, n)``."""
        optics = spectra.optics
        depth = hand * spectra.depth_angstrom
        # The parts of θ that no parameter moves: each strip's depth offset, Cs and the amplitude contrast.
        fixed = optics.aberration_phase_rad(band.k2[None, :], depth[:, None]) + optics.amplitude_phase_rad
        return cls(band, spectra.strips.log_residuals(band), static, spectra.weights, fixed,
                   optics.wavelength_angstrom)  # fmt: skip

    def _parts(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        defocus, a_x, a_y, phase, spread, decay = (float(p) for p in params)
        band, lam = self.band, self.wavelength_angstrom
        slope = math.pi * lam * band.k2  # ∂θ/∂defocus, rad/Å
        theta = self.fixed_phase + (slope * (defocus + a_x * band.cos2 + a_y * band.sin2) + phase)[None, :]
        ice, ice_slope = _sinc_and_slope(2.0 * lam * spread * band.k2)
        decay_envelope = np.exp(-decay * band.k2)
        return theta, ice, ice_slope * 2.0 * lam * band.k2, decay_envelope, slope

    def score(self, params: np.ndarray) -> float:
        """The weighted correlation at ``params``."""
        theta, ice, _, decay_envelope, _ = self._parts(params)
        model = -np.cos(2.0 * theta) * self.static * (ice * decay_envelope)[None, :]
        numerator, model_norm, data_norm, _ = self._norms(model)
        return numerator / math.sqrt(max(model_norm * data_norm, 1e-300))

    def _norms(self, model: np.ndarray) -> tuple[float, float, float, np.ndarray]:
        # einsum, not BLAS: the same sums in the same order whatever the thread count.
        coefficients = np.einsum("sn,nd->sd", model, self.band.basis)
        numerator = float(np.einsum("sn,sn,s->", model, self.data, self.weights))
        model_norm = float(np.einsum("sn,sn,s->", model, model, self.weights))
        model_norm -= float(np.einsum("sd,sd,s->", coefficients, coefficients, self.weights))
        data_norm = float(np.einsum("sn,sn,s->", self.data, self.data, self.weights))
        return numerator, max(model_norm, 1e-300), data_norm, coefficients

    def score_and_gradient(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """The weighted correlation at ``params`` ``(6,)`` and its gradient ``(6,)``."""
        theta, ice, ice_slope, decay_envelope, slope = self._parts(params)
        rings = -np.cos(2.0 * theta) * self.static
        envelope = ice * decay_envelope
        model = rings * envelope[None, :]
        numerator, model_norm, data_norm, coefficients = self._norms(model)
        scale = 1.0 / math.sqrt(max(model_norm * data_norm, 1e-300))
        projected = model - np.einsum("sd,nd->sn", coefficients, self.band.basis)
        residual = (self.data - (numerator / model_norm) * projected) * self.weights[:, None]
        # ∂m/∂θ = 2 sin 2θ · S · I · E; summed over strips against the residual, per pixel.
        along_theta = np.einsum("sn,sn->n", 2.0 * np.sin(2.0 * theta) * self.static, residual) * envelope
        along_envelope = np.einsum("sn,sn->n", rings, residual)
        band = self.band
        gradient = np.array([
            float(np.einsum("n,n->", along_theta, slope)),
            float(np.einsum("n,n,n->", along_theta, slope, band.cos2)),
            float(np.einsum("n,n,n->", along_theta, slope, band.sin2)),
            float(along_theta.sum()),
            float(np.einsum("n,n,n->", along_envelope, ice_slope, decay_envelope)),
            float(np.einsum("n,n,n->", along_envelope, ice * decay_envelope, -band.k2)),
        ])  # fmt: skip
        return numerator * scale, gradient * scale
