"""The movie of one tilt: beam-induced motion and electron counting on a detector with a gain.

Motion. The specimen moves during an exposure: a fast exponential settling, a slow drift and a little jitter
(:func:`make_tilt_motion`). The exposure is cut into *fractions*; within one the specimen is still. For TIFF
and MRC movies a fraction is a frame; an EER movie spreads each fraction over its raw EER frames. The
trajectory ``d_f`` (Å, x and y) is where the image content of fraction ``f`` sits relative to the expected
image of the tilt: ``frame_f(r) = image(r - d_f)``, and ``d_0 = 0``. An optional smooth local deformation
(:class:`LocalMotion`) adds a displacement that varies across the image and grows during the exposure.

Counting. Fraction ``f`` of a tilt of dose ``D`` (e⁻/Å²) holds Poisson counts with mean
``image × D × (frames in f / frames) × px² × sensitivity``; :mod:`tomoprep.simulate.detector` holds the
sensitivity, the gain reference ``1 / sensitivity`` and the defects. EER: the counts of a fraction are spread
over its raw frames so that no pixel has two events in one raw frame (a pixel with more counts than raw frames
is clipped, the detector's coincidence loss).

Files. :mod:`tomoprep.simulate.movie_files` writes the fractions as EER, TIFF or MRC movies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
import torch
from scipy import ndimage

from tomoprep.simulate.detector import Detector
from tomoprep.simulate.movie_files import (
    EerWriter,
    FrameSink,
    MovieFormat,
    movie_suffix,
    open_movie,
    spread_over_raw_frames,
)

# The movie writers moved to movie_files.py; their names stay importable from here, where callers and tests
# take them.
__all__ = [
    "EER_FRACTIONS",
    "EerWriter",
    "FrameSink",
    "LocalMotion",
    "MovieFormat",
    "MovieResult",
    "TiltMotion",
    "crop_box",
    "fraction_frames",
    "make_tilt_motion",
    "movie_suffix",
    "open_movie",
    "simulate_movie",
    "spread_over_raw_frames",
]

#: EER movies get this many motion fractions when they have enough raw frames.
EER_FRACTIONS = (20, 40)
#: From this many pixels on, torch draws Poisson counts faster than numpy (measured on 512² and 4096² images).
_TORCH_POISSON_PIXELS = 2**22


@dataclass(frozen=True)
class LocalMotion:
    """A smooth deformation: ``u(r, f) = profile[f] · Σ_k a_k cos(2π k_k·r + φ_k)``.

    ``r`` is the position in Å from the image centre pixel ``(N // 2)`` (x, y); the displacement is in Å.

    Attributes
    ----------
    wave_vectors_per_angstrom
        ``(K, 2)`` spatial frequencies (kx, ky) in 1/Å.
    phases_rad
        ``(K,)`` phases in radians.
    amplitudes_angstrom
        ``(K, 2)`` displacement amplitudes (x, y) in Å.
    profile
        ``(n_fractions,)`` growth over the exposure, 0 for the first fraction.
    """

    wave_vectors_per_angstrom: np.ndarray
    phases_rad: np.ndarray
    amplitudes_angstrom: np.ndarray
    profile: np.ndarray

    def displacement_angstrom(self, x_angstrom: np.ndarray, y_angstrom: np.ndarray, fraction: int) -> np.ndarray:
        """``(2, *x.shape)`` displacement (x, y) in Å of fraction ``fraction`` at the given positions."""
        total = np.zeros((2, *np.shape(x_angstrom)))
        for (kx, ky), phase, (ax, ay) in zip(
            self.wave_vectors_per_angstrom, self.phases_rad, self.amplitudes_angstrom, strict=True
        ):
            wave = np.cos(2 * np.pi * (kx * x_angstrom + ky * y_angstrom) + phase)
            total[0] += ax * wave
            total[1] += ay * wave
        return total * self.profile[fraction]


@dataclass(frozen=True)
class TiltMotion:
    """How the specimen moves during one movie.

    Attributes
    ----------
    fraction_frames
        Frames of each fraction (raw EER frames; 1 each for TIFF and MRC movies).
    trajectory_angstrom
        ``(n_fractions, 2)`` position (x, y) in Å of each fraction's image content; the first is (0, 0).
    local
        The local deformation, or ``None``.
    """

    fraction_frames: tuple[int, ...]
    trajectory_angstrom: np.ndarray
    local: LocalMotion | None

    @property
    def n_frames(self) -> int:
        """Frames in the movie file (raw frames for EER)."""
        return sum(self.fraction_frames)


def fraction_frames(n_frames: int, movie_format: MovieFormat) -> tuple[int, ...]:
    """Frames per motion fraction: one each for TIFF/MRC.

    EER: 20-40 equal fractions of at least two raw frames where the count allows (300 frames: 30 of 10),
    else as even as possible, at most 40 fractions and at least two raw frames each (20 frames: 10 of 2).
    """
    if movie_format != "eer":
        return (1,) * n_frames
    low, high = EER_FRACTIONS
    divisors = [n for n in range(high, low - 1, -1) if n_frames % n == 0 and n_frames >= 2 * n]
    n_fractions = divisors[0] if divisors else max(1, min(high, n_frames // 2))
    base, extra = divmod(n_frames, n_fractions)
    return tuple(base + (1 if k < extra else 0) for k in range(n_fractions))


def make_tilt_motion(
    n_frames: int,
    *,
    movie_format: MovieFormat,
    dose_e_per_angstrom2: float,
    tilt_deg: float,
    local_motion_angstrom: float,
    field_of_view_angstrom: float,
    rng: np.random.Generator,
    jitter_step_angstrom: float = 0.15,
) -> TiltMotion:
    """Draw the beam-induced motion of one movie (module notes); larger at high tilt.

    Parameters
    ----------
    n_frames
        Frames of the movie (raw frames for EER).
    movie_format
        Decides the fractions (:func:`fraction_frames`).
    dose_e_per_angstrom2
        Dose of the movie; the motion is a function of the accumulated dose.
    tilt_deg
        Tilt angle; the settling amplitude grows with ``1 + |tilt| / 60°``.
    local_motion_angstrom
        Amplitude of the local deformation in Å; 0 for none.
    field_of_view_angstrom
        Image width in Å; the deformation has a quarter to half a wave across it.
    rng
        Source of the random values.
    jitter_step_angstrom
        Standard deviation in Å of each axis's step of the random-walk jitter from one fraction to the next (the
        stage and specimen jitter about the smooth motion).
    """
    frames = fraction_frames(n_frames, movie_format)
    edges = np.concatenate([[0], np.cumsum(frames)]) / n_frames * dose_e_per_angstrom2
    dose_mid = 0.5 * (edges[:-1] + edges[1:])
    t = dose_mid - dose_mid[0]
    settle_direction, drift_direction = _unit_vectors(rng, 2)
    settle = rng.uniform(4.0, 12.0) * (1.0 + abs(tilt_deg) / 60.0)
    tau = rng.uniform(0.3, 0.8)  # e/Å²: most settling happens within the first electron per Å²
    drift = rng.uniform(0.5, 2.0)  # Å per e/Å²
    jitter = np.cumsum(rng.normal(0.0, jitter_step_angstrom, size=(len(frames), 2)), axis=0)
    trajectory = (
        settle * (1.0 - np.exp(-t / tau))[:, None] * settle_direction
        + drift * t[:, None] * drift_direction
        + jitter
        - jitter[0]
    )
    local = None
    if local_motion_angstrom > 0:
        local = _local_motion(rng, local_motion_angstrom, field_of_view_angstrom, (1.0 - np.exp(-t / tau)))
    return TiltMotion(frames, trajectory, local)


def _unit_vectors(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    angles = rng.uniform(0.0, 2 * np.pi, size=n)
    return [np.array([np.cos(a), np.sin(a)]) for a in angles]


def smooth_deformation(rng: np.random.Generator, amplitude_angstrom: float, width_angstrom: float) -> LocalMotion:
    """A static smooth deformation (one fraction, profile 1) of a field ``width_angstrom`` wide."""
    return _local_motion(rng, amplitude_angstrom, width_angstrom, np.ones(1))


def deform(image: np.ndarray, deformation: LocalMotion, *, pixel_spacing_angstrom: float) -> np.ndarray:
    """``image`` (centred on ``N // 2``) with the content at ``r`` moved to ``r + u(r)``: ``out(r) = image(r - u)``."""
    yy, xx = np.indices(image.shape, dtype=np.float32)
    u = deformation.displacement_angstrom(
        (xx - image.shape[1] // 2) * pixel_spacing_angstrom, (yy - image.shape[0] // 2) * pixel_spacing_angstrom, 0
    )
    yy -= (u[1] / pixel_spacing_angstrom).astype(np.float32)
    xx -= (u[0] / pixel_spacing_angstrom).astype(np.float32)
    return ndimage.map_coordinates(image, np.stack([yy, xx]), order=3, mode="nearest").astype(image.dtype)


def _local_motion(rng: np.random.Generator, amplitude: float, width: float, profile: np.ndarray) -> LocalMotion:
    n_waves = 3
    directions = _unit_vectors(rng, n_waves)
    # Beam-induced doming bends the whole field smoothly: a quarter to half a wave across the image.
    wavelengths = rng.uniform(2.0, 4.0, size=n_waves) * width
    vectors = np.array([d / w for d, w in zip(directions, wavelengths, strict=True)])
    amplitudes = rng.normal(0.0, amplitude / np.sqrt(n_waves), size=(n_waves, 2))
    return LocalMotion(vectors, rng.uniform(0, 2 * np.pi, n_waves), amplitudes, profile / max(profile[-1], 1e-9))


@dataclass
class MovieResult:
    """What one simulated movie produced: its frame sums (gain-corrected, float32 ``(y, x)`` counts).

    ``motion_corrected_sum`` has each fraction shifted back by its trajectory (``None`` unless asked for);
    ``fraction_counts`` the electrons recorded per fraction (sum over all pixels).
    """

    frame_sum: np.ndarray
    motion_corrected_sum: np.ndarray | None
    fraction_counts: list[int]


def simulate_movie(
    sink: FrameSink,
    image: np.ndarray,
    *,
    detector: Detector,
    motion: TiltMotion,
    dose_e_per_angstrom2: float,
    pixel_spacing_angstrom: float,
    rng: np.random.Generator,
    motion_corrected: bool = False,
) -> MovieResult:
    """Count electrons fraction by fraction and hand each fraction to ``sink`` (module notes).

    Parameters
    ----------
    sink
        Movie writer (:func:`open_movie`).
    image
        Expected relative intensity of the tilt, larger than the detector by more than the largest displacement
        on every side, so that moving content enters from outside rather than wrapping around. The detector
        sees its centre: padded pixel ``L // 2`` is detector pixel ``N // 2`` along each axis (:func:`crop_box`).
    detector
        Sensitivity and defects of the camera; its shape is the movie's ``(y, x)``.
    motion
        Fractions and trajectory (:func:`make_tilt_motion`).
    dose_e_per_angstrom2
        Dose of the whole movie.
    pixel_spacing_angstrom
        Pixel spacing in Å.
    rng
        Source of the counting noise.
    motion_corrected
        Also return the sum with each fraction shifted back (for a motion-corrected-like tilt stack).
    """
    spectrum = scipy.fft.rfft2(image.astype(np.float32), workers=-1)
    ny, nx = detector.shape_yx
    electrons_per_pixel = dose_e_per_angstrom2 * pixel_spacing_angstrom**2
    frame_sum = np.zeros((ny, nx), dtype=np.float32)
    corrected = np.zeros((ny, nx // 2 + 1), dtype=np.complex64) if motion_corrected else None
    torch_generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    fraction_counts = []
    for f, frames in enumerate(motion.fraction_frames):
        shift_px = motion.trajectory_angstrom[f] / pixel_spacing_angstrom
        moved = _moved(spectrum, image.shape, shift_px, motion.local, f, pixel_spacing_angstrom, (ny, nx))
        dose_fraction = electrons_per_pixel * frames / motion.n_frames
        mean_counts = detector.expected_counts(moved, electrons_per_pixel=dose_fraction)
        drawn = _poisson(mean_counts, rng, torch_generator)
        counts = sink.add_fraction(drawn, frames, rng)
        fraction_counts.append(int(counts.sum(dtype=np.int64)))
        gain_corrected = detector.correct(counts, fill=dose_fraction * float(np.mean(moved)))
        frame_sum += gain_corrected
        if corrected is not None:
            fraction_spectrum = scipy.fft.rfft2(gain_corrected, workers=-1)
            corrected += _shift_spectrum(fraction_spectrum, (ny, nx), -shift_px)
    sink.close()
    corrected_sum = None if corrected is None else scipy.fft.irfft2(corrected, s=(ny, nx), workers=-1)
    return MovieResult(frame_sum, corrected_sum, fraction_counts)


def _poisson(mean: np.ndarray, rng: np.random.Generator, generator: torch.Generator) -> np.ndarray:
    """Poisson counts (int32) of the same shape; torch's sampler is the faster one only for large images."""
    if mean.size >= _TORCH_POISSON_PIXELS:
        return torch.poisson(torch.from_numpy(mean), generator=generator).to(torch.int32).numpy()
    return rng.poisson(mean).astype(np.int32)


def _shift_spectrum(spectrum: np.ndarray, shape_yx: tuple[int, int], shift_px: np.ndarray) -> np.ndarray:
    """``spectrum`` (rfft layout) times the phase ramp that moves image content by ``shift_px`` = (x, y) pixels.

    The ramp is separable, so it costs two 1-D exponentials instead of one per Fourier pixel.
    """
    ramp_y = np.exp(-2j * np.pi * scipy.fft.fftfreq(shape_yx[0]) * shift_px[1]).astype(np.complex64)
    ramp_x = np.exp(-2j * np.pi * scipy.fft.rfftfreq(shape_yx[1]) * shift_px[0]).astype(np.complex64)
    shifted = spectrum * ramp_y[:, None]
    shifted *= ramp_x[None, :]
    return shifted


def crop_box(padded_yx: tuple[int, ...], detector_yx: tuple[int, int]) -> tuple[int, int]:
    """Top-left corner of the detector in a padded image, centres aligned (``L // 2`` on ``N // 2``)."""
    return padded_yx[0] // 2 - detector_yx[0] // 2, padded_yx[1] // 2 - detector_yx[1] // 2


def _moved(
    spectrum: np.ndarray,
    shape_yx: tuple[int, ...],
    shift_px: np.ndarray,
    local: LocalMotion | None,
    fraction: int,
    pixel_spacing_angstrom: float,
    detector_yx: tuple[int, int],
) -> np.ndarray:
    """The padded image moved by ``shift_px`` (exact Fourier shift) and the local deformation, then cropped."""
    size = (int(shape_yx[0]), int(shape_yx[1]))
    moved = scipy.fft.irfft2(_shift_spectrum(spectrum, size, shift_px), s=size, workers=-1)
    top, left = crop_box(size, detector_yx)
    if local is not None and fraction > 0:
        # Output pixels in padded coordinates; frame(r) = image(r - u): sample where the content came from.
        yy, xx = np.indices(detector_yx, dtype=np.float32)
        yy += top
        xx += left
        u = local.displacement_angstrom(
            (xx - size[1] // 2) * pixel_spacing_angstrom, (yy - size[0] // 2) * pixel_spacing_angstrom, fraction
        )
        yy -= (u[1] / pixel_spacing_angstrom).astype(np.float32)
        xx -= (u[0] / pixel_spacing_angstrom).astype(np.float32)
        cropped = ndimage.map_coordinates(moved, np.stack([yy, xx]), order=1, mode="nearest")
    else:
        cropped = moved[top : top + detector_yx[0], left : left + detector_yx[1]]
    return np.maximum(cropped, np.float32(0.0))
