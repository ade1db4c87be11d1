"""Trajectory fits to shift measurements of known precision: simulated trajectories, Gaussian measurement noise."""

from __future__ import annotations

import math

import torch

from tomoprep.algorithms.trajectory import fit_trajectory, smooth_trajectory


def random_walk(n: int, step_px: float, generator: torch.Generator) -> torch.Tensor:
    """``(n, 2)`` steady drift plus a random walk whose steps have an RMS length of ``step_px``."""
    steps = torch.randn(n, 2, generator=generator, dtype=torch.float64) * step_px / math.sqrt(2)
    return torch.cumsum(steps, dim=0) + torch.tensor([0.3, -0.5], dtype=torch.float64) * torch.arange(n)[:, None]


def settling(n: int) -> torch.Tensor:
    """``(n, 2)`` a fast start (time constant 1.5 frames, ≈ 4 px) and a slow drift: smooth."""
    t = torch.arange(n, dtype=torch.float64)[:, None]
    return torch.tensor([2.5, -3.0], dtype=torch.float64) * (1 - torch.exp(-t / 1.5)) + 0.1 * t


def rms_px(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    error = estimate - truth
    return float((error - error.mean(dim=0)).square().sum(dim=-1).mean().sqrt())


def mean_error(trajectory: str, sigma_px: float, trials: int = 40) -> tuple[float, float]:
    """Mean RMS error of the fit and of the measurements themselves over ``trials`` draws (10 frames)."""
    generator = torch.Generator().manual_seed(1)
    fitted, raw = [], []
    for _ in range(trials):
        truth = random_walk(10, 0.6, generator) if trajectory == "walk" else settling(10)
        measured = truth + sigma_px * torch.randn(10, 2, generator=generator, dtype=torch.float64)
        fit = fit_trajectory(measured, torch.full_like(measured, sigma_px))
        fitted.append(rms_px(fit.shifts_px, truth))
        raw.append(rms_px(measured, truth))
    return sum(fitted) / trials, sum(raw) / trials


def test_precise_measurements_of_a_jittery_trajectory_are_followed() -> None:
    fitted, raw = mean_error("walk", 0.01)
    assert fitted <= 1.05 * raw  # measured: the fit is as good as the measurements (a smoother damps the jitter)
    assert smooth_trajectory(random_walk(10, 0.6, torch.Generator().manual_seed(1)), smoothing=3.0).shape == (10, 2)


def test_noisy_measurements_of_a_smooth_trajectory_are_smoothed() -> None:
    fitted, raw = mean_error("settling", 0.1)
    assert fitted <= 0.75 * raw  # measured 0.67


def test_noisy_measurements_of_a_jittery_trajectory_are_not_made_worse() -> None:
    fitted, raw = mean_error("walk", 0.1)
    assert fitted <= raw  # the jitter (0.6 px per frame) is larger than the noise: little to smooth


def test_the_prior_scales_follow_the_evidence() -> None:
    generator = torch.Generator().manual_seed(2)
    truth = random_walk(20, 0.8, generator)
    measured = truth + 0.01 * torch.randn(20, 2, generator=generator, dtype=torch.float64)
    fit = fit_trajectory(measured, torch.full_like(measured, 0.01))
    assert 0.1 < fit.random_walk_px2 < 1.0  # per-axis step variance 0.32 px²
    smooth = fit_trajectory(settling(20), torch.full((20, 2), 0.01, dtype=torch.float64))
    assert smooth.random_walk_px2 < 1e-3 < smooth.smooth_px2


def test_frames_without_a_measurement_are_interpolated_by_the_model() -> None:
    t = torch.arange(12, dtype=torch.float64)[:, None]
    line = torch.cat([0.5 * t, -0.2 * t + 1.0], dim=1)
    sigma = torch.full_like(line, 0.01)
    sigma[[0, 5, 6]] = math.inf
    corrupted = line.clone()
    corrupted[[0, 5, 6]] = 50.0  # a peak locked onto noise: must not matter
    fitted = fit_trajectory(corrupted, sigma).shifts_px
    assert torch.allclose(fitted, line, atol=0.01)
    assert fitted.dtype == line.dtype and fitted.shape == line.shape


def test_few_or_no_measurements_give_a_polynomial_or_nothing() -> None:
    t = torch.arange(8, dtype=torch.float32)[:, None].expand(8, 2)
    sigma = torch.full((8, 2), math.inf)
    sigma[[1, 4]] = 0.05
    assert torch.allclose(fit_trajectory(2 * t, sigma).shifts_px, 2 * t, atol=1e-4)  # a line through two frames
    nothing = fit_trajectory(2 * t, torch.full((8, 2), math.inf)).shifts_px
    assert torch.equal(nothing, torch.zeros(8, 2))


def test_series_fitted_together_share_the_prior_but_not_their_measurements() -> None:
    generator = torch.Generator().manual_seed(3)
    truths = torch.stack([random_walk(10, 0.6, generator) for _ in range(3)])
    measured = truths + 0.01 * torch.randn(truths.shape, generator=generator, dtype=torch.float64)
    sigma = torch.full_like(measured, 0.01)
    sigma[1, 4] = math.inf
    fitted = fit_trajectory(measured, sigma).shifts_px
    assert fitted.shape == (3, 10, 2)
    error = fitted - truths
    error = error - error.mean(dim=1, keepdim=True)
    observed = torch.isfinite(sigma).all(dim=-1)
    assert float(error[observed].abs().max()) < 0.05  # each series follows its own precise measurements
    # the missing frame of series 1 comes from its neighbours (a random walk's bridge: σ ≈ 0.3 px per axis)
    assert float(error[1, 4].abs().max()) < 1.0
