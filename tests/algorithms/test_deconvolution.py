"""Tegunov's deconvolution filter: a Wiener filter of the CTF against the published SNR model, which undoes a known
CTF where the SNR is high, and whose high-pass and strength act as Warp's and IsoNet's formulas say."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tomoprep.algorithms.ctf_spectrum import Optics
from tomoprep.algorithms.deconvolution import (
    DeconvolutionSettings,
    deconvolution_ctf,
    deconvolution_filter,
    deconvolution_snr,
    deconvolve_volume,
)
from tomoprep.simulate.ctf import Microscope, ctf_1d

PIXEL_A = 6.0
OPTICS = Optics(voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.07, pixel_spacing_angstrom=PIXEL_A)
K = torch.linspace(0, 1 / (2 * PIXEL_A), 2048, dtype=torch.float64)


def _published_snr(fraction: np.ndarray, falloff: float, strength: float, highpass: float, decades: float):
    """tom_deconv's SNR model written out:
    ``exp(-f · falloff · 100 / pixel) · 10^(decades · strength) · (1 - cos π min(1, f / hp))``."""
    cut = 1 - np.cos(np.pi * np.minimum(1.0, fraction / highpass))
    return np.exp(-fraction * falloff * 100 / PIXEL_A) * 10 ** (decades * strength) * cut


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_ctf_is_the_simulators_with_its_sign_turned(seed):
    defocus = float(np.random.default_rng(seed).uniform(5_000, 60_000))
    ours = deconvolution_ctf(K, defocus_angstrom=defocus, optics=OPTICS).numpy()
    simulator = ctf_1d(K.numpy(), defocus_angstrom=defocus, microscope=Microscope(300.0, 2.7, 0.07))
    np.testing.assert_allclose(ours, -simulator, atol=1e-9)
    assert ours[0] == pytest.approx(0.07)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("variant", "decades"), [("warp", 3.0), ("isonet", 1.0)])
def test_the_filter_is_wiener_like_against_the_published_snr(seed, variant, decades):
    rng = np.random.default_rng(seed)
    defocus, falloff, strength, hp = rng.uniform(10_000, 50_000), rng.uniform(0.8, 1.3), rng.uniform(0.3, 1.5), 0.02
    settings = DeconvolutionSettings(snr_falloff=falloff, strength=strength, highpass_fraction=hp, variant=variant)
    weights = deconvolution_filter(K, defocus_angstrom=defocus, optics=OPTICS, settings=settings).numpy()
    ctf = deconvolution_ctf(K, defocus_angstrom=defocus, optics=OPTICS).numpy()
    snr = _published_snr(K.numpy() * 2 * PIXEL_A, falloff, strength, hp, decades) + (1e-6 if variant == "isonet" else 0)
    np.testing.assert_allclose(weights * ctf, ctf**2 / (ctf**2 + 1 / np.maximum(snr, 1e-300)), atol=1e-9)
    assert weights[0] == pytest.approx(0.0, abs=1e-6)  # the mean is removed


def test_isonet_strength_is_a_third_of_warps():
    for strength in (0.3, 0.67, 1.0):
        warp = deconvolution_snr(K, pixel_spacing_angstrom=PIXEL_A, strength=strength, variant="warp")
        isonet = deconvolution_snr(K, pixel_spacing_angstrom=PIXEL_A, strength=3 * strength, variant="isonet")
        np.testing.assert_allclose(isonet.numpy(), warp.numpy() + 1e-6, rtol=1e-9)


def test_strength_zero_is_gentle_and_high_strength_inverts_the_ctf():
    ctf = deconvolution_ctf(K, defocus_angstrom=30_000, optics=OPTICS)
    gentle = deconvolution_filter(K, defocus_angstrom=30_000, optics=OPTICS, settings=DeconvolutionSettings(strength=0))
    assert float(gentle.abs().max()) <= 0.5 + 1e-12  # SNR ≤ 1: ctf·SNR / (ctf²·SNR + 1) ≤ √SNR / 2
    strong = deconvolution_filter(K, defocus_angstrom=30_000, optics=OPTICS, settings=DeconvolutionSettings(strength=4))
    fraction = K * 2 * PIXEL_A
    usable = (fraction > 0.05) & (fraction < 0.5) & (ctf.abs() > 0.2)
    np.testing.assert_allclose((strong * ctf)[usable].numpy(), 1.0, atol=1e-3)


@pytest.mark.parametrize("highpass", [0.02, 0.1])
def test_the_high_pass_removes_only_the_lowest_frequencies(highpass):
    fraction = (K * 2 * PIXEL_A).numpy()
    cut = deconvolution_snr(K, pixel_spacing_angstrom=PIXEL_A, highpass_fraction=highpass).numpy()
    open_ = deconvolution_snr(K, pixel_spacing_angstrom=PIXEL_A, highpass_fraction=1e-9).numpy()
    below = (fraction > 0) & (fraction < highpass)
    rise = (1 - np.cos(np.pi * fraction[below] / highpass)) / 2  # the open high-pass stands at 2
    np.testing.assert_allclose(cut[below] / open_[below], rise, atol=1e-9)
    np.testing.assert_allclose(cut[fraction >= highpass], open_[fraction >= highpass], rtol=1e-9)
    settings = DeconvolutionSettings(highpass_fraction=highpass)
    weights = deconvolution_filter(K, defocus_angstrom=30_000, optics=OPTICS, settings=settings).abs().numpy()
    unfiltered = deconvolution_filter(K, defocus_angstrom=30_000, optics=OPTICS,
                                      settings=DeconvolutionSettings(highpass_fraction=1e-9)).abs().numpy()  # fmt: skip
    assert bool((weights[below] < unfiltered[below]).all())
    np.testing.assert_allclose(weights[fraction >= highpass], unfiltered[fraction >= highpass], rtol=1e-9)
    lowest = (fraction > 0) & (fraction < highpass / 10)  # the Wiener form saturates less deep in the cut
    assert bool((weights[lowest] < 0.3 * unfiltered[lowest]).all())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_deconvolving_a_ctf_blurred_volume_restores_it(seed):
    rng = np.random.default_rng(seed)
    shape, defocus = (24, 40, 48), float(rng.uniform(20_000, 40_000))
    volume = torch.from_numpy(rng.normal(size=shape)).float()
    axes = (-3, -2, -1)
    k2 = sum(torch.fft.fftfreq(n, d=PIXEL_A).reshape([n if a == i else 1 for a in range(3)]) ** 2
             for i, n in enumerate(shape[:-1])) + torch.fft.rfftfreq(shape[-1], d=PIXEL_A) ** 2  # fmt: skip
    k = k2.sqrt()
    band = ((k * 2 * PIXEL_A > 0.1) & (k * 2 * PIXEL_A < 0.6)).float()
    ctf = deconvolution_ctf(k, defocus_angstrom=defocus, optics=OPTICS).float()
    truth = torch.fft.irfftn(torch.fft.rfftn(volume, dim=axes) * band, s=shape, dim=axes)
    blurred = torch.fft.irfftn(torch.fft.rfftn(truth, dim=axes) * ctf, s=shape, dim=axes)
    restored = deconvolve_volume(blurred, defocus_angstrom=defocus, optics=OPTICS,
                                 settings=DeconvolutionSettings(strength=2.0, snr_falloff=0.1))  # fmt: skip

    def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a * b).sum() / math.sqrt(float((a * a).sum() * (b * b).sum())))

    assert correlation(restored, truth) > 0.98
    assert correlation(restored, truth) > correlation(blurred, truth) + 0.3
    assert restored.shape == truth.shape and restored.dtype == torch.float32
