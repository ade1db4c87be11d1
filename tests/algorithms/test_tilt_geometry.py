"""Geometry of tilt images: rotations, the direction across the axis, stretching, and affine resampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tomoprep.algorithms.tilt_geometry import (
    across_axis,
    centre_px,
    projection_rotation,
    resample,
    rotation_2d,
    rotation_3d,
    stretch_matrix,
)

ANGLES_DEG = [-140.0, -95.0, 0.0, 3.0, 30.0, 84.3, 178.0]


@pytest.mark.parametrize("angle_deg", ANGLES_DEG)
def test_rotation_2d_is_counter_clockwise_and_orthonormal(angle_deg: float) -> None:
    r = rotation_2d(angle_deg)
    assert torch.allclose(r @ r.T, torch.eye(2, dtype=torch.float64))
    assert torch.linalg.det(r).item() == pytest.approx(1.0)
    x_turned = r @ torch.tensor([1.0, 0.0], dtype=torch.float64)
    a = math.radians(angle_deg)
    assert x_turned.tolist() == pytest.approx([math.cos(a), math.sin(a)])
    assert (rotation_2d(90.0) @ torch.tensor([1.0, 0.0], dtype=torch.float64)).tolist() == pytest.approx([0.0, 1.0])


@pytest.mark.parametrize("axis_deg", ANGLES_DEG)
def test_across_axis_is_perpendicular_to_the_axis_direction(axis_deg: float) -> None:
    a = math.radians(axis_deg)
    along = torch.tensor([-math.sin(a), math.cos(a)], dtype=torch.float64)
    p = across_axis(axis_deg)
    assert float(p @ along) == pytest.approx(0.0, abs=1e-12)
    assert float(p.norm()) == pytest.approx(1.0)
    # The axis at 0° is the image Y axis; across it is +x.
    assert across_axis(0.0).tolist() == pytest.approx([1.0, 0.0])


@pytest.mark.parametrize("axis_deg", ANGLES_DEG)
def test_stretch_scales_across_the_axis_only(axis_deg: float) -> None:
    factor = 0.5
    m = stretch_matrix(axis_deg, factor)
    p = across_axis(axis_deg)
    along = torch.tensor([-p[1], p[0]], dtype=torch.float64)
    assert torch.allclose(m @ p, factor * p)
    assert torch.allclose(m @ along, along)
    assert torch.allclose(stretch_matrix(axis_deg, 1.0), torch.eye(2, dtype=torch.float64))


def test_rotation_3d_is_right_handed_about_each_axis() -> None:
    x, y, z = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(rotation_3d(2, 90.0) @ x, y)
    assert torch.allclose(rotation_3d(0, 90.0) @ y, z)
    assert torch.allclose(rotation_3d(1, 90.0) @ z, x)
    for axis in range(3):
        r = rotation_3d(axis, 37.0)
        assert torch.allclose(r @ r.T, torch.eye(3, dtype=torch.float64))
        assert torch.linalg.det(r).item() == pytest.approx(1.0)


def test_projection_rotation_is_z_then_y_then_x_as_relion() -> None:
    expected = rotation_3d(2, 85.0) @ rotation_3d(1, -30.0) @ rotation_3d(0, 2.0)
    assert torch.allclose(projection_rotation(y_tilt_deg=-30.0, z_rot_deg=85.0, x_tilt_deg=2.0), expected)
    # Tilted about the image Y axis (z_rot 0), a point above the specimen centre moves along +x for a positive tilt.
    point = torch.tensor([0.0, 0.0, 10.0], dtype=torch.float64)
    moved = projection_rotation(y_tilt_deg=30.0, z_rot_deg=0.0) @ point
    assert moved[0].item() == pytest.approx(10.0 * math.sin(math.radians(30.0)))


def test_centre_is_the_n_over_2_pixel() -> None:
    assert centre_px((64, 65)) == (32, 32)
    assert centre_px((33, 128)) == (64, 16)


def _random_images(n: int, ny: int, nx: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((n, ny, nx)).astype(np.float32))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_resample_identity_and_integer_offsets(seed: int) -> None:
    images = _random_images(2, 32, 40, seed)
    same = resample(images, torch.eye(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    assert torch.allclose(same, images, atol=1e-5)
    # out(r) = in(r + o): with o = (3, -2) the content moves by (-3, +2), and what comes from outside is zero.
    moved = resample(images, torch.eye(2, dtype=torch.float64), torch.tensor([3.0, -2.0], dtype=torch.float64))
    assert torch.allclose(moved[:, 2:, :-3], images[:, :-2, 3:], atol=1e-5)
    # (float32 sample positions leave up to a few 1e-6 of the edge pixel in the first outside column)
    assert moved[:, :, -3:].abs().max() < 1e-4 and moved[:, :2, :].abs().max() < 1e-4


@pytest.mark.parametrize("seed", [0, 1])
def test_resample_turns_about_the_centre_pixel(seed: int) -> None:
    # An odd size, so that the centre pixel N // 2 is also the array's centre and rot90 turns about it.
    images = _random_images(1, 33, 33, seed)
    turned = resample(images, rotation_2d(90.0), torch.zeros(2, dtype=torch.float64))
    # out(x, y) = in(-y, x): output row y, column x is input row x, column -y, which is torch's rot90 by +1.
    expected = torch.rot90(images, k=1, dims=(1, 2))
    assert torch.allclose(turned, expected, atol=1e-4)


def test_resample_to_another_shape_keeps_the_centres_together() -> None:
    images = _random_images(3, 40, 48, 5)
    matrices = torch.eye(2, dtype=torch.float64).expand(3, 2, 2)
    cropped = resample(images, matrices, torch.zeros(3, 2, dtype=torch.float64), out_shape_yx=(20, 24))
    assert cropped.shape == (3, 20, 24)
    # Output pixel (10, 12) is its centre, input pixel (20, 24) is the input's.
    assert torch.allclose(cropped, images[:, 10:30, 12:36], atol=1e-5)
