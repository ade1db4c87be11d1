"""Scoring tomograms of simulated series against the simulator's truth: the true poses as an alignment, the
phantom on a tomogram's grid, correlations, and the chiral marker's window."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from tomoprep.io.mrc import read_mrc
from tomoprep.model import TiltAlignment, TiltSeries
from tomoprep.simulate.truth import SeriesTruth

#: Half side of the window around the chiral marker's junction (Å): its arms are 600, 400 and 250 Å long.
CHIRAL_WINDOW_ANGSTROM = 400.0


def with_true_poses(ts: TiltSeries, truth: SeriesTruth) -> TiltSeries:
    """``ts`` aligned with the simulator's true geometry and its slab's thickness measured exactly."""
    tilts = []
    for tilt in ts.tilts:
        true = truth.tilt(tilt.acquisition.acquisition_index)
        pose = TiltAlignment(true.true_tilt_deg, true.true_tilt_axis_deg, true.x_tilt_deg, true.shift_x_angstrom,
                             true.shift_y_angstrom)  # fmt: skip
        tilts.append(replace(tilt, alignment=pose))
    return replace(ts, tilts=tuple(tilts), specimen_thickness_angstrom=truth.thickness_angstrom)


def phantom_on_grid(
    session: Path, truth: SeriesTruth, shape_zyx: tuple[int, ...], voxel_angstrom: float, *, y_rotation_deg: float = 0.0
) -> np.ndarray:
    """The truth's phantom volume on a tomogram's grid (same voxel size; centre voxels ``N // 2`` on each other,
    cut or padded with 0), in a frame turned by ``y_rotation_deg`` about the specimen's y axis.

    An alignment whose tilts are the true ones plus ``Δ`` (its tilt offset levels a pretilted slab) projects
    ``Ry(θ + Δ) r' = Ry(θ) r``: its specimen frame is ``r' = Ry(-Δ) r``, where the phantom reads
    ``phantom(Ry(Δ) r')``.
    """
    assert abs(truth.phantom_volume_voxel_size_angstrom - voxel_angstrom) < 1e-6, "compare at the phantom's voxel"
    phantom = read_mrc(session / truth.phantom_volume)
    if y_rotation_deg:
        phantom = _turned_about_y(phantom, y_rotation_deg)
    out = np.zeros(shape_zyx, dtype=np.float32)
    source, target = [], []
    for n_in, n_out in zip(phantom.shape, shape_zyx, strict=True):
        offset = n_in // 2 - n_out // 2  # phantom index = tomogram index + offset
        low, high = max(0, -offset), min(n_out, n_in - offset)
        target.append(slice(low, high))
        source.append(slice(low + offset, high + offset))
    out[tuple(target)] = phantom[tuple(source)]
    return out


def _turned_about_y(volume: np.ndarray, angle_deg: float) -> np.ndarray:
    """``volume(Ry(angle) r)`` about the centre voxel (linear interpolation)."""
    from scipy.ndimage import affine_transform

    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    # Ry in (z, y, x) index order: x_in = c x + s z, z_in = -s x + c z.
    matrix = np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])
    centre = np.array([n // 2 for n in volume.shape], dtype=float)
    return affine_transform(volume, matrix, offset=centre - matrix @ centre, order=1)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two arrays of one shape."""
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def chiral_window(
    truth: SeriesTruth, shape_zyx: tuple[int, ...], voxel_angstrom: float, *, y_rotation_deg: float = 0.0
) -> tuple[slice, ...]:
    """The window of a tomogram's grid around the chiral marker's junction (in the frame of
    :func:`phantom_on_grid` turned by ``y_rotation_deg``)."""
    c, s = np.cos(np.radians(y_rotation_deg)), np.sin(np.radians(y_rotation_deg))
    x, y, z = truth.phantom["chiral"]["centre_angstrom"]
    junction_xyz = np.array([c * x - s * z, y, s * x + c * z])  # Ry(-angle) of the true junction
    centre = np.round(junction_xyz[::-1] / voxel_angstrom).astype(int) + np.array([n // 2 for n in shape_zyx])
    half = round(CHIRAL_WINDOW_ANGSTROM / voxel_angstrom)
    return tuple(slice(max(0, c - half), min(n, c + half)) for c, n in zip(centre, shape_zyx, strict=True))


def registered(tomogram: np.ndarray, phantom: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """``tomogram`` moved by whole voxels (circularly) to where its negative best matches the phantom, and the move
    ``(z, y, x)``: an alignment places the specimen's centre where its data put it, not where the simulator did."""
    a, b = -(tomogram - tomogram.mean()), phantom - phantom.mean()
    cross = np.fft.irfftn(np.fft.rfftn(b) * np.conj(np.fft.rfftn(a)), s=a.shape, axes=(0, 1, 2))
    peak = np.unravel_index(int(np.argmax(cross)), cross.shape)
    move = tuple(int(p) if p <= n // 2 else int(p) - n for p, n in zip(peak, a.shape, strict=True))
    return np.roll(tomogram, move, axis=(0, 1, 2)), move


def scores(tomogram: np.ndarray, phantom: np.ndarray, window: tuple[slice, ...]) -> dict[str, float]:
    """Correlations with the phantom (dense matter is dark in a tomogram, so of its negative), each volume moved to
    match it best first: over the volume, at the chiral marker, and at the marker of the tomogram mirrored through
    its centre plane (what a wrong hand gives); and the move's length (voxels)."""
    moved, move = registered(tomogram, phantom)
    mirrored, _ = registered(tomogram[::-1], phantom)
    return {
        "volume": correlation(-moved, phantom),
        "chiral": correlation(-moved[window], phantom[window]),
        "chiral_mirrored": correlation(-mirrored[window], phantom[window]),
        "move_voxels": float(np.linalg.norm(move)),
    }


def shell_fsc(a: np.ndarray, b: np.ndarray, *, n_shells: int = 10) -> np.ndarray:
    """Fourier shell correlation of two volumes in ``n_shells`` equal shells from 0 to Nyquist (0.5 cycles/voxel)."""
    fa, fb = np.fft.fftn(a), np.fft.fftn(b)
    axes = np.meshgrid(*[np.fft.fftfreq(n) for n in a.shape], indexing="ij")
    shell = np.minimum((np.sqrt(sum(g**2 for g in axes)) / 0.5 * n_shells).astype(int), n_shells)
    fsc = []
    for index in range(n_shells):
        inside = shell == index
        cross = np.real((fa[inside] * np.conj(fb[inside])).sum())
        fsc.append(cross / np.sqrt((np.abs(fa[inside]) ** 2).sum() * (np.abs(fb[inside]) ** 2).sum()))
    return np.array(fsc)
