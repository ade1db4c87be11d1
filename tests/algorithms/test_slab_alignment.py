"""The specimen slab found in a reconstruction of a projected series: its depth, height and tilt, and the series
centred on it and levelled."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tomoprep.algorithms.slab_alignment import level_on_slab, measure_slab_in, recentre, reconstruct
from tomoprep.algorithms.tilt_geometry import projection_rotation

TILTS_DEG = [float(t) for t in np.arange(-60.0, 60.1, 4.0)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recentred_shifts_put_the_chosen_point_where_the_specimen_centre_was(seed):
    rng = np.random.default_rng(seed)
    axis, point = float(rng.uniform(-180, 180)), rng.uniform(-10, 10, 3)
    shifts = torch.from_numpy(rng.uniform(-5, 5, (len(TILTS_DEG), 2)))
    moved = recentre(shifts, TILTS_DEG, axis_deg=axis, centre_xyz_px=point.tolist())
    for tilt, old, new in zip(TILTS_DEG, shifts.numpy(), moved.numpy(), strict=True):
        rotation = projection_rotation(y_tilt_deg=tilt, z_rot_deg=axis).numpy()[:2]
        assert rotation @ point + old == pytest.approx(new, abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reconstruction_puts_a_projected_blob_at_its_place_in_the_slices(seed):
    rng = np.random.default_rng(seed)
    axis, xyz = float(rng.uniform(-180, 180)), rng.uniform(-12, 12, 3)
    shifts = torch.from_numpy(rng.uniform(-5, 5, (len(TILTS_DEG), 2)))
    point_images = _point_series(axis, xyz, shifts)
    slices = reconstruct(point_images, TILTS_DEG, axis_deg=axis, shifts_px=shifts, nz=48, weighting="ramp")
    ny, nz, nx = slices.shape
    iy, iz, ix = np.unravel_index(int(slices.argmax()), slices.shape)
    assert [ix - nx // 2, iy - ny // 2] == pytest.approx(xyz[:2].tolist(), abs=0.75)
    assert iz - nz // 2 == pytest.approx(xyz[2], abs=1.0)  # the missing wedge elongates it along z


def _point_series(axis_deg: float, xyz: np.ndarray, shifts_px: torch.Tensor, size: int = 128) -> torch.Tensor:
    """Images ``(n, size, size)`` of a Gaussian blob (sigma 1.5 px) at specimen point ``xyz``."""
    grid = np.arange(size) - size // 2
    images = []
    for tilt, shift in zip(TILTS_DEG, shifts_px.numpy(), strict=True):
        x, y = projection_rotation(y_tilt_deg=tilt, z_rot_deg=axis_deg).numpy()[:2] @ xyz + shift
        images.append(np.exp(-((grid[:, None] - y) ** 2 + (grid[None, :] - x) ** 2) / (2 * 1.5**2)))
    return torch.from_numpy(np.array(images)).float()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_pretilted_slab_above_the_centre_is_measured_centred_and_levelled(seed, blob_series):
    rng = np.random.default_rng(seed)
    axis, height, pretilt = float(rng.uniform(-180, 180)), float(rng.uniform(-8, 8)), float(rng.uniform(-8, 8))
    thickness = float(rng.uniform(24, 40))
    images, shifts = blob_series(axis, TILTS_DEG, seed, n_blobs=2000, thickness_px=thickness, slab_z_px=height,
                                 pretilt_deg=pretilt)  # fmt: skip
    slab, tilts, centred, offset, taken = level_on_slab(images, TILTS_DEG, axis=axis, shifts=shifts, nz=96,
                                                        refine_tilt_offset=True)  # fmt: skip
    assert taken
    # Over seeds 0-4: thickness within 7 %, height within 0.6 px, offset within 1.4° of the pretilt (one round
    # from a slab tilted by up to 8°; the alignment measures again until it settles).
    assert slab.thickness == pytest.approx(thickness, rel=0.10)
    assert slab.fit.centre == pytest.approx(height * np.cos(np.radians(pretilt)), abs=1.0)
    assert offset == pytest.approx(pretilt, abs=2.0)
    assert tilts == pytest.approx([t + offset for t in TILTS_DEG])
    # Measured again in the new geometry the slab is at the centre and (nearly) flat: within 0.2 px and 0.3°.
    again, _ = measure_slab_in(images, tilts, axis_deg=axis, shifts_px=centred, nz=96)
    assert abs(again.fit.centre) < 0.5
    assert abs(again.tilt_offset_deg) < 0.6
