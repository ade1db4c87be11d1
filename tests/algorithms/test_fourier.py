"""Fourier helpers: shifts, peak fitting, Fourier binning, B-factor and dose weights."""

from __future__ import annotations

import math

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
from tomoprep.algorithms.fourier import (
    bfactor_filter,
    binned_shape,
    critical_exposure,
    crop_rfft,
    dose_weights,
    edge_taper,
    exposure_attenuation,
    exposure_weights,
    fourier_bin,
    fourier_crop,
    fourier_shift,
    rfft_squared_frequencies,
    taper_edges,
)


def band_limited(shape: tuple[int, int], *, cutoff_per_px: float = 0.2, seed: int = 0) -> torch.Tensor:
    """White noise low-passed well below Nyquist (so sub-pixel shifts are exact)."""
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    k2 = rfft_squared_frequencies(shape)
    return torch.fft.irfft2(torch.fft.rfft2(noise) * (k2 < cutoff_per_px**2), s=shape)


def test_fourier_shift_moves_content_by_plus_shift_and_round_trips() -> None:
    image = band_limited((96, 80))
    by_integer = fourier_shift(image, torch.tensor([3.0, -5.0]))
    assert torch.allclose(by_integer, torch.roll(image, shifts=(3, -5), dims=(0, 1)), atol=1e-5)
    shift = torch.tensor([2.37, -7.81])
    back = fourier_shift(fourier_shift(image, shift), -shift)
    assert (back - image).abs().max() < 1e-4 * image.abs().max()


def test_fourier_shift_broadcasts_one_shift_per_image() -> None:
    stack = band_limited((64, 64)).expand(3, 64, 64)
    shifts = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 1.0]])
    moved = fourier_shift(stack, shifts)
    for image, (dy, dx) in zip(moved, shifts.long().tolist(), strict=True):
        assert torch.allclose(image, torch.roll(stack[0], (dy, dx), (0, 1)), atol=1e-5)


@pytest.mark.parametrize("shift", [(0.3, -0.45), (-0.12, 0.21), (10.49, -20.51), (-31.7, 0.02)])
def test_peak_of_a_cross_correlation_is_found_within_two_hundredths(shift: tuple[float, float]) -> None:
    torch.manual_seed(1)
    image = torch.randn(256, 256)
    moved = fourier_shift(image, torch.tensor(shift))
    weight = torch.exp(-100 * rfft_squared_frequencies((256, 256)) / 2)
    cc = cross_correlation(torch.fft.rfft2(moved), torch.fft.rfft2(image), shape_yx=(256, 256), weight=weight)
    found = find_peak_subpixel(cc)
    assert (found - torch.tensor(shift)).abs().max() <= 0.02


def test_gaussian_peak_fit_is_exact_and_wraps_around_index_zero() -> None:
    n = 64
    index = torch.arange(n, dtype=torch.float32)
    wrapped = torch.minimum(index, n - index)  # distance from index 0 through the wrap

    def gaussian_peak(dy: float, dx: float) -> torch.Tensor:
        ddy = torch.remainder(index - dy + n / 2, n) - n / 2
        ddx = torch.remainder(index - dx + n / 2, n) - n / 2
        return torch.exp(-(ddy[:, None] ** 2 + ddx[None, :] ** 2) / (2 * 1.5**2))

    assert wrapped[n - 1] == 1
    for dy, dx in [(-0.4, 0.3), (-3.25, -0.5), (5.1, -6.9)]:
        found = find_peak_subpixel(gaussian_peak(dy, dx))
        assert torch.allclose(found, torch.tensor([dy, dx]), atol=1e-3)
    parabolic = find_peak_subpixel(gaussian_peak(-0.4, 0.3), method="parabolic")
    assert (parabolic - torch.tensor([-0.4, 0.3])).abs().max() < 0.1


def test_peak_search_respects_max_shift_and_batches() -> None:
    maps = torch.zeros(2, 32, 32)
    maps[0, 12, 12] = 2.0  # far peak
    maps[0, 1, 31] = 1.0  # near peak, at (+1, -1)
    maps[1, 30, 2] = 1.0  # at (-2, +2)
    found = find_peak_subpixel(maps, max_shift_px=4)
    assert torch.allclose(found, torch.tensor([[1.0, -1.0], [-2.0, 2.0]]))
    assert torch.allclose(find_peak_subpixel(maps[0]), torch.tensor([12.0, 12.0]))


def map_value(cross: torch.Tensor, shape: tuple[int, int], shift: torch.Tensor) -> torch.Tensor:
    """The band-limited map of half spectra ``cross`` at sub-pixel shifts ``(..., 2)``, from the full spectrum."""
    ky = torch.fft.fftfreq(shape[0], dtype=torch.float64)[:, None]
    kx = torch.fft.fftfreq(shape[1], dtype=torch.float64)[None, :]
    full = torch.fft.fft2(torch.fft.irfft2(cross, s=shape))
    ramp = torch.exp(2j * math.pi * (ky * shift[..., :1, None] + kx * shift[..., 1:, None]))
    return (full * ramp).sum(dim=(-2, -1)).real / (shape[0] * shape[1])


def test_map_derivatives_are_those_of_the_band_limited_map_where_asked() -> None:
    shape = (48, 40)
    spectra = torch.fft.rfft2(torch.stack([band_limited(shape, seed=s) for s in (1, 2)]).double())
    cross = spectra * spectra.conj()
    shifts = torch.tensor([[1.3, -0.7], [0.0, 0.4]], dtype=torch.float64)
    derivatives = map_derivatives(cross.to(torch.complex128), shape, shifts)
    assert torch.allclose(derivatives.value, map_value(cross, shape, shifts), rtol=1e-6)
    h = 1e-3
    steps = torch.eye(2, dtype=torch.float64) * h
    for axis in (0, 1):
        up, down = map_value(cross, shape, shifts + steps[axis]), map_value(cross, shape, shifts - steps[axis])
        assert torch.allclose(derivatives.gradient[:, axis], (up - down) / (2 * h), rtol=1e-4, atol=1e-8)
        expected = -(up + down - 2 * map_value(cross, shape, shifts)) / h**2
        found = correlation_curvature(cross.to(torch.complex128), shape, shifts)[:, axis]
        assert torch.allclose(found.double(), expected, rtol=1e-4)
    mixed = (
        map_value(cross, shape, shifts + steps[0] + steps[1])
        - map_value(cross, shape, shifts + steps[0] - steps[1])
        - map_value(cross, shape, shifts - steps[0] + steps[1])
        + map_value(cross, shape, shifts - steps[0] - steps[1])
    ) / (4 * h**2)
    assert torch.allclose(derivatives.hessian[:, 0, 1], mixed, rtol=1e-3, atol=1e-6)
    assert torch.equal(derivatives.hessian[:, 0, 1], derivatives.hessian[:, 1, 0])
    near = correlation_near_zero(cross.to(torch.complex64), shape, 2)
    assert torch.allclose(
        near[:, 0, 0], map_value(cross, shape, torch.zeros(2, 2, dtype=torch.float64)).float(), rtol=1e-4
    )


def test_refined_peak_is_the_maximum_of_the_band_limited_map() -> None:
    """A correlation whose information reaches the Nyquist frequency: the 3-point fit through the samples misses
    its maximum by hundredths of a pixel, Newton's steps on the exact derivatives find it."""
    shape = (64, 64)
    image = torch.fft.rfft2(torch.randn(shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    truth = torch.tensor([[0.31, -0.27], [-0.42, 0.08], [2.2, -1.6]], dtype=torch.float64)
    ky = torch.fft.fftfreq(shape[0], dtype=torch.float64)[:, None]
    kx = torch.fft.rfftfreq(shape[1], dtype=torch.float64)[None, :]
    moved = image * torch.exp(-2j * math.pi * (ky * truth[:, :1, None] + kx * truth[:, 1:, None]))
    cross = (moved * image.conj()).to(torch.complex64)  # peaks at the shifts, white (information up to Nyquist)
    sampled = find_peak_subpixel(torch.fft.irfft2(cross, s=shape))
    refined, curvature = refine_peak(cross, shape, sampled)
    assert float((sampled.double() - truth).abs().max()) > 0.02
    assert torch.allclose(refined.double(), truth, atol=2e-3)
    gradient = map_derivatives(cross.to(torch.complex128), shape, refined).gradient
    assert float(gradient.abs().max()) < 1e-3 * float(curvature.abs().min())
    assert bool((curvature > 0).all())


def test_fourier_binning_keeps_the_mean_and_pixel_zero() -> None:
    image = band_limited((120, 96), cutoff_per_px=0.1) + 5.0
    binned = fourier_bin(image, 1.5)
    assert binned.shape == binned_shape((120, 96), 1.5) == (80, 64)
    assert torch.isclose(binned.mean(), image.mean(), atol=1e-4)
    # a cosine below the new Nyquist frequency is resampled exactly, sample 0 staying on sample 0
    x = torch.arange(96, dtype=torch.float32)
    wave = torch.cos(2 * math.pi * 6 * x / 96 + 0.4).expand(120, 96)
    expected = torch.cos(2 * math.pi * 6 * torch.arange(48) / 48 + 0.4)
    assert torch.allclose(fourier_crop(wave, (60, 48))[7], expected, atol=1e-5)


def test_crop_rfft_rejects_growth() -> None:
    with pytest.raises(ValueError, match="Fourier-crop"):
        crop_rfft(torch.zeros(8, 5, dtype=torch.complex64), shape_yx=(8, 8), new_shape_yx=(16, 8))


def test_bfactor_filter_is_exp_minus_b_k2_over_4() -> None:
    spectrum = torch.ones(64, 33, dtype=torch.complex64)
    filtered = bfactor_filter(spectrum, 200.0, 2.0)
    k = 10 / (64 * 2.0)  # index 10 along x, 1/Å
    assert torch.isclose(filtered[0, 10].real, torch.tensor(math.exp(-200 * k**2 / 4)))
    assert filtered[0, 0].real == 1


def test_critical_exposure_follows_grant_and_grigorieff() -> None:
    value = critical_exposure(torch.tensor([0.1]))
    assert torch.isclose(value, torch.tensor([0.245 * 0.1**-1.665 + 2.81]))
    assert math.isclose(float(value), 14.138, abs_tol=1e-3)
    assert torch.isclose(critical_exposure(torch.tensor([0.1]), voltage_kv=200), 0.8 * value)
    assert torch.isclose(critical_exposure(torch.tensor([0.1]), voltage_kv=100), 0.64 * value)
    with pytest.raises(ValueError, match="80 kV"):
        critical_exposure(torch.tensor([0.1]), voltage_kv=80)


def test_dose_weights_are_one_at_zero_frequency_and_fall_with_exposure() -> None:
    shape, pixel = (64, 64), 1.5
    early = dose_weights(shape, pixel, pre_exposure_e_per_angstrom2=0.0, dose_e_per_angstrom2=1.0)
    late = dose_weights(shape, pixel, pre_exposure_e_per_angstrom2=30.0, dose_e_per_angstrom2=1.0)
    assert early.shape == (64, 33)
    assert early[0, 0] == 1 and late[0, 0] == 1
    assert (late[1:] < early[1:]).all() and (early[1:] < 1).all()
    assert early[0, 20] < early[0, 5]  # falls with frequency
    # the weight of an instant exposure is exp(-N / 2Ne); a frame's weight is its mean over the frame
    k = 20 / (64 * pixel)
    ne = 0.245 * k**-1.665 + 2.81
    instant = dose_weights(shape, pixel, pre_exposure_e_per_angstrom2=30.0, dose_e_per_angstrom2=0.0)
    assert math.isclose(float(instant[0, 20]), math.exp(-30 / (2 * ne)), rel_tol=1e-5)
    mean = (2 * ne / 4) * (math.exp(-30 / (2 * ne)) - math.exp(-34 / (2 * ne)))
    framed = dose_weights(shape, pixel, pre_exposure_e_per_angstrom2=30.0, dose_e_per_angstrom2=4.0)
    assert math.isclose(float(framed[0, 20]), mean, rel_tol=1e-5)
    critical = critical_exposure(torch.tensor([k]))
    split = exposure_attenuation(critical, 30.0) * exposure_weights(
        critical, pre_exposure_e_per_angstrom2=0.0, dose_e_per_angstrom2=4.0
    )
    assert math.isclose(float(split), mean, rel_tol=1e-5)


def test_taper_edges_subtracts_the_mean_and_tapers_only_the_border() -> None:
    images = torch.rand(2, 40, 50) + 3
    tapered = taper_edges(images, 8)
    expected = (images - images.mean(dim=(-2, -1), keepdim=True)) * edge_taper((40, 50), 8)
    assert torch.allclose(tapered, expected, atol=1e-6)
    assert torch.equal(tapered[:, 8:-8, 8:-8], (images - images.mean(dim=(-2, -1), keepdim=True))[:, 8:-8, 8:-8])


@pytest.mark.parametrize("shape", [(64, 48), (63, 47), (5, 8)])
def test_irfft2_consuming_inverts_rfft2(shape: tuple[int, int]) -> None:
    from tomoprep.algorithms.fourier import irfft2_consuming

    images = torch.rand(2, *shape, generator=torch.Generator().manual_seed(1))
    back = irfft2_consuming(torch.fft.rfft2(images), shape)
    assert back.dtype == torch.float32 and back.shape == images.shape
    assert torch.allclose(back, images, atol=1e-5)
    assert torch.allclose(back, torch.fft.irfft2(torch.fft.rfft2(images), s=shape), atol=1e-5)


def test_in_place_separable_shift_equals_the_full_phase_ramp() -> None:
    from tomoprep.algorithms.fourier import fourier_shift_rfft, shift_rfft_

    image = torch.rand(48, 30, generator=torch.Generator().manual_seed(2))
    spectrum = torch.fft.rfft2(image)
    shift = torch.tensor([2.37, -5.6])
    expected = fourier_shift_rfft(spectrum, shift, shape_yx=(48, 30))
    moved = shift_rfft_(spectrum.clone(), shift, shape_yx=(48, 30))
    assert torch.allclose(moved, expected, atol=1e-4)
    integer = torch.fft.irfft2(shift_rfft_(spectrum.clone(), torch.tensor([3.0, -4.0]), shape_yx=(48, 30)), s=(48, 30))
    assert torch.allclose(integer, torch.roll(image, shifts=(3, -4), dims=(0, 1)), atol=1e-5)


@pytest.mark.parametrize("shape", [(64, 48), (63, 47), (32, 33)])
def test_correlation_near_zero_equals_the_inverse_transform_there(shape: tuple[int, int]) -> None:
    from tomoprep.algorithms.correlation import correlation_near_zero

    generator = torch.Generator().manual_seed(3)
    a, b = torch.rand(2, *shape, generator=generator), torch.rand(2, *shape, generator=generator)
    cross = torch.fft.rfft2(a) * torch.fft.rfft2(b).conj()
    full = torch.fft.irfft2(cross, s=shape)
    near = correlation_near_zero(cross, shape, 3)
    offsets = [0, 1, 2, 3, -3, -2, -1]
    expected = full[..., offsets, :][..., :, offsets]
    assert near.shape == (2, 7, 7)
    assert torch.allclose(near, expected, rtol=1e-4, atol=1e-4 * float(full.abs().max()))
