"""A thin slab's thickness through a blur measured apart from it: the specimen's particle size from images, the
content profile of a flat sheet reconstructed through the tilts, and a box fitted with that blur fixed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import ndtr

from tomoprep.algorithms.slab_blur import content_kernel, fit_blurred_box, specimen_power
from tomoprep.algorithms.specimen_slab import content, fit_box

TILTS_DEG = [float(t) for t in np.arange(-60.0, 61.0, 3.0)]


def _blob_images(sigma_px: float, *, seed: int, n: int = 3, size: int = 128) -> torch.Tensor:
    """``(n, size, size)`` images of many Gaussian blobs of ``sigma_px`` at random places, and white noise."""
    rng = np.random.default_rng(seed)
    centres = rng.poisson(0.05, (n, size, size)) * rng.uniform(0.5, 1.5, (n, size, size))
    k2 = np.fft.fftfreq(size)[:, None] ** 2 + np.fft.fftfreq(size)[None, :] ** 2
    blobs = np.fft.ifft2(np.fft.fft2(centres) * np.exp(-2 * (math.pi * sigma_px) ** 2 * k2)).real
    noise = 0.3 * blobs.std() * rng.normal(size=blobs.shape)
    return torch.from_numpy((blobs + noise).astype(np.float32))


@pytest.mark.parametrize("sigma_px", [1.5, 3.0])
def test_specimen_power_gives_the_particles_size_without_the_noise(sigma_px: float) -> None:
    """A Gaussian blob's power falls as ``exp(-(2 pi k sigma)^2)``: its slope in log power against ``k²`` gives
    sigma back, the white noise's floor removed."""
    for seed in (1, 2):
        frequencies, power = specimen_power(_blob_images(sigma_px, seed=seed))
        band = (frequencies > 0.03) & (power > 0.02 * power.max())
        slope = np.polyfit(frequencies[band] ** 2, np.log(power[band]), 1)[0]
        assert math.sqrt(-slope) / (2 * math.pi) == pytest.approx(sigma_px, rel=0.15)


def test_the_kernel_of_larger_particles_is_wider() -> None:
    """The content profile of a flat sheet is a peak at its depth (sum 1, symmetric), wider for larger particles."""
    slices = torch.zeros(32, 48, 96)
    widths = []
    for sigma_px in (1.0, 3.0):
        frequencies = np.linspace(0.0, 0.75, 76)
        power = (frequencies, np.exp(-((2 * math.pi * frequencies * sigma_px) ** 2)))
        kernel = content_kernel(slices, TILTS_DEG, power=power, content=content)
        z = np.arange(kernel.size) - kernel.size // 2
        assert kernel.sum() == pytest.approx(1.0)
        assert int(np.argmax(kernel)) == kernel.size // 2
        assert abs(float((kernel * z).sum())) < 0.5
        widths.append(float((kernel > 0.5 * kernel.max()).sum()))
    assert widths[1] > widths[0] + 2


@pytest.mark.parametrize(("width", "centre"), [(12.0, 0.0), (20.0, 3.5), (30.0, -6.25)])
def test_a_box_blurred_by_a_known_kernel_is_fitted_to_a_fraction_of_a_voxel(width: float, centre: float) -> None:
    """A box of content blurred by a wide kernel with heavy wings (as a thin slab's particles make it): the free
    box fit trades its width against its blur; with the kernel known the width comes back."""
    nz = 96
    z = np.arange(nz) - nz // 2
    kernel = 0.7 * np.exp(-0.5 * (z / 1.0) ** 2) + 0.3 * np.exp(-np.abs(z) / 6.0)
    kernel /= kernel.sum()
    box = ndtr((z - (centre - width / 2)) / 0.3) - ndtr((z - (centre + width / 2)) / 0.3)
    blurred = np.fft.irfft(np.fft.rfft(box) * np.fft.rfft(np.roll(kernel, -(nz // 2))), n=nz)
    for seed in (1, 2, 3):
        profile = 0.1 + blurred + np.random.default_rng(seed).normal(scale=0.01, size=nz)
        free = fit_box(profile)
        found_width, found_centre = fit_blurred_box(profile, kernel, width0=free.thickness + 2 * free.blur,
                                                    centre0=free.centre)  # fmt: skip
        assert found_width == pytest.approx(width, abs=0.5)
        assert found_centre == pytest.approx(centre, abs=0.5)
