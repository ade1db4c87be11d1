"""How precisely a frame's leave-one-out correlation peak places it, measured from the frames themselves.

Every frame ``F`` of a stack is correlated with ``R``, the sum of the other ``n - 1`` frames, under a real weight
``W`` (the B-factor envelope). Near the peak the correlation is ``c(s) = Σ_k W Re(F R* e^{2πi k·s})`` (a sum over
the full spectrum; the half spectrum counts each column but the first and the Nyquist one twice). Writing
``F = S + N_F`` and ``R = (n - 1) S + N_R`` (signal ``S``, independent noises of powers ``N_F``, ``N_R``), the peak
found is, to first order, the true shift plus ``-c'(0) / c''(0)``, whose variance along axis ``a`` is

    σ_a² = Σ_k m_k² (2π k_a)² W² (|R|² N_F + |S|² N_R) / 2  /  (Σ_k m_k (2π k_a)² W Re(F R*))²

(``m_k`` the multiplicity of a half-spectrum sample). The noise of the map's height is the same sum with the
factor ``(2π k_a)²`` left out. The noise powers come from the residual ``F - R / (n - 1)``, whose power is
``N_F + N_R / (n - 1)²`` for aligned frames: averaged over blocks of the spectrum and solved for each frame's own
``N_F`` (the frames may differ in dose), it holds for counting and integrating detectors alike, after any
Fourier binning, taper and gain, because nothing about the noise is assumed but its independence between frames.
``|S|²`` is ``Re(F R*) / (n - 1)``. Misaligned frames leave signal in the residual, which only overstates σ.

The denominators are summed over the whole spectrum (a frame's own signal decides them); the noise sums, smooth
in ``k``, over every 8th row and 4th column (at least 64 of each), which changes σ by about 1 % and costs a
thirty-second.

Measured against the scatter of the converged, unsmoothed shifts about the truth (the ratio of the observed to
the predicted scatter; 10 frames of a textured specimen): Poisson counts on 512² at 0.5, 4 and 30 e⁻/px per
frame 0.99, 0.99, 1.12 (σ 0.15, 0.035, 0.012 px); an integrating camera's coloured noise, one frame twice as
noisy, 1.13 (that frame's σ 1.8 times the others'). On simulated tilt movies (phantom, CTF, ice) 0.92-0.98 for
the maxima of the band-limited maps (:func:`tomoprep.algorithms.correlation.refine_peak`; 1.1-1.4 for 3-point
fits through the maps' samples).

The first-order σ assumes that the noise moves the peak without raising a rival to it. That holds while σ is
small against the correlation length ``1 / k_noise`` of the map's noise, ``k_noise = slope / height`` noise (the
RMS angular frequency of the noise along an axis, radians per pixel). Where the weight reaches frequencies that the
signal does not (a B-factor of a few px² at a dose whose contrast transfer there is lost in the noise), the noise
has maxima of its own within the peak's reach and the search takes one. Measured against the truth (scatter over
σ, from the true shifts; median ``σ k_noise`` over a movie's frames in brackets): textured frames with B = 150 px²
at 0.1-0.92 e⁻/px per frame 1.1-1.2 (0.02-0.25), simulated tilt movies at 1 e⁻/Å² per tilt 1.1-1.2 (0.10-0.17);
but tilt movies at 0.2 e⁻/Å² (256², 4 Å, B = 6.25 px²) 3.8-4.7 (0.22-0.58) and the textured frames with B = 6.25
px² at 0.3-1 e⁻/px 2.3-4.8 (0.20-0.42), though most of their peaks are 6-10 noise standard deviations high.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as nnf

from tomoprep.algorithms.correlation import _hermitian

#: Rows and columns of the half spectrum sampled for the noise sums (every 8th row, every 4th column).
_NOISE_STRIDE = (8, 4)
#: Side, in samples, of the spectrum blocks over which the residual power is averaged into a noise power.
_NOISE_BLOCK = 16


class PeakNoise(NamedTuple):
    """Noise of each frame's correlation map at the frames' current alignment, in the map's units (those of
    ``irfft2`` of the weighted cross-power spectrum).

    Attributes
    ----------
    slope
        ``(..., n, 2)`` standard deviation of the map's slope ``∂c/∂s`` at the peak along y and x (per pixel); over
        the peak's curvature ``-∂²c/∂s²`` it is the standard deviation of the shift measured.
    height
        ``(..., n)`` standard deviation of the map's value: a peak's height over it is its significance.
    """

    slope: torch.Tensor
    height: torch.Tensor


def _frame_noise_power(residual_power: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each frame's noise power ``N_F`` and that of its reference ``N_R``, per sample, from the residual power.

    The residual of frame ``i`` has power ``E_i = N_i + (T - N_i) / (n - 1)²`` with ``T = Σ_j N_j``, so
    ``T = (n - 1) / n Σ_i E_i`` and ``N_i = (E_i - T / (n - 1)²) / (1 - 1 / (n - 1)²)``. Two frames cannot be
    told apart: each gets half.
    """
    shape = residual_power.shape
    flat = residual_power.reshape(-1, 1, shape[-2], shape[-1])
    blocks = nnf.avg_pool2d(flat, _NOISE_BLOCK, ceil_mode=True)
    power = nnf.interpolate(blocks, scale_factor=_NOISE_BLOCK, mode="nearest")[..., : shape[-2], : shape[-1]]
    power = power.reshape(shape)
    if n <= 2:
        own = power / 2
        return own, own
    total = power.sum(dim=-3, keepdim=True) * (n - 1) / n
    own = ((power - total / (n - 1) ** 2) / (1 - 1 / (n - 1) ** 2)).clamp_min_(0)
    return own, total - own


def peak_noise(
    aligned: torch.Tensor, others: torch.Tensor, *, shape_yx: tuple[int, int], weight: torch.Tensor
) -> PeakNoise:
    """Noise of the slope and of the height of every frame's leave-one-out correlation map (module notes).

    Parameters
    ----------
    aligned
        ``(..., n, Y, X // 2 + 1)`` half spectra of the frames at their current alignment.
    others
        Same shape: for each frame, the sum of the other frames' aligned spectra.
    shape_yx
        Real-space shape ``(Y, X)`` of the images.
    weight
        ``(Y, X // 2 + 1)`` real weight of the cross-power spectrum, zero at ``k = 0``.

    Returns
    -------
    PeakNoise
        Slope noise ``(..., n, 2)`` and height noise ``(..., n)``, in map units.
    """
    n = aligned.shape[-3]
    step_y, step_x = (
        max(1, min(stride, size // 64)) for stride, size in zip(_NOISE_STRIDE, aligned.shape[-2:], strict=True)
    )
    # (real, imaginary) pairs: products of complex numbers' parts are cheaper than their moduli
    frame = torch.view_as_real(aligned[..., ::step_y, ::step_x]).contiguous()
    reference = torch.view_as_real(others[..., ::step_y, ::step_x]).contiguous()
    residual_power = (frame - reference / max(n - 1, 1)).square_().sum(dim=-1)
    residual_power[..., 0, 0] = 0  # the mean, not noise
    own, of_reference = _frame_noise_power(residual_power, n)
    signal_power = (frame * reference).sum(dim=-1).div_(max(n - 1, 1))
    # out of place: without a stride, ``reference`` is a view of the caller's spectra
    noise = reference.square().sum(dim=-1).mul_(own).add_(signal_power.mul_(of_reference))
    device = aligned.device
    ky2 = (2 * math.pi * torch.fft.fftfreq(shape_yx[0], device=device)[::step_y]) ** 2
    kx2 = (2 * math.pi * torch.fft.rfftfreq(shape_yx[1], device=device)[::step_x]) ** 2
    multiplicity = _hermitian(aligned.shape[-1], shape_yx[1], device)[::step_x].float()
    scale = step_y * step_x / 2 / float(shape_yx[0] * shape_yx[1]) ** 2
    per_row = noise.mul_((weight[::step_y, ::step_x] * multiplicity).square_()) @ torch.stack(
        [torch.ones_like(kx2), kx2], dim=-1
    )
    slope = torch.stack([per_row[..., 0] @ ky2, per_row[..., 1].sum(dim=-1)], dim=-1)
    return PeakNoise(slope.mul_(scale).sqrt_(), per_row[..., 0].sum(dim=-1).mul_(scale).sqrt_())
