"""What the CTF step shows of its fits: each tilt's tile-averaged power spectrum (for ``rlnCtfImage``) and the
rotational averages of data and model that the plot draws."""

from __future__ import annotations

import math

import numpy as np

from tomoprep.model import TiltCtf
from tomoprep.physics import electron_wavelength_angstrom


def power_spectrum(image: np.ndarray, tile_px: int) -> np.ndarray:
    """``(tile_px, tile_px)`` log of the mean periodogram of half-overlapping tiles, zero frequency at the centre.

    Each tile's mean is removed and it is Hann-windowed so the image's edges add no cross; the log is shifted to a
    median of 0 in the outer half so stacks of spectra share a grey scale.
    """
    ny, nx = image.shape
    size = min(tile_px, ny, nx)
    step = max(size // 2, 1)
    window = np.outer(np.hanning(size), np.hanning(size))
    total = np.zeros((size, size))
    count = 0
    for y in range(0, ny - size + 1, step):
        for x in range(0, nx - size + 1, step):
            tile = image[y : y + size, x : x + size].astype(np.float64)
            total += np.abs(np.fft.fft2((tile - tile.mean()) * window)) ** 2
            count += 1
    log = np.log(total / max(count, 1) + 1e-30)
    log = np.fft.fftshift(log)
    radius = np.hypot(*np.meshgrid(np.arange(size) - size // 2, np.arange(size) - size // 2, indexing="ij"))
    outer = radius > size / 4
    return (log - float(np.median(log[outer]))).astype(np.float32)


def _effective_k2(size: int, pixel_spacing_angstrom: float, ctf: TiltCtf) -> tuple[np.ndarray, np.ndarray]:
    """``(k², k² Δf(θ)/Δf)`` per pixel of a centred spectrum: the second puts astigmatic rings on a circle."""
    k = (np.arange(size) - size // 2) / (size * pixel_spacing_angstrom)
    ky, kx = np.meshgrid(k, k, indexing="ij")
    theta = np.arctan2(ky, kx)
    half = 0.5 * ctf.astigmatism_angstrom
    along = ctf.defocus_angstrom + half * np.cos(2 * (theta - math.radians(ctf.astigmatism_angle_deg)))
    k2 = kx**2 + ky**2
    return k2, k2 * along / ctf.defocus_angstrom


def radial_fit(
    spectrum: np.ndarray, ctf: TiltCtf, *, pixel_spacing_angstrom: float, voltage_kv: float, cs_mm: float,
    amplitude_contrast: float, band_angstrom: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Rotational average of a centred log spectrum on astigmatism-corrected rings, and the model there.

    Returns
    -------
    (spatial frequency 1/Å ``(m,)``, data ``(m,)``, model ``(m,)``): data with a smooth background (a cubic in
    ``k``) removed and both scaled to unit standard deviation over ``band_angstrom`` (coarse, fine).
    """
    size = spectrum.shape[0]
    _, k2_eff = _effective_k2(size, pixel_spacing_angstrom, ctf)
    k_eff = np.sqrt(k2_eff)
    step = 1.0 / (size * pixel_spacing_angstrom)
    bins = np.rint(k_eff / step).astype(int)
    inside = bins < size // 2
    counts = np.bincount(bins[inside])
    profile = np.bincount(bins[inside], spectrum[inside]) / np.maximum(counts, 1)
    k = np.arange(profile.size) * step
    keep = (k >= 1.0 / band_angstrom[0]) & (k <= 1.0 / band_angstrom[1]) & (counts > 0)
    k, profile = k[keep], profile[keep]
    if k.size < 8:
        return k, np.zeros_like(k), np.zeros_like(k)
    profile = profile - np.polyval(np.polyfit(k, profile, 3), k)
    wavelength = electron_wavelength_angstrom(voltage_kv)
    chi = math.pi * wavelength * ctf.defocus_angstrom * k**2 - 0.5 * math.pi * cs_mm * 1e7 * wavelength**3 * k**4
    model = -np.cos(2 * (chi + math.asin(amplitude_contrast) + math.radians(ctf.phase_shift_deg)))
    return k, profile / max(float(profile.std()), 1e-12), model / max(float(model.std()), 1e-12)
