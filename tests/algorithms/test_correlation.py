"""Cross-correlation maps and their peaks: known sub-pixel shifts between band-limited images come back."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tomoprep.algorithms.correlation import (
    correlation_curvature,
    correlation_near_zero,
    cross_correlation,
    find_peak_subpixel,
    map_derivatives,
    refine_peak,
)

SHAPE = (64, 80)


def _texture_spectrum(seed: int, shape_yx: tuple[int, int] = SHAPE, sigma_px: float = 2.0) -> np.ndarray:
    """Half spectrum of white noise smoothed by a Gaussian of ``sigma_px``: a texture with one broad peak of
    autocorrelation, band-limited well below Nyquist (a shift by a phase ramp is then exactly a translation)."""
    rng = np.random.default_rng(seed)
    ky = np.fft.fftfreq(shape_yx[0])[:, None]
    kx = np.fft.rfftfreq(shape_yx[1])[None, :]
    envelope = np.exp(-2 * (math.pi * sigma_px) ** 2 * (ky**2 + kx**2))
    return np.fft.rfft2(rng.normal(size=shape_yx)) * envelope


def _moved(spectrum: np.ndarray, shift_yx: tuple[float, float], shape_yx: tuple[int, int] = SHAPE) -> np.ndarray:
    """Half spectrum of the image moved by ``shift_yx``: ``a(r) = b(r - s)``."""
    ky = np.fft.fftfreq(shape_yx[0])[:, None]
    kx = np.fft.rfftfreq(shape_yx[1])[None, :]
    return spectrum * np.exp(-2j * math.pi * (ky * shift_yx[0] + kx * shift_yx[1]))


def _pair(seed: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Spectra of an image moved by a random sub-pixel shift (within ±9 px) and of the image, and the shift."""
    rng = np.random.default_rng(100 + seed)
    shift = rng.uniform(-9, 9, 2)
    b = _texture_spectrum(seed)
    a = _moved(b, (shift[0], shift[1]))
    return torch.from_numpy(a).to(torch.complex128), torch.from_numpy(b).to(torch.complex128), shift


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_known_subpixel_shift_is_found_by_the_three_point_fit(seed):
    a, b, shift = _pair(seed)
    cc = cross_correlation(a, b, shape_yx=SHAPE)
    assert cc.shape == SHAPE
    found = find_peak_subpixel(cc).double().numpy()
    # A Gaussian peak sampled at pixels: the parabola through the logarithms is exact up to the texture's noise.
    assert np.abs(found - shift).max() < 0.05


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_newton_refinement_finds_the_maximum_of_the_band_limited_map(seed):
    a, b, shift = _pair(seed)
    start = find_peak_subpixel(cross_correlation(a, b, shape_yx=SHAPE))
    refined, curvature = refine_peak(a * b.conj(), SHAPE, start)
    # For an exact translation the band-limited map is the autocorrelation moved by the shift: its maximum is
    # the shift itself, to rounding.
    assert np.abs(refined.double().numpy() - shift).max() < 1e-3
    assert (curvature > 0).all()


def test_a_small_negative_shift_wraps_to_a_negative_value():
    b = _texture_spectrum(3)
    a = _moved(b, (-0.7, -2.3))
    cc = cross_correlation(torch.from_numpy(a), torch.from_numpy(b), shape_yx=SHAPE)
    assert int(cc.flatten().argmax()) // SHAPE[1] == SHAPE[0] - 1  # the peak sits just below index 0 along y
    found = find_peak_subpixel(cc).double().numpy()
    assert found == pytest.approx([-0.7, -2.3], abs=0.05)


def test_search_radius_ignores_a_higher_peak_beyond_it():
    b = _texture_spectrum(4)
    near, far = _moved(b, (1.2, -0.4)), _moved(b, (20.0, 25.0))
    a = torch.from_numpy(0.6 * near + far)
    cc = cross_correlation(a, torch.from_numpy(b), shape_yx=SHAPE)
    assert find_peak_subpixel(cc).numpy() == pytest.approx([20.0, 25.0], abs=0.1)
    # The weaker peak's position is pulled by the tails of the stronger one: which peak is taken is the point.
    assert find_peak_subpixel(cc, max_shift_px=5).numpy() == pytest.approx([1.2, -0.4], abs=0.3)


def test_correlation_near_zero_equals_the_full_inverse_transform_there():
    a, b, _ = _pair(5)
    cross = a * b.conj()
    full = torch.fft.irfft2(cross, s=SHAPE)
    radius = 3
    near = correlation_near_zero(cross, SHAPE, radius)
    index = torch.arange(-radius, radius + 1) % (2 * radius + 1)
    shifts = torch.arange(-radius, radius + 1)
    expected = full[shifts % SHAPE[0]][:, shifts % SHAPE[1]]
    assert torch.allclose(near[index][:, index], expected, atol=1e-9 * float(full.abs().max()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_derivatives_agree_with_finite_differences(seed):
    a, b, _ = _pair(seed)
    cross = a * b.conj()
    rng = np.random.default_rng(seed)
    at = torch.from_numpy(rng.uniform(-3, 3, 2))
    h = 1e-3
    steps = torch.eye(2, dtype=torch.float64) * h
    values = [map_derivatives(cross, SHAPE, at + d).value for d in (*steps, *(-steps))]
    derivatives = map_derivatives(cross, SHAPE, at)
    numeric_gradient = torch.stack([(values[0] - values[2]) / (2 * h), (values[1] - values[3]) / (2 * h)])
    scale = float(derivatives.value.abs())
    assert torch.allclose(derivatives.gradient, numeric_gradient, atol=1e-5 * scale)
    second_y = (values[0] - 2 * derivatives.value + values[2]) / h**2
    assert float(derivatives.hessian[0, 0]) == pytest.approx(float(second_y), abs=1e-3 * scale)
    curvature = correlation_curvature(cross, SHAPE, at)
    assert curvature.numpy() == pytest.approx((-torch.diagonal(derivatives.hessian)).numpy(), rel=1e-5)
    # At an integer shift the band-limited map is the sampled map.
    whole = torch.fft.irfft2(cross, s=SHAPE)
    assert float(map_derivatives(cross, SHAPE, torch.tensor([2.0, -3.0])).value) == pytest.approx(
        float(whole[2, -3]), abs=1e-9 * scale
    )
