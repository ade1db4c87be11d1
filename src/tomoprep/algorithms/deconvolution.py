"""Tegunov's deconvolution filter for tomograms ("deconv" of Warp, ``tom_deconv``; IsoNet's variant).

A Wiener-like filter built from the CTF at the tomogram's (mean) defocus and an assumed spectral signal-to-noise
ratio, which restores the low-resolution contrast the CTF takes away and so makes tomograms readable to the eye.
With ``f = |k| / k_Nyquist`` (fraction of Nyquist, ``k_Nyquist = 1 / (2 · pixel)``)::

    highpass(f) = 1 - cos(π · min(1, f / highpass_fraction))
    SNR(f)      = exp(-f · snr_falloff · 100 / pixel_Å) · 10^(c · strength) · highpass(f)   (+ 10⁻⁶, IsoNet)
    filter(f)   = ctf(f) / (ctf(f)² + 1 / SNR(f))  =  ctf · SNR / (ctf² · SNR + 1)

Variants: Warp's (``tom_deconv``) has ``c = 3`` (strength 1 for an SNR of 1000, 0.67 for 100); IsoNet's has
``c = 1`` and adds ``10⁻⁶`` to the SNR, so IsoNet's strength ``s`` is Warp's ``s / 3``. The high-pass and the
falloff are the same in both. The high-pass rises from 0 to 2 (not 1), so above it the SNR is twice
``exp(...) · 10^(c · strength)``; kept as published, since strengths are tuned against it.

The CTF is ``ctf = sin(χ + asin A + φ)``, ``χ = π λ Δf k² - π/2 Cs λ³ k⁴`` with ``Δf`` positive for underfocus:
the negative of the simulator's and CTF fit's ``-sin(...)``, positive at low frequency, as in ``tom_deconv``, so
the filter keeps the tomogram's contrast (dense matter stays dark). With ``phase_flipped`` the filter uses
``|ctf|``. The filter is 0 at the zero frequency (the mean is removed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from tomoprep.algorithms.ctf_spectrum import Optics

Variant = Literal["warp", "isonet"]
_STRENGTH_DECADES = {"warp": 3.0, "isonet": 1.0}
_ISONET_SNR_FLOOR = 1e-6


def deconvolution_ctf(
    k_per_angstrom: torch.Tensor, *, defocus_angstrom: float, optics: Optics, phase_shift_rad: float = 0.0
) -> torch.Tensor:
    """``sin(χ + asin A + φ)`` at frequencies ``k`` (1/Å, any shape), float64; defocus positive = underfocus."""
    chi = optics.aberration_phase_rad(k_per_angstrom.double() ** 2, defocus_angstrom)
    return torch.sin(chi + optics.amplitude_phase_rad + phase_shift_rad)


def deconvolution_snr(
    k_per_angstrom: torch.Tensor,
    *,
    pixel_spacing_angstrom: float,
    snr_falloff: float = 1.0,
    strength: float = 1.0,
    highpass_fraction: float = 0.02,
    variant: Variant = "warp",
) -> torch.Tensor:
    """The assumed ``SNR(f)`` of the module notes at frequencies ``k`` (1/Å, any shape), float64."""
    if variant not in _STRENGTH_DECADES:
        raise ValueError(f"unknown deconvolution variant {variant!r}: 'warp' or 'isonet'")
    if highpass_fraction <= 0 or pixel_spacing_angstrom <= 0:
        raise ValueError(
            f"the high-pass (fraction of Nyquist) and pixel spacing must be positive, got {highpass_fraction} and "
            f"{pixel_spacing_angstrom} Å"
        )
    fraction = k_per_angstrom.double() * (2.0 * pixel_spacing_angstrom)
    highpass = 1.0 - torch.cos(math.pi * torch.clamp(fraction / highpass_fraction, max=1.0))
    decay = torch.exp(-fraction * (snr_falloff * 100.0 / pixel_spacing_angstrom))
    snr = decay * 10.0 ** (_STRENGTH_DECADES[variant] * strength) * highpass
    return snr + _ISONET_SNR_FLOOR if variant == "isonet" else snr


@dataclass(frozen=True)
class DeconvolutionSettings:
    """Settings of :func:`deconvolution_filter` (Warp's defaults).

    Attributes
    ----------
    snr_falloff
        How fast the SNR falls with frequency (usually 1-1.2).
    strength
        Overall strength: ``log10`` of the SNR at low frequency, divided by ``c`` (module notes).
    highpass_fraction
        Frequency, as a fraction of Nyquist, below which the cosine high-pass removes low frequencies.
    phase_flipped
        The tomogram was phase-flipped already: use ``|ctf|``.
    phase_shift_rad
        Phase-plate phase shift, rad.
    variant
        ``"warp"`` or ``"isonet"`` (module notes).
    """

    snr_falloff: float = 1.0
    strength: float = 1.0
    highpass_fraction: float = 0.02
    phase_flipped: bool = False
    phase_shift_rad: float = 0.0
    variant: Variant = "warp"


def deconvolution_filter(
    k_per_angstrom: torch.Tensor,
    *,
    defocus_angstrom: float,
    optics: Optics,
    settings: DeconvolutionSettings = DeconvolutionSettings(),
) -> torch.Tensor:
    """Tegunov's deconvolution filter at frequencies ``k`` (1/Å, any shape), float64.

    ``defocus_angstrom`` is positive for underfocus (Warp takes µm); ``optics`` carries the voltage, Cs,
    amplitude contrast and the pixel spacing (Å) of the tomogram the filter is for.
    """
    ctf = deconvolution_ctf(k_per_angstrom, defocus_angstrom=defocus_angstrom, optics=optics,
                            phase_shift_rad=settings.phase_shift_rad)  # fmt: skip
    ctf = ctf.abs() if settings.phase_flipped else ctf
    snr = deconvolution_snr(k_per_angstrom, pixel_spacing_angstrom=optics.pixel_spacing_angstrom,
                            snr_falloff=settings.snr_falloff, strength=settings.strength,
                            highpass_fraction=settings.highpass_fraction, variant=settings.variant)  # fmt: skip
    return ctf * snr / (ctf * ctf * snr + 1.0)


def deconvolve_volume(
    volume: torch.Tensor,
    *,
    defocus_angstrom: float,
    optics: Optics,
    settings: DeconvolutionSettings = DeconvolutionSettings(),
) -> torch.Tensor:
    """Apply :func:`deconvolution_filter` to a ``(z, y, x)`` volume (or a ``(y, x)`` image) of cubic voxels of
    ``optics.pixel_spacing_angstrom``; returns float32 of the same shape (its mean removed)."""
    shape = tuple(volume.shape)
    axes = tuple(range(-len(shape), 0))
    k2 = torch.fft.rfftfreq(shape[-1], d=optics.pixel_spacing_angstrom, device=volume.device) ** 2
    for axis, n in zip(axes[:-1], shape[:-1], strict=True):
        frequencies = torch.fft.fftfreq(n, d=optics.pixel_spacing_angstrom, device=volume.device) ** 2
        k2 = k2 + frequencies.reshape([n if a == axis else 1 for a in axes])
    weights = deconvolution_filter(k2.sqrt(), defocus_angstrom=defocus_angstrom, optics=optics, settings=settings)
    spectrum = torch.fft.rfftn(volume.float(), dim=axes) * weights.float()
    return torch.fft.irfftn(spectrum, s=shape, dim=axes)
