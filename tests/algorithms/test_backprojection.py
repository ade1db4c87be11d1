"""Single-axis projection and back projection: points land where RELION's ``Ry(t)`` puts them, projection and
back projection are each other's transpose, and a weighted back projection puts a point back where it was."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tomoprep.algorithms.backprojection import (
    align_images,
    backproject,
    filter_rows,
    project,
    slices_to_volume,
    weighting_filter,
)
from tomoprep.algorithms.tilt_geometry import rotation_2d

NY, NZ, NX = 6, 32, 64


def _blob_slices(centre_yzx: tuple[float, float, float], sigma_px: float = 1.5) -> torch.Tensor:
    """Slices ``(ny, nz, nx)`` holding one Gaussian blob at ``centre_yzx`` (voxels from the centres ``N // 2``)."""
    y = np.arange(NY)[:, None, None] - NY // 2
    z = np.arange(NZ)[None, :, None] - NZ // 2
    x = np.arange(NX)[None, None, :] - NX // 2
    cy, cz, cx = centre_yzx
    blob = np.exp(-((y - cy) ** 2 + (z - cz) ** 2 + (x - cx) ** 2) / (2 * sigma_px**2))
    return torch.from_numpy(blob.astype(np.float32))


def _smooth(shape: tuple[int, ...], seed: int, sigma_px: float = 2.0) -> torch.Tensor:
    """Random field of ``shape`` smoothed by a Gaussian of ``sigma_px`` along every axis."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfftn(rng.normal(size=shape))
    k2 = sum(np.meshgrid(*[np.fft.fftfreq(n) ** 2 for n in shape[:-1]], np.fft.rfftfreq(shape[-1]) ** 2, indexing="ij"))
    return torch.from_numpy(
        np.fft.irfftn(spectrum * np.exp(-2 * (math.pi * sigma_px) ** 2 * k2), s=shape, axes=range(len(shape)))
    ).float()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_blob_projects_to_x_cos_t_plus_z_sin_t(seed):
    rng = np.random.default_rng(seed)
    y0, z0, x0 = float(rng.integers(-2, 2)), rng.uniform(-8, 8), rng.uniform(-12, 12)
    slices = _blob_slices((y0, z0, x0))
    for tilt in (-55.0, -20.0, 0.0, 35.0, 60.0):
        image = project(slices, tilt).double()
        assert image.shape == (NY, NX)
        u = torch.arange(NX, dtype=torch.float64) - NX // 2
        row = image[int(y0) + NY // 2]
        t = math.radians(tilt)
        assert float((row * u).sum() / row.sum()) == pytest.approx(x0 * math.cos(t) + z0 * math.sin(t), abs=0.02)
        # A line integral: the projection keeps the mass.
        assert float(image.sum()) == pytest.approx(float(slices.sum()), rel=0.01)


@pytest.mark.parametrize("tilt", [0.0, -30.0, 48.0, 65.0])
def test_projection_and_back_projection_are_adjoint(tilt):
    """``<P x, y> = <x, B y>`` for smooth ``x`` held well inside the slices (so its rays stay in the image)."""
    for seed in (1, 2, 3):
        x = _smooth((NY, NZ, NX), seed=seed) * _blob_slices((0, 0, 0), sigma_px=6.0)
        y = _smooth((1, NY, NX), seed=seed + 10)
        projected = project(x, tilt)
        forward = float((projected * y[0]).sum())
        backward = float((x * backproject(y, [tilt], nz=NZ)).sum())
        scale = float(projected.norm() * y.norm())
        # Untilted the two are exact transposes. Tilted, the ray-driven projection and the voxel-driven back
        # projection interpolate differently (linearly along x and along u): on fields smooth over 2 voxels they
        # differed by at most 0.0026 of |P x| |y| up to 65° (0.0009 over 4 voxels: an interpolation error).
        tolerance = 1e-6 if tilt == 0.0 else 0.005
        assert abs(forward - backward) <= tolerance * scale


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_back_projection_puts_a_blob_back_where_it_was(seed):
    rng = np.random.default_rng(seed)
    centre = (0.0, rng.uniform(-8, 8), rng.uniform(-15, 15))
    slices = _blob_slices(centre)
    tilts = np.arange(-60.0, 60.1, 3.0)
    images = torch.stack([project(slices, float(t)) for t in tilts])
    weight = weighting_filter((NY, NX), kind="ramp", lowpass=0.5, n_tilts=len(tilts))
    volume = slices_to_volume(backproject(filter_rows(images, weight), tilts.tolist(), nz=NZ))
    assert volume.shape == (NZ, NY, NX)
    plane = volume[:, NY // 2]  # (z, x) at the blob's y
    iz, ix = divmod(int(plane.argmax()), NX)
    # Along z the missing wedge elongates the blob, so its maximum is found less sharply than along x.
    assert ix - NX // 2 == pytest.approx(centre[2], abs=0.6)
    assert iz - NZ // 2 == pytest.approx(centre[1], abs=1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aligned_images_have_the_axis_along_y_and_the_shift_removed(seed):
    rng = np.random.default_rng(seed)
    axis, shift, point = rng.uniform(-180, 180), rng.uniform(-6, 6, 2), rng.uniform(-10, 10, 2)
    n = 64
    # A blob at ``point`` in the aligned frame lies at Rz(axis) point + shift in the image.
    where = rotation_2d(axis).numpy() @ point + shift
    yy, xx = np.mgrid[:n, :n] - n // 2
    image = np.exp(-((xx - where[0]) ** 2 + (yy - where[1]) ** 2) / (2 * 2.0**2))
    aligned = align_images(torch.from_numpy(image[None]).float(), axis_deg=axis,
                           shifts_px=torch.from_numpy(shift[None]))[0].double()  # fmt: skip
    mass = aligned.clamp_min(0)
    centroid = [float((mass * torch.from_numpy(c)).sum() / mass.sum()) for c in (xx, yy)]
    assert centroid == pytest.approx(point.tolist(), abs=0.05)


def test_ramp_weighting_is_proportional_to_frequency_below_the_lowpass():
    weight = weighting_filter((8, 128), kind="ramp", lowpass=0.4)
    k = torch.fft.rfftfreq(128)
    band = (k > 0) & (k < 0.35)
    assert torch.allclose(weight[band], k[band], rtol=1e-5)
    assert float(weight[0]) > 0  # the mean survives
    assert (weight[k >= 0.4] == 0).all()
    sirt = weighting_filter((8, 128), kind="sirt", lowpass=0.4, n_tilts=41)
    assert (sirt <= weight + 1e-7).all() and float(sirt[band].max()) == pytest.approx(1 / 41, rel=1e-5)
    with pytest.raises(ValueError, match="ramp or sirt"):
        weighting_filter((8, 128), kind="shepp")
