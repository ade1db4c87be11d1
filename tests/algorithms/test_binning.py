"""Integer Fourier binning: frequencies below the new Nyquist survive exactly, those above vanish (no aliasing),
the mean is kept, the pixel spacing is exactly the factor and the centre pixel stays on the same point, for odd
and even sizes alike."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tomoprep.algorithms.binning import bin_images, binning_window

SHAPES_AND_FACTORS = [((48, 64), 2), ((45, 38), 2), ((37, 51), 3), ((40, 44), 4), ((30, 27), 5), ((33, 33), 1)]


def _wave(shape: tuple[int, int], factor: int, cycles_yx: tuple[float, float], phase: float) -> np.ndarray:
    """A plane wave with ``cycles`` periods per binned window (``factor · (n // factor)`` pixels), the phase taken at
    the centre pixel ``n // 2``: periodic over the window, so Fourier cropping must keep it exactly."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    period_y, period_x = factor * (shape[0] // factor), factor * (shape[1] // factor)
    arg = cycles_yx[0] * (y - shape[0] // 2) / period_y + cycles_yx[1] * (x - shape[1] // 2) / period_x
    return np.cos(2 * math.pi * arg + phase)


@pytest.mark.parametrize(("shape", "factor"), SHAPES_AND_FACTORS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_band_limited_pattern_survives_binning_exactly(shape, factor, seed):
    rng = np.random.default_rng(seed)
    binned_shape = (shape[0] // factor, shape[1] // factor)
    top_y, top_x = (binned_shape[0] - 1) // 2, (binned_shape[1] - 1) // 2  # below the new Nyquist
    cycles = (int(rng.integers(0, top_y + 1)), int(rng.integers(1, top_x + 1)))
    phase = float(rng.uniform(0, 2 * math.pi))
    image = 3.0 + _wave(shape, factor, cycles, phase)
    binned = bin_images(torch.from_numpy(image)[None], factor)[0].double().numpy()
    assert binned.shape == binned_shape
    # Binned pixel j lies on input pixel n // 2 + factor · (j − M // 2): the same wave sampled every factor pixels.
    j, i = np.mgrid[: binned_shape[0], : binned_shape[1]]
    arg = (
        cycles[0] * (j - binned_shape[0] // 2) / binned_shape[0]
        + cycles[1] * (i - binned_shape[1] // 2) / binned_shape[1]
    )
    expected = 3.0 + np.cos(2 * math.pi * arg + phase)
    np.testing.assert_allclose(binned, expected, atol=2e-5)


@pytest.mark.parametrize(("shape", "factor"), [s for s in SHAPES_AND_FACTORS if s[1] > 1])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_content_above_the_new_nyquist_is_removed_not_aliased(shape, factor, seed):
    rng = np.random.default_rng(seed)
    binned_shape = (shape[0] // factor, shape[1] // factor)
    # Along x, between the new Nyquist and the old one: plain subsampling would fold it into the band.
    m = binned_shape[1]
    folding = [c for c in range(m // 2 + 1, (factor * m) // 2) if c % m not in (0, m / 2)]  # not onto 0 or Nyquist
    cycles_x = int(rng.choice(folding))
    image = _wave(shape, factor, (0, cycles_x), float(rng.uniform(0, 2 * math.pi)))
    binned = bin_images(torch.from_numpy(image), factor).double().numpy()
    assert np.abs(binned).max() < 1e-5
    subsampled = image[shape[0] // 2 % factor :: factor, shape[1] // 2 % factor :: factor]
    assert subsampled.std() > 0.5  # what binning without the crop would have left: the wave, folded into the band


@pytest.mark.parametrize(("shape", "factor"), SHAPES_AND_FACTORS)
def test_the_mean_is_kept_and_the_centre_stays_put(shape, factor):
    rng = np.random.default_rng(7)
    noise = torch.from_numpy(rng.normal(5.0, 1.0, size=(3, *shape)))
    binned = bin_images(noise, factor)
    (y0, my, _), (x0, mx, _) = binning_window(shape[0], factor), binning_window(shape[1], factor)
    window = noise[..., y0 : y0 + factor * my, x0 : x0 + factor * mx]  # the pixels binned (all but the remainder)
    torch.testing.assert_close(binned.double().mean(dim=(-2, -1)), window.mean(dim=(-2, -1)), atol=1e-5, rtol=0)
    # A smooth blob on the input's centre pixel peaks on the binned centre pixel.
    y, x = np.mgrid[: shape[0], : shape[1]]
    blob = np.exp(-((y - shape[0] // 2) ** 2 + (x - shape[1] // 2) ** 2) / (2 * (1.5 * factor) ** 2))
    small = bin_images(torch.from_numpy(blob), factor).double().numpy()
    weights = np.clip(small, 0, None) ** 4
    j, i = np.mgrid[: small.shape[0], : small.shape[1]]
    centroid = (float((weights * j).sum() / weights.sum()), float((weights * i).sum() / weights.sum()))
    assert centroid == pytest.approx((small.shape[0] // 2, small.shape[1] // 2), abs=0.02)


def test_bad_factors_are_refused():
    with pytest.raises(ValueError, match="cannot bin 3 pixels by 4"):
        bin_images(torch.zeros(3, 8), 4)
    with pytest.raises(TypeError, match="integer"):
        bin_images(torch.zeros(8, 8), 2.5)  # type: ignore[arg-type]
