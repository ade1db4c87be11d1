"""Exposure filtering of tilt images: each frequency is attenuated as Grant & Grigorieff's published formula says
for the tilt's pre-exposure and dose, and an unexposed tilt is left as it was."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tomoprep.algorithms.dose_filter import dose_filter_stack

SHAPE = (40, 64)
PIXEL_A = 2.0


def _published_attenuation(k_per_angstrom: float, pre: float, dose: float, voltage_kv: float) -> float:
    """Mean of ``exp(-N / 2Ne)`` over ``N`` from ``pre`` to ``pre + dose``, ``Ne = (0.245 k^-1.665 + 2.81) f(V)``
    with ``f`` = 1, 0.8 at 300, 200 kV (Grant & Grigorieff 2015, eq. 3 and their voltage scaling)."""
    factor = {300.0: 1.0, 200.0: 0.8}[voltage_kv]
    critical = (0.245 * k_per_angstrom**-1.665 + 2.81) * factor
    if dose == 0:
        return math.exp(-pre / (2 * critical))
    rate = 1 / (2 * critical)
    return (math.exp(-pre * rate) - math.exp(-(pre + dose) * rate)) / (dose * rate)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("voltage_kv", [300.0, 200.0])
def test_each_tilt_is_attenuated_as_the_published_formula_says(seed, voltage_kv):
    rng = np.random.default_rng(seed)
    cycles_x, cycles_y = int(rng.integers(3, 20)), int(rng.integers(-8, 8))
    y, x = np.mgrid[: SHAPE[0], : SHAPE[1]]
    wave = np.cos(2 * math.pi * (cycles_x * x / SHAPE[1] + cycles_y * y / SHAPE[0]) + rng.uniform(0, 6))
    pre = rng.uniform(0, 120, 4)
    doses = rng.uniform(0, 4, 4)
    doses[0] = 0.0
    images = torch.from_numpy(np.stack([wave + 5.0] * 4)).float()
    out = dose_filter_stack(images, PIXEL_A, pre_exposures_e_per_angstrom2=pre.tolist(),
                            doses_e_per_angstrom2=doses.tolist(), voltage_kv=voltage_kv).double().numpy()  # fmt: skip
    k = math.hypot(cycles_x / SHAPE[1], cycles_y / SHAPE[0]) / PIXEL_A
    for index in range(4):
        expected = _published_attenuation(k, pre[index], doses[index], voltage_kv)
        amplitude = np.sum((out[index] - 5.0) * wave) / np.sum(wave * wave)
        assert amplitude == pytest.approx(expected, rel=1e-4, abs=1e-6)
        assert out[index].mean() == pytest.approx(5.0, rel=1e-5)  # the mean is never attenuated


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_unexposed_tilt_is_unchanged_and_later_tilts_lose_high_frequencies(seed):
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.normal(size=(3, *SHAPE))).float()
    out = dose_filter_stack(images, PIXEL_A, pre_exposures_e_per_angstrom2=[0.0, 30.0, 90.0],
                            doses_e_per_angstrom2=[0.0, 3.0, 3.0])  # fmt: skip
    assert torch.allclose(out[0], images[0], atol=1e-5)
    powers = [float(torch.fft.rfft2(image).abs().square()[:, 10:].sum()) for image in out]
    assert powers[0] > 1.5 * powers[1] > 1.5 * powers[2]


def test_mismatched_exposures_are_refused():
    with pytest.raises(ValueError, match="pre-exposures"):
        dose_filter_stack(torch.zeros(3, 8, 8), 1.0, pre_exposures_e_per_angstrom2=[0, 1], doses_e_per_angstrom2=1.0)
    with pytest.raises(ValueError, match="≥ 0"):
        dose_filter_stack(torch.zeros(1, 8, 8), 1.0, pre_exposures_e_per_angstrom2=[-1], doses_e_per_angstrom2=1.0)
