"""Brightness of the tilts of a series: the robust Beer–Lambert trend and each image's dark part."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tomoprep.algorithms.brightness import (
    MIN_TILTS_FOR_TREND,
    beer_lambert_fit,
    dark_fractions,
    gaussian_lowpass,
    is_absolute,
    mean_ratios,
)

TILTS_DEG = np.arange(-60.0, 61.0, 3.0)


def _series_means(offset_deg: float, b: float, seed: int, noise: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    log_means = 3.0 - b / np.cos(np.radians(TILTS_DEG - offset_deg)) + noise * rng.standard_normal(TILTS_DEG.size)
    return np.exp(log_means)


@pytest.mark.parametrize(("offset_deg", "b", "seed"), [(0.0, 0.4, 0), (-12.0, 0.8, 1), (7.0, 0.25, 2), (15, 0.6, 3)])
def test_the_trend_and_the_slab_offset_are_recovered_despite_dark_tilts(offset_deg: float, b: float, seed: int) -> None:
    means = _series_means(offset_deg, b, seed)
    dark = np.random.default_rng(seed).choice(TILTS_DEG.size, 4, replace=False)
    means[dark] *= 0.3
    a_fit, b_fit, offset_fit = beer_lambert_fit(TILTS_DEG, np.log(means))
    assert b_fit == pytest.approx(b, rel=0.15) and a_fit == pytest.approx(3.0, abs=0.15)
    # A whole-degree grid of offsets: within 2° where the slope is this steep.
    assert abs(offset_fit - offset_deg) <= 2.0
    ratios = mean_ratios(means, TILTS_DEG)
    assert np.all(ratios[dark] < 0.4)
    assert np.all(np.abs(np.delete(ratios, dark) - 1.0) < 0.05)


def test_tilts_given_more_dose_are_not_taken_for_brighter() -> None:
    means = _series_means(0.0, 0.5, 4)
    doses = np.ones_like(means)
    doses[::5] = 2.0
    means[::5] *= 2.0
    ratios = mean_ratios(means, TILTS_DEG, doses)
    assert np.all(np.abs(ratios - 1.0) < 0.05)


def test_few_tilts_give_the_median_and_no_trend() -> None:
    log_means = np.log(np.array([10.0, 11.0, 9.0, 10.5]))
    a, b, offset = beer_lambert_fit(np.array([-6.0, -3.0, 0.0, 3.0]), log_means)
    assert (a, b, offset) == (pytest.approx(float(np.median(log_means))), 0.0, 0.0)
    assert log_means.size < MIN_TILTS_FOR_TREND


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_dark_half_is_half_dark_in_counts_and_in_normalised_images(seed: int) -> None:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(20.0, (2, 128, 128)).astype(np.float32)
    counts[1, :, :64] = rng.poisson(1.0, (128, 64))  # a grid bar's shadow over the left half
    images = torch.from_numpy(counts)
    assert is_absolute(images)
    fractions = dark_fractions(images, absolute=True, dark_level=0.3)
    assert fractions[0] < 0.02
    assert fractions[1] == pytest.approx(0.5, abs=0.05)
    normalised = (images - images.mean(dim=(1, 2), keepdim=True)) / images.std(dim=(1, 2), keepdim=True)
    assert not is_absolute(normalised)
    fractions = dark_fractions(normalised, absolute=False, dark_level=0.3)
    assert fractions[0] < 0.02
    assert fractions[1] == pytest.approx(0.5, abs=0.05)


def test_the_lowpass_keeps_the_mean_and_smooths() -> None:
    images = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 64, 80)).astype(np.float32)) + 5.0
    smooth = gaussian_lowpass(images, 3.0)
    assert smooth.shape == images.shape
    assert float(smooth.mean()) == pytest.approx(float(images.mean()), abs=0.02)
    assert float(smooth.std()) < 0.2 * float(images.std())
