"""Fourier-space transfer in the simulator: CTF, electron optics constants, exposure (dose) filter, band limit.

Conventions (shared with :mod:`tomoprep.simulate.imaging`)
-----------------------------------------------------------
CTF sign
    RELION's: ``CTF(k) = -(sqrt(1 - A²) sin χ + A cos χ) = -sin(χ + asin A)`` with
    ``χ = π λ Δf k² - π/2 Cs λ³ k⁴``, ``Δf`` positive for underfocus. In the weak-phase limit the image
    is ``1 + 2 IFFT(CTF · FFT(φ))`` for a projected phase ``φ`` (radians), so an object of positive phase is
    dark at low frequency in underfocus (``CTF(0) = -A``), as in real bright-field images.
Astigmatism
    the defocus along the Fourier direction at angle ``θ`` is
    ``Δf(θ) = (dU + dV)/2 + (dU - dV)/2 cos(2(θ - angle))``; ``θ = atan2(k_y, k_x)`` is measured from the
    image X axis (array columns) towards the image Y axis (increasing array row index), as RELION's
    ``rlnDefocusAngle``.
Exposure filter
    Grant & Grigorieff (2015): amplitudes fall as ``exp(-N / (2 Ne(k)))`` after an accumulated exposure ``N``
    (e/Å²), with the critical exposure ``Ne(k) = 0.245 k^-1.665 + 2.81`` e/Å² at 300 kV (``k`` in 1/Å),
    multiplied by 0.8 at 200 kV and 0.532 at 100 kV (the factors cisTEM uses), linearly interpolated between
    those voltages and held constant outside them.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from tomoprep.physics import REST_ENERGY_EV as _REST_ENERGY_EV
from tomoprep.physics import electron_wavelength_angstrom

_CRITICAL_EXPOSURE_A = 0.245
_CRITICAL_EXPOSURE_B = -1.665
_CRITICAL_EXPOSURE_C = 2.81
_VOLTAGE_SCALING_KV = (100.0, 200.0, 300.0)
_VOLTAGE_SCALING = (0.532, 0.8, 1.0)


@dataclass(frozen=True)
class Microscope:
    """Fixed optics of the simulated microscope.

    Attributes
    ----------
    voltage_kv
        Acceleration voltage, kV.
    spherical_aberration_mm
        Spherical aberration Cs, mm.
    amplitude_contrast
        Amplitude contrast fraction ``A`` (0–1), RELION's ``rlnAmplitudeContrast``.
    """

    voltage_kv: float = 300.0
    spherical_aberration_mm: float = 2.7
    amplitude_contrast: float = 0.07


@dataclass(frozen=True)
class TiltCtf:
    """Defocus of one tilt image, at the tilt-image centre (the projected specimen centre).

    Attributes
    ----------
    defocus_u_angstrom, defocus_v_angstrom
        Defocus along the U and V directions, Å, positive = underfocus (RELION ``rlnDefocusU/V``).
    astigmatism_angle_deg
        Angle from the image X axis to the U direction, degrees, towards +Y (RELION ``rlnDefocusAngle``).
    hand
        ``+1`` or ``-1``: an object at depth ``z'`` (Å, third row of ``R·X``) is imaged with defocus
        ``defocus + hand * z'`` (RELION ``rlnTomoHand`` times a defocus slope of 1).
    """

    defocus_u_angstrom: float
    defocus_v_angstrom: float
    astigmatism_angle_deg: float
    hand: int = -1


def interaction_constant_rad_per_volt_angstrom(voltage_kv: float) -> float:
    """Relativistic interaction constant σ, rad/(V·Å): phase shift per volt of potential per Å of path."""
    volts = voltage_kv * 1e3
    wavelength = electron_wavelength_angstrom(voltage_kv)
    return 2 * math.pi / (wavelength * volts) * (_REST_ENERGY_EV + volts) / (2 * _REST_ENERGY_EV + volts)


def _chi(k2: np.ndarray, defocus_angstrom: np.ndarray | float, microscope: Microscope) -> np.ndarray:
    wavelength = electron_wavelength_angstrom(microscope.voltage_kv)
    cs_angstrom = microscope.spherical_aberration_mm * 1e7
    return math.pi * wavelength * defocus_angstrom * k2 - 0.5 * math.pi * cs_angstrom * wavelength**3 * k2**2


def ctf_1d(k_per_angstrom: np.ndarray, *, defocus_angstrom: float, microscope: Microscope) -> np.ndarray:
    """The CTF the simulator applies, along one radial line.

    Parameters
    ----------
    k_per_angstrom
        Spatial frequencies, 1/Å, any shape.
    defocus_angstrom
        Defocus, Å, positive = underfocus.
    microscope
        Voltage, Cs and amplitude contrast.

    Returns
    -------
    numpy.ndarray
        ``-sin(χ + asin A)``, float64, the shape of ``k_per_angstrom``.
    """
    k = np.asarray(k_per_angstrom, dtype=np.float64)
    chi = _chi(k * k, defocus_angstrom, microscope)
    return -np.sin(chi + math.asin(microscope.amplitude_contrast))


def rfft2_frequencies(
    image_shape_yx: tuple[int, int], *, pixel_spacing_angstrom: float
) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies of ``scipy.fft.rfft2`` of a ``(y, x)`` image, 1/Å.

    Returns
    -------
    tuple of numpy.ndarray
        ``k_y`` of shape ``(H, 1)`` and ``k_x`` of shape ``(1, W // 2 + 1)``, float32, broadcastable.
    """
    height, width = image_shape_yx
    k_y = np.fft.fftfreq(height, d=pixel_spacing_angstrom).astype(np.float32)[:, None]
    k_x = np.fft.rfftfreq(width, d=pixel_spacing_angstrom).astype(np.float32)[None, :]
    return k_y, k_x


def ctf_phase_terms(
    image_shape_yx: tuple[int, int], ctf: TiltCtf, microscope: Microscope, *, pixel_spacing_angstrom: float
) -> tuple[np.ndarray, np.ndarray]:
    """The two terms from which the CTF at any defocus offset follows: ``CTF = -sin(base + offset * slope)``.

    Returns
    -------
    base
        ``χ(k) + asin A`` at the astigmatic centre defocus, rad, float32, ``(H, W // 2 + 1)`` (rfft2 layout).
    slope
        ``π λ k²``, rad/Å, float32, same shape: the change of ``χ`` per Å of extra defocus.
    """
    k_y, k_x = rfft2_frequencies(image_shape_yx, pixel_spacing_angstrom=pixel_spacing_angstrom)
    k2 = k_x * k_x + k_y * k_y
    mean = 0.5 * (ctf.defocus_u_angstrom + ctf.defocus_v_angstrom)
    half = 0.5 * (ctf.defocus_u_angstrom - ctf.defocus_v_angstrom)
    angle = math.radians(ctf.astigmatism_angle_deg)
    # Δf(θ)·k² without atan2: cos 2(θ - a)·k² = (kx² - ky²) cos 2a + 2 kx ky sin 2a.
    astigmatic = (k_x * k_x - k_y * k_y) * math.cos(2 * angle) + 2 * k_x * k_y * math.sin(2 * angle)
    wavelength = electron_wavelength_angstrom(microscope.voltage_kv)
    cs_angstrom = microscope.spherical_aberration_mm * 1e7
    slope = (math.pi * wavelength * k2).astype(np.float32)
    base = slope * mean + np.float32(math.pi * wavelength * half) * astigmatic
    base -= np.float32(0.5 * math.pi * cs_angstrom * wavelength**3) * k2 * k2
    base += np.float32(math.asin(microscope.amplitude_contrast))
    return base.astype(np.float32), slope


def ctf_rfft2(
    image_shape_yx: tuple[int, int],
    ctf: TiltCtf,
    microscope: Microscope,
    *,
    pixel_spacing_angstrom: float,
    defocus_offset_angstrom: float = 0.0,
) -> np.ndarray:
    """The 2D CTF in ``scipy.fft.rfft2`` layout, float32 ``(H, W // 2 + 1)``.

    ``defocus_offset_angstrom`` (Å) is added to both dU and dV (e.g. ``hand * depth``).
    """
    base, slope = ctf_phase_terms(image_shape_yx, ctf, microscope, pixel_spacing_angstrom=pixel_spacing_angstrom)
    return -np.sin(base + np.float32(defocus_offset_angstrom) * slope)


def critical_exposure_e_per_angstrom2(k_per_angstrom: np.ndarray, *, voltage_kv: float) -> np.ndarray:
    """Critical exposure ``Ne(k)``, e/Å² (infinite at ``k = 0``), for frequencies ``k`` in 1/Å."""
    k = np.asarray(k_per_angstrom, dtype=np.float64)
    scaling = float(np.interp(voltage_kv, _VOLTAGE_SCALING_KV, _VOLTAGE_SCALING))
    with np.errstate(divide="ignore"):
        power = np.where(k > 0, np.abs(k) ** _CRITICAL_EXPOSURE_B, np.inf)
    return (_CRITICAL_EXPOSURE_A * power + _CRITICAL_EXPOSURE_C) * scaling


def exposure_filter(k_per_angstrom: np.ndarray, *, exposure_e_per_angstrom2: float, voltage_kv: float) -> np.ndarray:
    """Amplitude attenuation ``exp(-N / (2 Ne(k)))`` after an accumulated exposure ``N`` (e/Å²), float64."""
    critical = critical_exposure_e_per_angstrom2(k_per_angstrom, voltage_kv=voltage_kv)
    return np.exp(-exposure_e_per_angstrom2 / (2.0 * critical))


def hankel_frequencies(*, pixel_spacing_angstrom: float, r_max_angstrom: float) -> np.ndarray:
    """The radial frequency grid (1/Å, 0 to Nyquist) of :func:`band_limited_profiles`, spacing ≤ ``1/(6 r_max)``."""
    nyquist = 0.5 / pixel_spacing_angstrom
    n = math.ceil(nyquist * 6 * _round_r_max(r_max_angstrom)) + 1
    return np.linspace(0.0, nyquist, max(n, 16))


def band_limited_profiles(
    transforms: np.ndarray, *, pixel_spacing_angstrom: float, r_max_angstrom: float
) -> tuple[np.ndarray, np.ndarray]:
    """Radial 2D functions from their radial transforms, band-limited so that pixel sampling does not alias.

    The transforms are multiplied by a raised-cosine taper from 0.8 to 1.0 × Nyquist and brought back by the
    inverse Hankel transform ``f(r) = 2π ∫ F(k) J0(2πkr) k dk`` (trapezoid rule with its end correction: about
    1e-3 of the peak accurate where the function is smooth).

    Parameters
    ----------
    transforms
        ``(n, nk)`` radial transforms on the grid :func:`hankel_frequencies` gives for the same arguments.
    pixel_spacing_angstrom
        Image pixel spacing, Å: sets the band limit.
    r_max_angstrom
        Largest radius needed, Å (rounded up to a multiple of 64 Å).

    Returns
    -------
    r_angstrom
        ``(nr,)`` radii, Å, from 0 in steps of ``pixel_spacing / 8``.
    profiles
        ``(n, nr)`` float32.
    """
    k = hankel_frequencies(pixel_spacing_angstrom=pixel_spacing_angstrom, r_max_angstrom=r_max_angstrom)
    r, bessel = _bessel_matrix(pixel_spacing_angstrom, _round_r_max(r_max_angstrom))
    nyquist, dk = k[-1], k[1] - k[0]
    taper = 0.5 * (1 - np.cos(math.pi * np.clip((nyquist - k) / (0.2 * nyquist), 0.0, 1.0)))
    weights = 2 * math.pi * k * dk * taper
    weights[-1] *= 0.5
    profiles = (transforms * weights).astype(np.float32) @ bessel
    # Euler-Maclaurin end correction: the integrand's slope at k = 0 is 2π F(0).
    profiles += (dk**2 / 12 * 2 * math.pi * transforms[:, :1]).astype(np.float32)
    return r, profiles


def _round_r_max(r_max_angstrom: float) -> float:
    return 64.0 * math.ceil(max(r_max_angstrom, 1.0) / 64.0)


@functools.lru_cache(maxsize=4)
def _bessel_matrix(pixel_spacing_angstrom: float, r_max_angstrom: float) -> tuple[np.ndarray, np.ndarray]:
    """Radii ``(nr,)`` and ``J0(2π k r)`` ``(nk, nr)`` float32; cached because every tilt of a series reuses it."""
    from scipy.special import j0

    k = hankel_frequencies(pixel_spacing_angstrom=pixel_spacing_angstrom, r_max_angstrom=r_max_angstrom)
    r = np.arange(0.0, r_max_angstrom + pixel_spacing_angstrom / 4, pixel_spacing_angstrom / 8)
    bessel = np.empty((k.size, r.size), dtype=np.float32)
    for start in range(0, r.size, 1024):  # chunks keep the float64 temporary small
        stop = min(start + 1024, r.size)
        bessel[:, start:stop] = j0(2 * math.pi * np.outer(k, r[start:stop]))
    bessel.setflags(write=False)
    return r, bessel
