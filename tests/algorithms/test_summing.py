"""Aligned, dose-weighted sums: frames moved by known shifts sum back to the specimen, and each frequency is
weighted by Grant & Grigorieff's exposure filter as computed here from its published formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tomoprep.algorithms.summing import DoseWeighting, align_and_sum

SHAPE = (48, 64)


def _moved_frames(image: np.ndarray, shifts_yx: np.ndarray) -> torch.Tensor:
    """Frames ``(n, y, x)``: ``image`` moved by each shift ``(dy, dx)`` exactly (a Fourier phase ramp)."""
    ky = np.fft.fftfreq(image.shape[0])[:, None]
    kx = np.fft.rfftfreq(image.shape[1])[None, :]
    spectrum = np.fft.rfft2(image)
    frames = [np.fft.irfft2(spectrum * np.exp(-2j * math.pi * (ky * dy + kx * dx)), s=image.shape)
              for dy, dx in shifts_yx]  # fmt: skip
    return torch.from_numpy(np.array(frames)).float()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frames_moved_by_known_shifts_sum_back_to_the_image(seed):
    rng = np.random.default_rng(seed)
    # Band-limited: a sub-pixel shift by a phase ramp is a translation only without content at Nyquist.
    k2 = np.fft.fftfreq(SHAPE[0])[:, None] ** 2 + np.fft.rfftfreq(SHAPE[1])[None, :] ** 2
    image = np.fft.irfft2(np.fft.rfft2(rng.normal(size=SHAPE)) * np.exp(-2 * (math.pi * 1.5) ** 2 * k2), s=SHAPE)
    shifts = rng.uniform(-4, 4, (7, 2))
    sums = align_and_sum(_moved_frames(image, shifts), torch.from_numpy(shifts).float())
    scale = float(np.abs(image).max())
    assert np.abs(sums.sum.numpy() / 7 - image).max() < 1e-4 * scale
    assert np.abs((sums.odd + sums.even).numpy() - sums.sum.numpy()).max() < 1e-4 * scale
    unaligned = align_and_sum(_moved_frames(image, shifts), torch.zeros(7, 2), split_odd_even=False)
    assert np.abs(unaligned.sum.numpy() / 7 - image).max() > 0.3 * scale


def _critical_exposure(k_per_angstrom: float) -> float:
    """Grant & Grigorieff (2015), 300 kV: ``0.245 k^-1.665 + 2.81`` e⁻/Å²."""
    return 0.245 * k_per_angstrom**-1.665 + 2.81


@pytest.mark.parametrize("normalise", [True, False])
def test_dose_weighting_of_one_frequency_follows_the_exposure_filter(normalise):
    pixel_angstrom, cycles_per_px = 1.5, 12 / SHAPE[1]
    x = np.arange(SHAPE[1])
    image = np.tile(np.cos(2 * math.pi * cycles_per_px * x), (SHAPE[0], 1))
    doses = [0.8, 1.2, 1.0, 2.0, 0.5]
    pre_exposure = 20.0
    frames = _moved_frames(image, np.zeros((len(doses), 2)))
    weighting = DoseWeighting(pixel_angstrom, doses, pre_exposure_e_per_angstrom2=pre_exposure, normalise=normalise)
    sums = align_and_sum(frames, torch.zeros(len(doses), 2), dose_weighting=weighting, split_odd_even=False)
    # Each frame's weight: the attenuation exp(-N / 2 Ne) averaged over the exposure N it received.
    critical = _critical_exposure(cycles_per_px / pixel_angstrom)
    edges = pre_exposure + np.concatenate([[0.0], np.cumsum(doses)])
    weights = (
        2 * critical / np.array(doses) * (np.exp(-edges[:-1] / (2 * critical)) - np.exp(-edges[1:] / (2 * critical)))
    )
    # Normalised: relative to the plain sum's mean (Σ w sqrt(n / Σ w²)); else the absolute attenuation Σ w.
    expected = weights.sum() * (math.sqrt(len(doses) / (weights**2).sum()) if normalise else 1.0)
    amplitude = float(sums.dose_weighted.double().mean(dim=0) @ torch.from_numpy(image[0])) / float(image[0] @ image[0])
    assert amplitude == pytest.approx(expected, rel=2e-3)
    assert float(sums.sum.double().mean(dim=0) @ torch.from_numpy(image[0])) / float(image[0] @ image[0]) == (
        pytest.approx(len(doses), rel=1e-4)
    )
