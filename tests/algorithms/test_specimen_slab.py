"""The specimen slab's thickness, height and tilt, measured on synthetic reconstructions of known geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import ndtr

from tomoprep.algorithms.specimen_slab import fit_box, fit_box_centre, measure_slab


def _slab_slices(*, thickness: float, centre: float, slope_x: float, slope_y: float, seed: int) -> torch.Tensor:
    """Slices ``(ny, nz, nx)``: weak noise everywhere, strong random density between two tilted planes."""
    ny, nz, nx = 64, 96, 128
    rng = np.random.default_rng(seed)
    y = np.arange(ny)[:, None, None] - ny // 2
    z = np.arange(nz)[None, :, None] - nz // 2
    x = np.arange(nx)[None, None, :] - nx // 2
    mid = centre + slope_x * x + slope_y * y
    inside = (np.abs(z - mid) <= thickness / 2).astype(np.float32)
    density = rng.normal(size=(ny, nz, nx)).astype(np.float32)
    return torch.from_numpy(density * (0.15 + inside))


@pytest.mark.parametrize(
    ("thickness", "centre", "slope_x", "slope_y"),
    [(30.0, 0.0, 0.0, 0.0), (40.0, 6.0, 0.12, -0.03), (60.0, -4.0, -0.18, 0.05)],
)
def test_measure_slab_recovers_thickness_centre_and_tilt(thickness, centre, slope_x, slope_y):
    """Over 30 seeds per geometry the slopes scattered by 0.0022-0.0029 along x and 0.0030-0.0041 along y (the
    blocks span 51 voxels along y, 77 along x), at most 0.0065 and 0.0080: a slope error of 0.008 is 2-3 of
    those deviations, so one seed's slope says little. Each seed's tilt offset is held to 0.5°, both slopes'
    RMS over three seeds to 0.008; thickness (bias +3.4 % at 30 voxels, scatter 0.3 %) and centre (scatter
    0.05 voxel) per seed."""
    errors = []
    for seed in (1, 2, 3):
        measured = measure_slab(_slab_slices(thickness=thickness, centre=centre, slope_x=slope_x, slope_y=slope_y,
                                             seed=seed))  # fmt: skip
        assert measured.is_plausible()
        assert measured.fit.thickness == pytest.approx(thickness, rel=0.08)
        assert measured.fit.centre == pytest.approx(centre, abs=1.0)
        assert measured.tilt_offset_deg == pytest.approx(-math.degrees(math.atan(slope_x)), abs=0.5)
        errors.append((measured.slope_x - slope_x, measured.slope_y - slope_y))
    rms_x, rms_y = np.sqrt(np.mean(np.square(errors), axis=0))
    assert rms_x < 0.008  # 0.5° of tilt offset
    assert rms_y < 0.008


def test_slab_deeper_than_the_reconstruction_is_not_plausible():
    measured = measure_slab(_slab_slices(thickness=200.0, centre=0.0, slope_x=0.0, slope_y=0.0, seed=4))
    assert not measured.is_plausible()


@pytest.mark.parametrize(("centre", "blur"), [(0.0, 0.5), (3.37, 1.5), (-11.8, 3.0)])
def test_fit_box_centre_to_a_fraction_of_a_voxel(centre, blur):
    rng = np.random.default_rng(7)
    z = np.arange(80) - 40
    box = ndtr((z - (centre - 15)) / blur) - ndtr((z - (centre + 15)) / blur)
    profile = 0.2 + 1.5 * box + rng.normal(scale=0.05, size=z.size)
    assert fit_box_centre(profile, thickness=30.0, blur=blur) == pytest.approx(centre, abs=0.15)


def _sparse_layer_slices(*, n_particles: int, thickness: float, seed: int) -> torch.Tensor:
    """Slices ``(ny, nz, nx)``: weak noise, and ``n_particles`` dense balls (radius 5) placed at random in a flat
    layer of ``thickness``: a specimen whose only content is a few particles."""
    ny, nz, nx = 64, 96, 128
    rng = np.random.default_rng(seed)
    slices = 0.15 * rng.normal(size=(ny, nz, nx)).astype(np.float32)
    y, z, x = np.meshgrid(np.arange(ny), np.arange(nz), np.arange(nx), indexing="ij")
    for _ in range(n_particles):
        cy, cx = rng.uniform(5, ny - 5), rng.uniform(5, nx - 5)
        cz = nz // 2 + rng.uniform(-thickness / 2 + 5, thickness / 2 - 5)
        ball = (y - cy) ** 2 + (z - cz) ** 2 + (x - cx) ** 2 <= 25
        slices[ball] += rng.normal(size=int(ball.sum())).astype(np.float32) * 2
    return torch.from_numpy(slices)


def test_tilt_error_separates_a_slab_from_a_sparse_layer_of_particles():
    """Blocks of a dense slab agree on its plane to a fraction of a degree; a layer of a dozen particles has
    blocks that scatter about any plane, and says so, so the alignment does not tilt the series after it."""
    from tomoprep.algorithms.slab_alignment import MAX_TILT_OFFSET_ERROR_DEG

    for seed in (1, 2, 3):
        dense = measure_slab(_slab_slices(thickness=40.0, centre=0.0, slope_x=0.1, slope_y=0.0, seed=seed))
        assert dense.tilt_offset_error_deg < 0.5 * MAX_TILT_OFFSET_ERROR_DEG
        sparse = measure_slab(_sparse_layer_slices(n_particles=12, thickness=40.0, seed=seed))
        assert sparse.tilt_offset_error_deg > MAX_TILT_OFFSET_ERROR_DEG


@pytest.mark.parametrize("nz", [3, 5, 7])
def test_a_profile_a_few_voxels_deep_is_fitted_not_refused(nz):
    """A reconstruction only a few voxels deep (a 64-px working size) still gets a box, within the profile."""
    profile = np.zeros(nz)
    profile[nz // 2] = 1.0
    fit = fit_box(profile)
    assert -nz / 2 <= fit.z_low <= fit.z_high <= nz / 2


def test_a_reconstruction_narrower_than_the_blocks_is_measured_without_nan():
    """A 64-px working size leaves fewer central columns than blocks: the empty blocks are not blocks."""
    rng = np.random.default_rng(0)
    slices = torch.from_numpy(rng.normal(size=(6, 24, 6))).float()
    slices[:, 8:16, :] += 3.0 * torch.from_numpy(rng.normal(size=(6, 8, 6))).float()
    measured = measure_slab(slices)
    assert np.isfinite(measured.profile).all() and math.isfinite(measured.fit.thickness)
