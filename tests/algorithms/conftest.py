"""Synthetic tilt series shared by the tests of the alignment kernels."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from tomoprep.algorithms.tilt_geometry import projection_rotation


def _blob_series(
    axis_deg: float,
    tilts_deg: list[float],
    seed: int,
    *,
    size: int = 128,
    n_blobs: int = 300,
    thickness_px: float = 16.0,
    noise_to_signal: float = 0.5,
    slab_z_px: float = 0.0,
    pretilt_deg: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tilt images ``(n, size, size)`` of Gaussian blobs (sigma 1.5-3 px) in a slab ``thickness_px`` deep, projected
    with RELION's model (a point ``X`` lands at ``Rz(axis) Ry(tilt) X + shift``), white noise added; and the
    shifts ``(n, 2)`` ``(x, y)`` in pixels. The slab's centre is ``slab_z_px`` above the specimen centre and the
    slab is turned by ``pretilt_deg`` about the specimen's y axis (adding it to the tilts makes the slab flat)."""
    rng = np.random.default_rng(seed)
    half = size / 2
    points = np.column_stack([rng.uniform(-half, half, (n_blobs, 2)), rng.uniform(-0.5, 0.5, n_blobs) * thickness_px])
    points[:, 2] += slab_z_px
    points = points @ projection_rotation(y_tilt_deg=pretilt_deg, z_rot_deg=0.0).numpy().T
    sigmas, weights = rng.uniform(1.5, 3.0, n_blobs), rng.uniform(0.5, 1.5, n_blobs)
    shifts = rng.uniform(-3.0, 3.0, (len(tilts_deg), 2))
    grid = np.arange(size) - size // 2
    images = []
    for tilt, shift in zip(tilts_deg, shifts, strict=True):
        xy = (points @ projection_rotation(y_tilt_deg=tilt, z_rot_deg=axis_deg).numpy().T)[:, :2] + shift
        # A sum of separable Gaussians is one matrix product: Σ_b w_b g_b(y) g_b(x).
        gx = np.exp(-((grid[None, :] - xy[:, :1]) ** 2) / (2 * sigmas[:, None] ** 2))
        gy = np.exp(-((grid[None, :] - xy[:, 1:]) ** 2) / (2 * sigmas[:, None] ** 2))
        images.append((gy * weights[:, None]).T @ gx)
    stack = np.array(images)
    stack += noise_to_signal * stack.std() * rng.normal(size=stack.shape)
    return torch.from_numpy(stack).float(), torch.from_numpy(shifts)


@pytest.fixture
def blob_series() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """:func:`_blob_series`: ``blob_series(axis_deg, tilts_deg, seed, **options) -> (images, shifts_px)``."""
    return _blob_series
