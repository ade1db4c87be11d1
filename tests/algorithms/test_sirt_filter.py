"""The SIRT-like filter: weighted back projection through it reconstructs a phantom as N iterations of SIRT do."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tomoprep.algorithms.backprojection import backproject, filter_rows, project
from tomoprep.algorithms.sirt_filter import angular_coverage_rad, sirt_like_filter

NZ, NX = 32, 64
TILTS = [float(t) for t in np.arange(-60.0, 61.0, 6.0)]


def _phantom(seed: int) -> torch.Tensor:
    """One ``(1, NZ, NX)`` slice of a dozen random ellipses well inside the slab."""
    rng = np.random.default_rng(seed)
    z, x = np.mgrid[:NZ, :NX]
    z, x = z - NZ // 2, x - NX // 2
    image = np.zeros((NZ, NX))
    for _ in range(12):
        cz, cx = rng.uniform(-NZ / 4, NZ / 4), rng.uniform(-NX / 3, NX / 3)
        a, b = rng.uniform(1.5, 6, 2)
        image += rng.uniform(0.5, 1.5) * (((z - cz) / a) ** 2 + ((x - cx) / b) ** 2 < 1)
    return torch.from_numpy(image).float()[None]


def _centred_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """``|a - b| / |b|`` after removing each slice's mean (a tomogram's offset carries no information)."""
    a, b = a - a.mean(), b - b.mean()
    return float((a - b).norm() / b.norm())


def _wbp(projections: torch.Tensor, iterations: int | None) -> torch.Tensor:
    """Weighted back projection of ``(n, 1, 2 NX)`` projections through the SIRT-like filter."""
    weights = sirt_like_filter(projections.shape[-1], TILTS, iterations=iterations, thickness_px=NZ)
    return backproject(filter_rows(projections, weights), TILTS, nz=NZ, nx=NX)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_wbp_with_the_sirt_like_filter_matches_iterative_sirt(seed):
    phantom = _phantom(seed)
    n_u = 2 * NX  # rows padded so the filter's kernel does not wrap around
    projections = torch.stack([project(phantom, tilt, nu=n_u) for tilt in TILTS])
    exact = _wbp(projections, None)
    sirt = torch.zeros_like(phantom)
    for iteration in range(1, 11):
        residual = projections - torch.stack([project(sirt, tilt, nu=n_u) for tilt in TILTS])
        sirt = sirt + backproject(residual, TILTS, nz=NZ, nx=NX) / NZ
        if iteration not in (3, 10):
            continue
        distance = _centred_distance(_wbp(projections, iteration), sirt)
        # Measured over seeds 0-3: 0.08-0.10 at 3 iterations, 0.11-0.15 at 10; exact WBP 0.58-0.88 and 0.21-0.28.
        assert distance < (0.15 if iteration == 3 else 0.2)
        assert distance < (0.3 if iteration == 3 else 0.75) * _centred_distance(exact, sirt)
        # The filter tells iteration counts apart: those of half or twice as many are further from this SIRT.
        assert distance < _centred_distance(_wbp(projections, 2 * iteration), sirt)
        assert distance < _centred_distance(_wbp(projections, iteration // 2), sirt)


def test_many_iterations_tend_to_wbp_and_few_flatten_the_high_frequencies():
    exact = sirt_like_filter(256, TILTS, iterations=None, thickness_px=NZ)
    many = sirt_like_filter(256, TILTS, iterations=10_000, thickness_px=NZ)
    assert torch.allclose(many, exact, rtol=1e-3, atol=1e-7)
    few = sirt_like_filter(256, TILTS, iterations=4, thickness_px=NZ, lowpass=0.5)
    k = torch.fft.rfftfreq(256)
    corner = 1 / (NZ * angular_coverage_rad(TILTS))
    band = (k > 10 * corner) & (k < 0.4)  # far above the corner, below the roll-off: nearly flat, below N / T
    assert bool((few[band] <= 4 / NZ).all()) and bool((few[band] > 0.8 * 4 / NZ).all())
    assert torch.allclose(few[band] / exact[band], 4 * corner / k[band], rtol=0.25)
    assert torch.allclose(few[(k > 0) & (k <= corner)], exact[(k > 0) & (k <= corner)])


def test_coverage_and_bad_input():
    assert angular_coverage_rad([-60, 0, 60]) == pytest.approx(math.radians(180))
    with pytest.raises(ValueError, match="two distinct"):
        angular_coverage_rad([10.0])
    with pytest.raises(ValueError, match="at least 1 iteration"):
        sirt_like_filter(64, TILTS, iterations=0, thickness_px=10)
