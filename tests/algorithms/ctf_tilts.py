"""A small tilt-image generator for the CTF tests, written apart from ``tomoprep.simulate``.

Its own specimen (Gaussian blobs on a coloured-noise texture, in depth layers through a flat slab), its own
wavelength and CTF code, its own defocus gradient (per pixel, by interpolating between images made at defoci
100 Å apart) and its own noise (Poisson counts). Conventions are RELION's, written out here independently:
defocus positive for underfocus, CTF ``-sin(χ + asin A)``, astigmatism angle from image X towards image Y,
a point at depth ``z'`` imaged with defocus ``centre + hand · z'``, and for a flat slab through the specimen
centre ``z' = -tan(tilt) (p · r) + z_slab / cos(tilt)`` with ``p = (cos axis, sin axis)``, ``r`` from pixel
``N // 2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

HC_EV_ANGSTROM = 12398.419843
ELECTRON_REST_EV = 510998.95
_DEFOCUS_STEP_ANGSTROM = 100.0


def wavelength_angstrom(voltage_kv: float) -> float:
    """Relativistic wavelength ``hc / sqrt(E (E + 2 m c²))``, Å."""
    energy = voltage_kv * 1e3
    return HC_EV_ANGSTROM / math.sqrt(energy * (energy + 2.0 * ELECTRON_REST_EV))


@dataclass(frozen=True)
class TiltTruth:
    """What one generated tilt was made with (Å, degrees)."""

    defocus_u_angstrom: float
    defocus_v_angstrom: float
    astigmatism_angle_deg: float
    tilt_deg: float
    axis_deg: float
    hand: int
    phase_shift_deg: float = 0.0

    @property
    def defocus_angstrom(self) -> float:
        return 0.5 * (self.defocus_u_angstrom + self.defocus_v_angstrom)


def _texture(rng: np.random.Generator, shape: tuple[int, int], pixel: float, rms_rad: float) -> np.ndarray:
    """Projected phase of one layer: coloured noise plus blobs of 10–40 Å, ``rms_rad`` overall."""
    ky = np.fft.fftfreq(shape[0], d=pixel)[:, None]
    kx = np.fft.rfftfreq(shape[1], d=pixel)[None, :]
    colour = 1.0 / np.sqrt(1.0 + (kx * kx + ky * ky) / 0.05**2) ** 0.5
    noise = np.fft.irfft2(np.fft.rfft2(rng.standard_normal(shape)) * colour, s=shape)
    blobs = np.zeros(shape)
    n_blobs = int(shape[0] * shape[1] * pixel**2 / 4e4)
    sigma_px = rng.uniform(10.0, 40.0, n_blobs) / pixel
    ys, xs = rng.uniform(0, shape[0], n_blobs), rng.uniform(0, shape[1], n_blobs)
    grid_y, grid_x = np.mgrid[0 : shape[0], 0 : shape[1]]
    for y, x, s in zip(ys, xs, sigma_px, strict=True):
        window = (slice(max(int(y - 4 * s), 0), int(y + 4 * s) + 1), slice(max(int(x - 4 * s), 0), int(x + 4 * s) + 1))
        blobs[window] += np.exp(-((grid_y[window] - y) ** 2 + (grid_x[window] - x) ** 2) / (2 * s * s))
    phase = noise / noise.std() + 0.5 * blobs / max(blobs.std(), 1e-9)
    return rms_rad * (phase - phase.mean()) / phase.std()


def _ctf(shape, pixel, truth: TiltTruth, defocus_offset: float, voltage_kv, cs_mm, amplitude) -> np.ndarray:
    ky = np.fft.fftfreq(shape[0], d=pixel)[:, None]
    kx = np.fft.rfftfreq(shape[1], d=pixel)[None, :]
    k2 = kx * kx + ky * ky
    theta = np.arctan2(ky, kx)
    mean = truth.defocus_angstrom + defocus_offset
    half = 0.5 * (truth.defocus_u_angstrom - truth.defocus_v_angstrom)
    defocus = mean + half * np.cos(2.0 * (theta - math.radians(truth.astigmatism_angle_deg)))
    lam = wavelength_angstrom(voltage_kv)
    chi = math.pi * lam * defocus * k2 - 0.5 * math.pi * cs_mm * 1e7 * lam**3 * k2 * k2
    return -np.sin(chi + math.asin(amplitude) + math.radians(truth.phase_shift_deg))


def generate_tilt(
    truth: TiltTruth,
    *,
    shape: tuple[int, int] = (512, 512),
    pixel_spacing_angstrom: float = 2.0,
    dose_e_per_angstrom2: float = 3.0,
    thickness_angstrom: float = 600.0,
    n_layers: int = 3,
    layer_rms_rad: float = 0.06,
    b_factor_angstrom2: float = 60.0,
    voltage_kv: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
    seed: int = 0,
) -> np.ndarray:
    """A ``shape`` tilt image of counts (float32), made with ``truth``'s CTF at the slab's mid-plane centre."""
    rng = np.random.default_rng(seed)
    pixel = pixel_spacing_angstrom
    ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx]
    a, t = math.radians(truth.axis_deg), math.radians(truth.tilt_deg)
    across = (math.cos(a) * (x - nx // 2) + math.sin(a) * (y - ny // 2)) * pixel
    ky = np.fft.fftfreq(ny, d=pixel)[:, None]
    kx = np.fft.rfftfreq(nx, d=pixel)[None, :]
    envelope = np.exp(-b_factor_angstrom2 * (kx * kx + ky * ky) / 4.0)
    contrast = np.zeros(shape)
    layers = (np.arange(n_layers) + 0.5) / n_layers - 0.5 if n_layers > 1 else np.zeros(1)
    for z_slab in layers * thickness_angstrom:
        spectrum = np.fft.rfft2(_texture(rng, shape, pixel, layer_rms_rad)) * envelope
        depth = -math.tan(t) * across + z_slab / math.cos(t)
        offset = truth.hand * depth
        low = math.floor(offset.min() / _DEFOCUS_STEP_ANGSTROM)
        high = math.ceil(offset.max() / _DEFOCUS_STEP_ANGSTROM)
        optics = (voltage_kv, cs_mm, amplitude_contrast)
        images = [np.fft.irfft2(spectrum * _ctf(shape, pixel, truth, j * _DEFOCUS_STEP_ANGSTROM, *optics), s=shape)
                  for j in range(low, high + 1)]  # fmt: skip
        position = offset / _DEFOCUS_STEP_ANGSTROM - low
        below = np.clip(np.floor(position).astype(int), 0, len(images) - 1)
        above = np.clip(below + 1, 0, len(images) - 1)
        fraction = position - below
        stack = np.stack(images)
        contrast += (1 - fraction) * np.take_along_axis(stack, below[None], 0)[0]
        contrast += fraction * np.take_along_axis(stack, above[None], 0)[0]
    intensity = np.clip(1.0 + 2.0 * contrast, 0.0, None)
    return rng.poisson(intensity * dose_e_per_angstrom2 * pixel * pixel).astype(np.float32)
