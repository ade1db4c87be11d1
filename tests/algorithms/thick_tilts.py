"""Tilt images of a thick, tilted slab of amorphous ice, for the thickness and sample-tilt tests.

Written apart from the estimator (:mod:`tomoprep.algorithms.ctf_thickness`, :mod:`.ctf_sample_tilt`): the slab
is a stack of independent white-noise phase layers every ``layer_step`` Å of depth along the beam, each imaged
with its own CTF. At image point ``r`` (Å from pixel ``N // 2``) the slab's mid-plane lies at depth
``-tan(tilt) (p · r)`` (``p = (cos axis, sin axis)``) and the slab covers ``thickness / cos(tilt)`` of depth
around it; a layer at depth ``z`` is imaged with defocus ``centre + hand · z`` and adds power at the pixel in
proportion to the fraction of its step inside the slab there. The layers' images are summed, so a pixel's power
spectrum is the mean of the CTF's power over the depths it sees: nothing of the estimator's ``sinc`` model is
written here.
Conventions as ``ctf_tilts.py`` (RELION's); Poisson counts at the dose.
"""

from __future__ import annotations

import math

import numpy as np
from ctf_tilts import TiltTruth, wavelength_angstrom

#: Depth between the independent layers, Å: well below ``1 / (λ k²)`` at Nyquist of 1 Å pixels (200 Å).
LAYER_STEP_ANGSTROM = 60.0


def _phase_and_envelope(shape, pixel, truth: TiltTruth, voltage_kv, cs_mm, amplitude, b_factor):
    """``χ + asin A`` at the centre defocus, ``π λ k²`` (the phase per Å of defocus) and the B envelope."""
    ky = np.fft.fftfreq(shape[0], d=pixel)[:, None]
    kx = np.fft.rfftfreq(shape[1], d=pixel)[None, :]
    k2 = kx * kx + ky * ky
    direction = np.arctan2(ky, kx)
    half = 0.5 * (truth.defocus_u_angstrom - truth.defocus_v_angstrom)
    defocus = truth.defocus_angstrom + half * np.cos(2.0 * (direction - math.radians(truth.astigmatism_angle_deg)))
    lam = wavelength_angstrom(voltage_kv)
    chi = math.pi * lam * defocus * k2 - 0.5 * math.pi * cs_mm * 1e7 * lam**3 * k2 * k2
    return chi + math.asin(amplitude), math.pi * lam * k2, np.exp(-b_factor * k2 / 4.0)


def thick_tilt(
    truth: TiltTruth,
    *,
    thickness_angstrom: float,
    shape: tuple[int, int] = (512, 512),
    pixel_spacing_angstrom: float = 1.5,
    dose_e_per_angstrom2: float = 4.0,
    phase_rms_per_1000_angstrom: float = 0.12,
    b_factor_angstrom2: float = 20.0,
    voltage_kv: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
    seed: int = 0,
    layer_step_angstrom: float = LAYER_STEP_ANGSTROM,
) -> np.ndarray:
    """A ``shape`` image of counts (float32) of a slab ``thickness_angstrom`` thick (along its normal) at
    ``truth.tilt_deg`` about ``truth.axis_deg``, centre defocus (mid-plane, image centre) ``truth``'s; layers every
    ``layer_step_angstrom`` of depth (a coarser step is faster where the thickness is not what is tested)."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    pixel = pixel_spacing_angstrom
    y, x = np.mgrid[0:ny, 0:nx]
    a, t = math.radians(truth.axis_deg), math.radians(truth.tilt_deg)
    across = (math.cos(a) * (x - nx // 2) + math.sin(a) * (y - ny // 2)) * pixel
    middle = -math.tan(t) * across
    half_path = 0.5 * thickness_angstrom / math.cos(t)
    step = layer_step_angstrom
    layer_rms = phase_rms_per_1000_angstrom * math.sqrt(step / 1000.0)
    first = math.floor((middle.min() - half_path) / step)
    last = math.ceil((middle.max() + half_path) / step)
    contrast = np.zeros(shape)
    phase0, per_angstrom, envelope = _phase_and_envelope(shape, pixel, truth, voltage_kv, cs_mm, amplitude_contrast,
                                                         b_factor_angstrom2)  # fmt: skip
    # White noise drawn in Fourier space (the rfft2 of unit white noise has variance ny·nx per coefficient).
    spectral_rms = layer_rms * math.sqrt(ny * nx / 2.0)
    for j in range(first, last + 1):
        z = j * step
        # The part of this layer's step [z - step/2, z + step/2] inside the slab [middle ± half_path].
        inside = np.clip(np.minimum(z + step / 2, middle + half_path) - np.maximum(z - step / 2, middle - half_path),
                         0.0, step) / step  # fmt: skip
        if not inside.any():
            continue
        noise = rng.standard_normal(phase0.shape) + 1j * rng.standard_normal(phase0.shape)
        ctf = -np.sin(phase0 + per_angstrom * (truth.hand * z)) * envelope
        image = np.fft.irfft2(noise * (spectral_rms * ctf), s=shape)
        contrast += np.sqrt(inside) * image  # power, not amplitude, in proportion to the mass inside
    intensity = np.clip(1.0 + 2.0 * contrast, 0.0, None)
    return rng.poisson(intensity * dose_e_per_angstrom2 * pixel * pixel).astype(np.float32)
