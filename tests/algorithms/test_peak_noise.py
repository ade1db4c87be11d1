"""The precision of each frame's correlation peak, predicted from the frames, against the scatter of the shifts.

Frames are a band-limited random texture (10 % contrast, correlation length 2 px) moved along a known trajectory
by exact Fourier shifts, with counting noise (Poisson, equal doses) or detector noise of an integrating camera
(Gaussian, coloured by an MTF-like envelope, one frame twice as noisy as the others). The shifts are measured
without smoothing, so that each frame's error is its own peak's.
"""

from __future__ import annotations

import math

import pytest
import torch

from tomoprep.algorithms.fourier import fourier_shift, rfft_squared_frequencies
from tomoprep.algorithms.motion import measure_global_motion

MARGIN = 24


def texture(shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(shape, generator=generator)
    field = torch.fft.irfft2(
        torch.fft.rfft2(noise) * torch.exp(-8 * math.pi**2 * rfft_squared_frequencies(shape)), s=shape
    )
    return 1.0 + 0.1 * field / field.std()


def trajectory(n: int, generator: torch.Generator) -> torch.Tensor:
    """Drift plus a random walk of 0.5 px per frame, ``(n, 2)``."""
    walk = torch.cumsum(0.35 * torch.randn(n, 2, generator=generator), dim=0)
    return walk + torch.tensor([0.2, -0.3]) * torch.arange(n)[:, None]


def clean_frames(size: int, shifts: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    big = texture((size + 2 * MARGIN, size + 2 * MARGIN), generator)
    return fourier_shift(big.expand(len(shifts), *big.shape), shifts)[:, MARGIN:-MARGIN, MARGIN:-MARGIN]


def counting(size: int, counts_per_px: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    truth = trajectory(10, generator)
    return torch.poisson(clean_frames(size, truth, generator) * counts_per_px, generator=generator), truth


def integrating(size: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames of an integrating camera: coloured Gaussian noise, frame 0 twice as noisy as the others."""
    generator = torch.Generator().manual_seed(seed)
    truth = trajectory(10, generator)
    clean = 100.0 * clean_frames(size, truth, generator)
    white = torch.randn(clean.shape, generator=generator)
    mtf = torch.exp(-rfft_squared_frequencies((size, size)) / (2 * 0.25**2))  # the detector's blur
    coloured = torch.fft.irfft2(torch.fft.rfft2(white) * mtf, s=(size, size))
    amplitude = torch.full((10, 1, 1), noise)
    amplitude[0] *= 2
    return clean + amplitude * coloured / coloured.std(), truth


def scatter_over_predicted(cases: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, list[torch.Tensor]]:
    """RMS over all frames and cases of (measured - true shift) / predicted σ, and the σ of each case."""
    ratios, sigmas = [], []
    for frames, truth in cases:
        motion = measure_global_motion(frames, smoothing=0.0)
        assert not bool(motion.interpolated.any())
        error = motion.shifts_px - truth
        ratios.append((error - error.mean(dim=0)) / motion.sigma_px)
        sigmas.append(motion.sigma_px)
    # removing the mean over 10 frames leaves 0.9 of the variance
    return float(torch.cat(ratios).square().mean().sqrt()) / math.sqrt(0.9), sigmas


def test_predicted_precision_matches_the_scatter_of_counting_frames() -> None:
    ratio, sigmas = scatter_over_predicted([counting(192, 3.0, seed) for seed in range(5)])
    assert 0.75 < ratio < 1.3, ratio  # measured 1.02
    assert 0.03 < float(torch.cat(sigmas).median()) < 0.2


@pytest.mark.slow
@pytest.mark.parametrize(("counts_per_px", "typical_sigma_px"), [(0.5, 0.15), (4.0, 0.035), (30.0, 0.012)])
def test_predicted_precision_holds_from_low_to_high_dose(counts_per_px: float, typical_sigma_px: float) -> None:
    ratio, sigmas = scatter_over_predicted([counting(512, counts_per_px, seed) for seed in range(8)])
    assert 0.8 < ratio < 1.25, ratio  # measured 0.99, 0.99, 1.12
    assert 0.7 < float(torch.cat(sigmas).median()) / typical_sigma_px < 1.4


@pytest.mark.slow
def test_predicted_precision_holds_for_an_integrating_camera_with_unequal_frames() -> None:
    ratio, sigmas = scatter_over_predicted([integrating(512, 30.0, seed) for seed in range(8)])
    assert 0.8 < ratio < 1.25, ratio  # measured 1.13 (σ 0.04 px)
    noisier = torch.stack([s[0] / s[1:].mean(dim=0) for s in sigmas]).mean()
    assert 1.6 < float(noisier) < 2.4  # frame 0 has twice the noise: about twice the σ (measured 1.84)


@pytest.mark.parametrize("size", [96, 128])
def test_the_noise_leaves_the_spectra_it_is_given_unchanged(size: int) -> None:
    from tomoprep.algorithms.peak_noise import peak_noise

    generator = torch.Generator().manual_seed(size)
    spectra = torch.fft.rfft2(torch.randn((6, size, size), generator=generator))
    others = spectra.sum(dim=0, keepdim=True) - spectra
    copies = spectra.clone(), others.clone()
    peak_noise(spectra, others, shape_yx=(size, size), weight=torch.ones(size, size // 2 + 1))
    assert torch.equal(spectra, copies[0]) and torch.equal(others, copies[1])
