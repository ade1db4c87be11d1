"""Patch tracking on synthetic tilt series: local shifts planted in some tilts, a patch lying above the slab."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from tomoprep.algorithms.backprojection import project
from tomoprep.algorithms.patch_tracking import PATCH_FRACTION, patch_grid, track_patches

N = 128
NZ = 64
SIZE = round(PATCH_FRACTION * N) // 2 * 2  # track_patches' default patch side
MARGIN = SIZE / 2 + 4  # ... and where its outer patches sit
TILTS = [float(t) for t in np.arange(-60, 61, 4)]


def _slab(seed: int, *, raised_quadrant_px: float = 0.0) -> torch.Tensor:
    """Slices ``(ny, nz, nx)``: smooth random density in a 24-px slab; the x > 20, y > 20 quadrant raised."""
    rng = np.random.default_rng(seed)
    density = gaussian_filter(rng.normal(size=(N, NZ, N)), 1.5)
    y = np.arange(N)[:, None, None] - N // 2
    z = np.arange(NZ)[None, :, None] - NZ // 2
    x = np.arange(N)[None, None, :] - N // 2
    centre = np.where((x > 20) & (y > 20), raised_quadrant_px, 0.0)
    return torch.from_numpy((density * (np.abs(z - centre) <= 12)).astype(np.float32))


def _series(slices: torch.Tensor, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed + 100)
    images = torch.stack([project(slices, t) for t in TILTS])
    noise = rng.normal(scale=0.3 * float(images.std()), size=images.shape)
    return images + torch.from_numpy(noise.astype(np.float32))


def _move_region(image: torch.Tensor, centre_uv: np.ndarray, shift_xy: tuple[float, float]) -> torch.Tensor:
    """``image`` with the disc of radius 32 px around ``centre_uv`` (from the image centre) moved by ``shift_xy``."""
    v, u = np.mgrid[0:N, 0:N].astype(np.float64)
    r = np.hypot(u - N // 2 - centre_uv[0], v - N // 2 - centre_uv[1])
    weight = np.clip((40 - r) / 8, 0, 1)  # 1 inside 32 px, 0 beyond 40 px
    spectrum = np.fft.fft2(image.numpy())
    ky, kx = np.meshgrid(np.fft.fftfreq(N), np.fft.fftfreq(N), indexing="ij")
    moved = np.fft.ifft2(spectrum * np.exp(-2j * np.pi * (kx * shift_xy[0] + ky * shift_xy[1]))).real
    return torch.from_numpy((image.numpy() * (1 - weight) + moved * weight).astype(np.float32))


def test_patch_grid_covers_the_field_symmetrically():
    grid = patch_grid((100, 200), n_patches=(3, 2), margin_px=20)
    assert grid.shape == (6, 3)
    assert sorted(set(grid[:, 0])) == pytest.approx([-80.0, 0.0, 80.0])
    assert sorted(set(grid[:, 1])) == pytest.approx([-30.0, 30.0])
    assert np.all(grid[:, 2] == 0)


def test_local_shifts_planted_in_two_tilts_are_recovered_there_only():
    images = _series(_slab(1), 1)
    corner = int(np.argmax(patch_grid((N, N), n_patches=(4, 4), margin_px=MARGIN).sum(axis=1)))  # the patch at +x, +y
    point = patch_grid((N, N), n_patches=(4, 4), margin_px=MARGIN)[corner]
    planted = {5: (2.0, -1.5), 20: (-1.5, 1.0)}
    for i, shift in planted.items():
        t = np.radians(TILTS[i])
        images[i] = _move_region(images[i], np.array([point[0] * np.cos(t), point[1]]), shift)
    tracks = track_patches(images, TILTS, axis_deg=0.0, shifts_px=torch.zeros(len(TILTS), 2), nz=32)
    for i, shift in planted.items():
        assert tracks.local_shifts_px[i, corner] == pytest.approx(shift, abs=0.3)
    # Everywhere else (out of reach of the moved disc, 40 px, and the patch's half side), nothing moved.
    distance = np.linalg.norm(tracks.centres_px - tracks.centres_px[:, corner : corner + 1], axis=2)
    unmoved = np.ones(tracks.good.shape, dtype=bool)
    for i in planted:
        unmoved[i] = distance[i] > 40 + SIZE / 2
    assert np.sqrt((tracks.local_shifts_px[unmoved] ** 2).sum(axis=1).mean()) < 0.15


@pytest.mark.slow
def test_a_raised_region_is_not_mistaken_for_motion():
    # A quarter of the specimen lies 10 px above the rest: moving against a neighbouring tilt, its patches would
    # seem to move by 10 sin(Δt); against the reprojection they stay put.
    images = _series(_slab(2, raised_quadrant_px=10.0), 2)
    tracks = track_patches(images, TILTS, axis_deg=0.0, shifts_px=torch.zeros(len(TILTS), 2), nz=56)
    assert tracks.good.all()
    assert np.sqrt((tracks.local_shifts_px**2).sum(axis=2).mean()) < 0.15
    assert np.max(tracks.residual_rms_px()) < 0.35  # the ±60° tilts, whose reprojections are the least sure


def test_axis_and_shifts_rotate_the_local_shifts_into_the_image_frame():
    images = _series(_slab(3), 3)
    corner = int(np.argmax(patch_grid((N, N), n_patches=(4, 4), margin_px=MARGIN).sum(axis=1)))
    point = patch_grid((N, N), n_patches=(4, 4), margin_px=MARGIN)[corner]
    t = np.radians(TILTS[8])
    images[8] = _move_region(images[8], np.array([point[0] * np.cos(t), point[1]]), (0.0, 2.0))
    # The same series seen with the tilt axis at 90°: images turned by 90° counter-clockwise (y = row index, so
    # a point (x, y) goes to (-y, x)).
    turned = torch.rot90(images, -1, dims=(-2, -1))
    tracks = track_patches(turned, TILTS, axis_deg=90.0, shifts_px=torch.zeros(len(TILTS), 2), nz=32)
    worst = np.unravel_index(np.argmax(np.linalg.norm(tracks.local_shifts_px, axis=2)), tracks.good.shape)
    assert worst == (8, corner)
    # Moving +2 px along the axis (aligned v) is moving -2 px along image x when the axis points along -x.
    assert tracks.local_shifts_px[8, corner] == pytest.approx((-2.0, 0.0), abs=0.3)
