"""Tomograms by weighted back projection, scored against phantoms projected by code that shares nothing with the
back projector: Gaussian blobs placed by the simulator's projection geometry (``simulate.geometry``, RELION 5's
``Rz Ry Rx X + shift``) and drawn as their exact line integrals, and the second generator's stacks
(``simulate.blob_stack``, with its right-handed helix)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tomoprep.algorithms.local_shifts import LocalShifts
from tomoprep.algorithms.reconstruction import TiltProjection, reconstruct_tomogram
from tomoprep.simulate.blob_stack import BlobStackSpec, _specimen, make_blob_stack
from tomoprep.simulate.geometry import TiltGeometry, project_points

TILTS = [-60.0 + 3.0 * i for i in range(41)]


def _blobs(seed: int, *, size: int, thickness_px: float, count: int) -> np.ndarray:
    """``(count, 5)`` blobs: centre ``(x, y, z)`` px from the specimen centre, sigma px, peak density."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-0.36 * size, 0.36 * size, (count, 2))
    z = rng.uniform(-thickness_px / 2, thickness_px / 2, count)
    return np.column_stack([xy, z, rng.uniform(1.5, 2.5, count), rng.uniform(0.5, 1.5, count)])


def _project(blobs: np.ndarray, geometry: list[TiltGeometry], size: int, warp=None) -> torch.Tensor:
    """Exact projections ``(n, size, size)``: each blob's line integral, a 2-D Gaussian of its own sigma, placed by
    the simulator's geometry (1 Å pixels); ``warp(i, xy)`` adds a displacement (px) to tilt ``i``'s positions."""
    grid = np.arange(size, dtype=float)
    images = []
    for i, g in enumerate(geometry):
        xy, _ = project_points(blobs[:, :3], g, image_shape_yx=(size, size), pixel_spacing_angstrom=1.0)
        if warp is not None:
            xy = xy + warp(i, xy - size // 2)
        sigma, weight = blobs[:, 3:4], blobs[:, 4:5] * blobs[:, 3:4] * math.sqrt(2 * math.pi)
        gx = np.exp(-((grid[None] - xy[:, :1]) ** 2) / (2 * sigma**2))
        gy = np.exp(-((grid[None] - xy[:, 1:]) ** 2) / (2 * sigma**2))
        images.append((gy * weight).T @ gx)
    return torch.from_numpy(np.array(images)).float()


def _volume(blobs: np.ndarray, shape_zyx: tuple[int, int, int]) -> np.ndarray:
    """The phantom sampled on the voxels, ``(nz, ny, nx)``, voxel ``N // 2`` the specimen centre."""
    axes = [np.arange(n, dtype=float) - n // 2 for n in shape_zyx]
    sigma = blobs[:, 3:4]
    gz, gy, gx = (np.exp(-((a[None] - blobs[:, k : k + 1]) ** 2) / (2 * sigma**2))
                  for k, a in zip((2, 1, 0), axes, strict=True))  # fmt: skip
    return np.einsum("b,bz,by,bx->zyx", blobs[:, 4], gz, gy, gx)


def _correlation(volume: torch.Tensor, truth: np.ndarray, margin: int) -> float:
    """Pearson correlation over the voxels at least ``margin`` from the sides (x, y)."""
    a = volume.numpy()[:, margin:-margin, margin:-margin].ravel()
    b = truth[:, margin:-margin, margin:-margin].ravel()
    return float(np.corrcoef(a, b)[0, 1])


def _geometry(tilts, *, axis_deg=85.0, x_tilt_deg=0.0, shifts=None) -> list[TiltGeometry]:
    shifts = np.zeros((len(tilts), 2)) if shifts is None else shifts
    axes = np.broadcast_to(np.asarray(axis_deg, dtype=float), (len(tilts),))
    return [TiltGeometry(float(t), float(a), x_tilt_deg, float(s[0]), float(s[1]))
            for t, a, s in zip(tilts, axes, shifts, strict=True)]  # fmt: skip


def _projections(geometry: list[TiltGeometry], **changes) -> list[TiltProjection]:
    out = [TiltProjection(g.tilt_deg, g.tilt_axis_deg, g.x_tilt_deg, g.shift_x_angstrom, g.shift_y_angstrom)
           for g in geometry]  # fmt: skip
    return [replace(p, **changes) for p in out]


SIZE, THICKNESS, DEPTH = 96, 20.0, 32


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_true_geometry_recovers_the_phantom(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    blobs = _blobs(seed, size=SIZE, thickness_px=THICKNESS, count=70)
    axes = 85.0 + rng.uniform(-8.0, 8.0, len(TILTS))  # per-tilt axis angles
    shifts = rng.uniform(-4, 4, (len(TILTS), 2))
    offset = 4.0  # the tilts are the nominal ones plus this
    geometry = _geometry(np.array(TILTS) + offset, axis_deg=axes, shifts=shifts)
    images = _project(blobs, geometry, SIZE)
    truth = _volume(blobs, (DEPTH, SIZE, SIZE))
    true = _correlation(reconstruct_tomogram(images, _projections(geometry), thickness_px=DEPTH), truth, 14)
    assert true > 0.8
    wrong = {
        "no offset": [replace(p, y_tilt_deg=t) for p, t in zip(_projections(geometry), TILTS, strict=True)],
        "mean axis": _projections(geometry, z_rot_deg=85.0),
        "no shifts": _projections(geometry, shift_x_px=0.0, shift_y_px=0.0),
    }
    for name, projections in wrong.items():
        score = _correlation(reconstruct_tomogram(images, projections, thickness_px=DEPTH), truth, 14)
        assert score < true - 0.05, name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_x_tilt_is_honoured(seed: int) -> None:
    blobs = _blobs(seed, size=SIZE, thickness_px=THICKNESS, count=70)
    truth = _volume(blobs, (DEPTH, SIZE, SIZE))
    tilted = _geometry(TILTS, x_tilt_deg=6.0)
    images = _project(blobs, tilted, SIZE)
    honoured = _correlation(reconstruct_tomogram(images, _projections(tilted), thickness_px=DEPTH), truth, 14)
    ignored = _correlation(reconstruct_tomogram(images, _projections(tilted, x_tilt_deg=0.0), thickness_px=DEPTH),
                           truth, 14)  # fmt: skip
    flat = _geometry(TILTS)
    reference = _correlation(reconstruct_tomogram(_project(blobs, flat, SIZE), _projections(flat), thickness_px=DEPTH),
                             truth, 14)  # fmt: skip
    assert honoured > ignored + 0.1
    assert honoured > reference - 0.03


@pytest.mark.slow
def test_per_tilt_x_tilts_are_honoured() -> None:
    blobs = _blobs(3, size=SIZE, thickness_px=THICKNESS, count=70)
    truth = _volume(blobs, (DEPTH, SIZE, SIZE))
    geometry = [replace(g, x_tilt_deg=2.0 + 0.25 * i) for i, g in enumerate(_geometry(TILTS))]
    images = _project(blobs, geometry, SIZE)
    honoured = _correlation(reconstruct_tomogram(images, _projections(geometry), thickness_px=DEPTH), truth, 14)
    mean = _correlation(reconstruct_tomogram(images, _projections(geometry, x_tilt_deg=7.0), thickness_px=DEPTH),
                        truth, 14)  # fmt: skip
    assert honoured > 0.8
    assert honoured > mean + 0.02


@pytest.mark.parametrize("x_tilt_deg", [0.0, -5.0])
def test_slabs_equal_one_pass(x_tilt_deg: float) -> None:
    images = torch.randn(21, 70, 52, generator=torch.Generator().manual_seed(1))
    projections = [TiltProjection(t, 80.0, x_tilt_deg, 1.0, -2.5) for t in TILTS[::2]]
    whole = reconstruct_tomogram(images, projections, thickness_px=23)
    out = np.full((23, 70, 52), np.nan, dtype=np.float32)
    slabbed = reconstruct_tomogram(images, projections, thickness_px=23, out=out, max_memory_bytes=1)
    assert np.shares_memory(slabbed.numpy(), out)
    assert torch.allclose(slabbed, whole, atol=1e-5 * float(whole.abs().max()), rtol=0)


def test_wrong_out_is_refused() -> None:
    images = torch.zeros(3, 8, 8)
    projections = [TiltProjection(t, 0.0) for t in (-30, 0, 30)]
    with pytest.raises(ValueError, match="out must be"):
        reconstruct_tomogram(images, projections, thickness_px=4, out=np.zeros((4, 8, 9), dtype=np.float32))


def _warp(i: int, xy: np.ndarray) -> np.ndarray:
    """A smooth displacement of tilt ``i``'s content, px, at image positions ``xy`` (px from the centre)."""
    phase = 0.3 * i
    return np.column_stack([2.5 * np.sin(2 * np.pi * xy[:, 1] / 120 + phase),
                            2.0 * np.cos(2 * np.pi * xy[:, 0] / 140 - phase)])  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_local_shifts_undo_a_smooth_warp(seed: int) -> None:
    blobs = _blobs(seed, size=SIZE, thickness_px=THICKNESS, count=70)
    truth = _volume(blobs, (DEPTH, SIZE, SIZE))
    geometry = _geometry(TILTS, axis_deg=80.0, shifts=np.random.default_rng(seed).uniform(-3, 3, (len(TILTS), 2)))
    images = _project(blobs, geometry, SIZE, warp=_warp)
    projections = _projections(geometry)
    side = np.linspace(-40, 40, 5)
    patches = torch.tensor([[x, y, 0.0] for y in side for x in side])
    positions = LocalShifts.from_patches(patches, torch.zeros(len(TILTS), len(patches), 2), projections).positions_px
    shifts = torch.from_numpy(np.stack([_warp(i, p.numpy()) for i, p in enumerate(positions)]))
    local = LocalShifts.from_patches(patches, shifts, projections)
    plain = _correlation(reconstruct_tomogram(images, projections, thickness_px=DEPTH), truth, 14)
    corrected = _correlation(reconstruct_tomogram(images, projections, thickness_px=DEPTH, local_shifts=local),
                             truth, 14)  # fmt: skip
    reference = _correlation(reconstruct_tomogram(_project(blobs, geometry, SIZE), projections, thickness_px=DEPTH),
                             truth, 14)  # fmt: skip
    assert corrected > plain + 0.1
    assert corrected > reference - 0.05


def _helix_stack(seed: int) -> tuple[torch.Tensor, list[TiltProjection], np.ndarray]:
    """A blob stack (dark mass turned bright), its true geometry, and its helix's blobs as :func:`_blobs` gives
    them (the generator's own draw repeated)."""
    spec = BlobStackSpec(size_px=96, thickness_px=32.0, noise_to_signal=0.3, blob_volume_fraction=0.2,
                         blob_sigma_px=(1.0, 2.0), helix_blobs=12, seed=seed)  # fmt: skip
    stack, truth = make_blob_stack(spec)
    projections = [TiltProjection(t, truth.tilt_axis_deg, 0.0, s[0], s[1])
                   for t, s in zip(truth.tilts_deg, truth.shifts_px, strict=True)]  # fmt: skip
    centres, sigmas, _ = _specimen(spec, np.random.default_rng(seed))
    helix = np.column_stack([centres[-spec.helix_blobs :], sigmas[-spec.helix_blobs :], np.ones(spec.helix_blobs)])
    return -torch.from_numpy(stack), projections, helix


def _hand_score(volume: np.ndarray, helix: np.ndarray) -> float:
    """How much better the volume matches the right-handed helix than its mirror image (z turned), each at its
    best rotation about z (10° steps, so the score does not depend on how the helix is turned): the difference of
    the two best correlations in a box around the helix."""
    nz, ny, nx = volume.shape
    box = np.s_[:, ny // 2 - 14 : ny // 2 + 15, nx // 2 - 14 : nx // 2 + 15]
    seen = volume[box].ravel()
    best = []
    for hand in (1, -1):
        scores = []
        for angle in np.radians(np.arange(0, 360, 10)):
            c, s = math.cos(angle), math.sin(angle)
            turned = helix @ np.array([[c, s, 0, 0, 0], [-s, c, 0, 0, 0], [0, 0, hand, 0, 0], [0, 0, 0, 1, 0],
                                       [0, 0, 0, 0, 1]])  # fmt: skip
            scores.append(np.corrcoef(seen, _volume(turned, (nz, 29, 29)).ravel())[0, 1])  # the box's voxels
        best.append(max(scores))
    return float(best[0] - best[1])


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_helix_keeps_its_hand(seed: int) -> None:
    images, projections, helix = _helix_stack(seed)
    depth = 48
    assert _hand_score(reconstruct_tomogram(images, projections, thickness_px=depth).numpy(), helix) > 0.05
    turned = [replace(p, z_rot_deg=p.z_rot_deg + 180.0) for p in projections]
    flipped = [replace(p, y_tilt_deg=-p.y_tilt_deg) for p in projections]
    for mirrored in (turned, flipped):
        assert _hand_score(reconstruct_tomogram(images, mirrored, thickness_px=depth).numpy(), helix) < -0.05


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def _peak_growth_bytes(run) -> int:
    """How far the resident memory rose above its level at the start while ``run()`` ran (Linux: the high-water
    mark is reset through ``/proc/self/clear_refs``)."""
    Path("/proc/self/clear_refs").write_text("5")
    start = _status_kib("VmRSS")
    run()
    return (_status_kib("VmHWM") - start) * 1024


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/self/clear_refs")
def test_peak_memory_follows_the_slab_not_the_volume() -> None:
    images = torch.randn(21, 1024, 48, generator=torch.Generator().manual_seed(2))
    projections = [TiltProjection(t, 90.0, 3.0) for t in TILTS[::2]]
    reconstruct_tomogram(images[:, :64], projections, thickness_px=16)  # first-call allocations (thread pools)
    out = np.empty((512, 1024, 48), dtype=np.float32)
    out.fill(0.0)  # 100 MB, resident before measuring
    budget = 32 * 2**20  # the filtered stack (4 MB), the tables (8 MB), the rest for slabs of a few dozen rows
    slabbed = _peak_growth_bytes(
        lambda: reconstruct_tomogram(images, projections, thickness_px=512, out=out, max_memory_bytes=budget)
    )
    whole = _peak_growth_bytes(lambda: reconstruct_tomogram(images, projections, thickness_px=512))
    assert slabbed < 1.5 * budget  # the bound, with room for the allocator's slack (measured: 39 MB of 34)
    assert slabbed < 0.5 * out.nbytes
    assert whole > out.nbytes


@pytest.mark.parametrize("x_tilt_deg", [0.0, 4.0])
def test_thread_count_does_not_change_the_tomogram(x_tilt_deg: float) -> None:
    images = torch.randn(21, 64, 56, generator=torch.Generator().manual_seed(3))
    projections = [TiltProjection(t, 85.0, x_tilt_deg, 2.0, -1.0) for t in TILTS[::2]]
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(reconstruct_tomogram(images, projections, thickness_px=24))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(results[0], results[1])
