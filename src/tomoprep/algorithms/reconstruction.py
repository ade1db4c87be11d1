"""Tomograms from aligned tilt series: weighted back projection with a ramp or SIRT-like filter, slab by slab.

Geometry
    Each tilt's projection is RELION 5's (``model.TiltAlignment``), in pixels of the images given:
    ``image(Rz(z_rot) (u, v) + shift) = [Ry(t) Rx(a) r]_(x, y)`` for a specimen point ``r = (x, y, z)`` relative
    to the volume's centre voxel (``t`` the y-tilt, ``a`` the x-tilt). :func:`~tomoprep.algorithms.backprojection.
    align_images` undoes ``Rz`` and the shift (and :mod:`~tomoprep.algorithms.local_shifts` the local shifts);
    in that aligned frame ``r`` lands at::

        u = x cos t + (y sin a + z cos a) sin t,        v = y cos a - z sin a.

    In the frame turned by the x-tilt, ``y' = y cos a - z sin a``, ``z' = y sin a + z cos a``, this is single-axis
    tomography (``u = x cos t + z' sin t``, ``v = y'``): tilts sharing one x-tilt are back-projected there, onto
    the rows ``y'`` of their aligned images, and that volume is sampled (bilinear in ``(y', z')``) at the voxels
    ``(y, z)`` asked for. An x-tilt of 0 needs no resampling.
Memory
    The volume is made in slabs of rows ``y`` (all ``z`` and ``x``) so that the working memory stays within
    ``max_memory_bytes``: the filtered aligned stack (``n ny nx`` float32, made a few images at a time), the
    interpolation tables (``2 n`` int32 + float32 per voxel of one ``(z', x)`` slice), and per slab the rows of the
    stack it needs, the slab in the turned frame and the slab itself. ``out`` (e.g. the data of
    ``mrcfile.new_mmap``) receives the slabs one by one, so the whole volume never needs to be in memory.
Output
    A ``(nz, ny, nx)`` float32 volume (``conventions.py``), ``ny, nx`` those of the images, voxel ``(nz // 2,
    ny // 2, nx // 2)`` the specimen centre, the voxel size that of the images' pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional

from tomoprep.algorithms.backprojection import EDGE_TAPER_FRACTION, backproject_bags, bag_tables
from tomoprep.algorithms.fourier import taper_edges
from tomoprep.algorithms.local_shifts import LocalShifts, align_images_locally
from tomoprep.algorithms.sirt_filter import sirt_like_filter
from tomoprep.algorithms.tilt_geometry import rotation_2d

#: Default bound on the working memory of :func:`reconstruct_tomogram`, bytes.
DEFAULT_MAX_MEMORY_BYTES = 4 * 2**30
#: Tilts whose x-tilts differ by less than this (degrees) are back-projected in one turned frame.
X_TILT_TOLERANCE_DEG = 1e-4
#: Working bytes per pixel of an image being aligned and filtered (grids, padded spectra).
_ALIGN_BYTES_PER_PIXEL = 128
#: Bound on the temporaries of the images aligned and filtered at once, bytes: small images go together (fewer,
#: larger operations), large ones one or two at a time.
_ALIGN_TEMPORARY_BYTES = 64 * 2**20
#: The most rows per slab. Within the memory bound, wider slabs were faster (41 tilts of 512² into 128 slices, rows
#: 16/64/256/512: 18/14/10/6.5 s on a loaded 2-core machine): every gathered sample serves that many rows.
MAX_ROWS_PER_SLAB = 1024


@dataclass(frozen=True)
class TiltProjection:
    """One tilt's geometry in pixels of the images reconstructed (RELION 5's fields, shifts divided by the pixel
    spacing): ``y_tilt_deg`` the tilt about the axis (tilt offset included), ``z_rot_deg`` the tilt-axis angle
    (counter-clockwise from the image Y axis), ``x_tilt_deg`` the tilt about the specimen x axis, and the shift of
    the projected specimen centre from the image centre, ``(x, y)`` pixels."""

    y_tilt_deg: float
    z_rot_deg: float
    x_tilt_deg: float = 0.0
    shift_x_px: float = 0.0
    shift_y_px: float = 0.0


@dataclass(frozen=True)
class _Group:
    """Tilts sharing one x-tilt: their indices, y-tilts, and the interpolation tables of every depth ``z'`` of
    the turned frame from ``first_depth_px`` on (``n_depths`` of them)."""

    x_tilt_rad: float
    index: torch.Tensor
    first_depth_px: int
    n_depths: int
    indices: torch.Tensor
    weights: torch.Tensor


def reconstruct_tomogram(
    images: torch.Tensor,
    projections: Sequence[TiltProjection],
    *,
    thickness_px: int,
    sirt_iterations: int | None = None,
    lowpass: float = 0.5,
    local_shifts: LocalShifts | None = None,
    out: np.ndarray | None = None,
    max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
) -> torch.Tensor:
    """Weighted back projection of a tilt series into a ``(thickness_px, ny, nx)`` volume.

    Parameters
    ----------
    images
        ``(n, ny, nx)`` tilt images (excluded tilts already left out), on the device to compute on.
    projections
        ``(n,)`` geometry of each image.
    thickness_px
        Depth of the volume, voxels (≥ 1).
    sirt_iterations
        ``None`` for exact weighted back projection (ramp filter); ``N`` for the SIRT-like filter equivalent to
        ``N`` SIRT iterations (:mod:`tomoprep.algorithms.sirt_filter`).
    lowpass
        Cosine roll-off edge of the weighting, cycles/pixel (0.5 = Nyquist).
    local_shifts
        Patch tracking's local shifts of these images (:class:`~tomoprep.algorithms.local_shifts.LocalShifts`),
        applied as a smooth 2-D warp of each image; None: global alignment only.
    out
        ``(thickness_px, ny, nx)`` float32 array (e.g. an ``mrcfile.new_mmap``'s data) written slab by slab and
        returned as a tensor sharing its memory (on the CPU); None: a new tensor on the images' device.
    max_memory_bytes
        Bound on the working memory (module notes), bytes; the slabs are as thick as it allows (at least one row).

    Returns
    -------
    torch.Tensor
        ``(thickness_px, ny, nx)`` float32 volume.
    """
    _check_inputs(images, projections, thickness_px, local_shifts, out)
    n, ny, nx = images.shape
    filtered = _filtered_stack(images, projections, thickness_px=thickness_px, sirt_iterations=sirt_iterations,
                               lowpass=lowpass, local_shifts=local_shifts,
                               max_memory_bytes=max_memory_bytes)  # fmt: skip
    shape = (thickness_px, ny, nx)
    groups = [_group(index, projections, shape, images.device) for index in _x_tilt_groups(projections)]
    rows = _rows_per_slab(groups, (thickness_px, ny, nx), fixed_bytes=filtered.numel() * 4,
                          max_memory_bytes=max_memory_bytes)  # fmt: skip
    if out is None:
        volume = torch.empty((thickness_px, ny, nx), dtype=torch.float32, device=images.device)
    else:
        volume = torch.from_numpy(out)
    for y0 in range(0, ny, rows):
        y1 = min(ny, y0 + rows)
        slab = _slab(filtered, groups[0], y0, y1, thickness_px)
        for group in groups[1:]:
            slab = slab + _slab(filtered, group, y0, y1, thickness_px)
        volume[:, y0:y1] = (slab / n).to(volume.device)
    return volume


def _check_inputs(images: torch.Tensor, projections: Sequence[TiltProjection], thickness_px: int,
                  local_shifts: LocalShifts | None, out: np.ndarray | None) -> None:  # fmt: skip
    if images.ndim != 3 or images.shape[0] != len(projections):
        raise ValueError(f"{len(projections)} projections need an (n, y, x) stack of as many images, "
                         f"got shape {tuple(images.shape)}")  # fmt: skip
    if thickness_px < 1:
        raise ValueError(f"the tomogram's thickness must be at least 1 voxel, got {thickness_px}")
    if local_shifts is not None and local_shifts.positions_px.shape[0] != len(projections):
        raise ValueError(f"local shifts are given for {local_shifts.positions_px.shape[0]} tilts, "
                         f"the images are {len(projections)}")  # fmt: skip
    shape = (thickness_px, images.shape[1], images.shape[2])
    if out is not None and (tuple(out.shape) != shape or out.dtype != np.float32 or not out.flags.writeable):
        raise ValueError(f"out must be a writable float32 array of shape {shape}, "
                         f"got {out.dtype} {tuple(out.shape)}")  # fmt: skip


def _filtered_stack(images: torch.Tensor, projections: Sequence[TiltProjection], *, thickness_px: int,
                    sirt_iterations: int | None, lowpass: float, local_shifts: LocalShifts | None,
                    max_memory_bytes: int) -> torch.Tensor:  # fmt: skip
    """Aligned images with their rows weighted (ramp or SIRT-like, rows padded to twice their length), ``(n, ny,
    nx)`` float32, made a few images at a time."""
    n, ny, nx = images.shape
    padded = 2 * nx
    tilts = [p.y_tilt_deg for p in projections]
    weight = sirt_like_filter(padded, tilts, iterations=sirt_iterations, thickness_px=float(thickness_px),
                              lowpass=lowpass, device=str(images.device))  # fmt: skip
    shifts = torch.tensor([[p.shift_x_px, p.shift_y_px] for p in projections], dtype=torch.float64)
    room = min(_ALIGN_TEMPORARY_BYTES, max_memory_bytes // 4)
    chunk = int(min(n, max(1, room // (_ALIGN_BYTES_PER_PIXEL * ny * nx))))
    filtered = torch.empty((n, ny, nx), dtype=torch.float32, device=images.device)
    for start in range(0, n, chunk):
        part = range(start, min(n, start + chunk))
        axes, own = [projections[i].z_rot_deg for i in part], slice(part.start, part.stop)
        if local_shifts is None:
            aligned = _align(images[own], axes, shifts[own])
        else:
            aligned = align_images_locally(images[own], axis_deg=axes, shifts_px=shifts[own],
                                           local=local_shifts.select(part))  # fmt: skip
        spectrum = torch.fft.rfft(aligned, n=padded, dim=-1)
        filtered[own] = torch.fft.irfft(spectrum * weight, n=padded, dim=-1)[..., :nx]
    return filtered


def _align(images: torch.Tensor, axes_deg: Sequence[float], shifts_px: torch.Tensor) -> torch.Tensor:
    """:func:`~tomoprep.algorithms.backprojection.align_images` (edges tapered, mean removed, then ``out(q) =
    in(Rz q + shift)``, bilinear), with the sampling grid made by ``affine_grid`` in float32: the one affine map
    composed in normalised coordinates, a few times faster than building float64 positions pixel by pixel;
    positions stay within 10⁻³ px for images up to 8192 px."""
    n, ny, nx = images.shape
    width = max(2, round(EDGE_TAPER_FRACTION * min(ny, nx)))
    tapered = taper_edges(images, width)
    # Pixel positions r (from the centre N // 2) are S b + d in normalised coordinates b (aligned corners).
    scale = torch.tensor([max(nx - 1, 1) / 2, max(ny - 1, 1) / 2], dtype=torch.float64)
    centre = torch.tensor([nx // 2, ny // 2], dtype=torch.float64)
    d = scale - centre
    theta = torch.empty((n, 2, 3), dtype=torch.float64)
    for i, axis in enumerate(axes_deg):
        m = rotation_2d(float(axis))
        theta[i, :, :2] = m * scale[None, :] / scale[:, None]
        theta[i, :, 2] = (m @ d - d + shifts_px[i].double().cpu()) / scale
    grid = functional.affine_grid(theta.float().to(images.device), [n, 1, ny, nx], align_corners=True)
    return functional.grid_sample(tapered[:, None], grid, mode="bilinear", padding_mode="zeros",
                                  align_corners=True)[:, 0]  # fmt: skip


def _x_tilt_groups(projections: Sequence[TiltProjection]) -> list[list[int]]:
    """Indices of the tilts, grouped by x-tilt (within :data:`X_TILT_TOLERANCE_DEG` of the group's first)."""
    groups: list[list[int]] = []
    for i, p in enumerate(projections):
        for group in groups:
            if abs(projections[group[0]].x_tilt_deg - p.x_tilt_deg) < X_TILT_TOLERANCE_DEG:
                group.append(i)
                break
        else:
            groups.append([i])
    return groups


def _depth_range(x_tilt_rad: float, y_px: tuple[float, float], z_px: tuple[float, float]) -> tuple[int, int]:
    """First and last integer ``z' = y sin a + z cos a`` needed for ``y, z`` in the given closed ranges."""
    s, c = math.sin(x_tilt_rad), math.cos(x_tilt_rad)
    values = [y * s + z * c for y in y_px for z in z_px]
    first, last = math.floor(min(values) + 1e-9), math.ceil(max(values) - 1e-9)
    return first, max(last, first + 1) if x_tilt_rad else last


def _row_range(x_tilt_rad: float, y_px: tuple[float, float], z_px: tuple[float, float]) -> tuple[int, int]:
    """First and last integer ``y' = y cos a - z sin a`` needed for ``y, z`` in the given closed ranges."""
    s, c = math.sin(x_tilt_rad), math.cos(x_tilt_rad)
    values = [y * c - z * s for y in y_px for z in z_px]
    first, last = math.floor(min(values) + 1e-9), math.ceil(max(values) - 1e-9)
    return first, max(last, first + 1)


def _group(index: list[int], projections: Sequence[TiltProjection], shape_zyx: tuple[int, int, int],
           device: torch.device) -> _Group:  # fmt: skip
    """The tilts ``index`` (one x-tilt) with their tables over every depth ``z'`` any slab of the volume needs."""
    nz, ny, nx = shape_zyx
    a = math.radians(projections[index[0]].x_tilt_deg)
    y_px, z_px = (-(ny // 2), ny - 1 - ny // 2), (-(nz // 2), nz - 1 - nz // 2)
    first, last = _depth_range(a, y_px, z_px)
    if a:  # room for every slab's own range, rounded outwards
        first, last = first - 1, last + 1
    depths = torch.arange(first, last + 1, device=device, dtype=torch.float64)
    indices, weights = bag_tables([projections[i].y_tilt_deg for i in index], depths, nx=nx, nu=nx)
    return _Group(a, torch.tensor(index, device=device), first, last - first + 1, indices, weights)


def _slab(filtered: torch.Tensor, group: _Group, y0: int, y1: int, nz: int) -> torch.Tensor:
    """The sum over the group's tilts of the back projection into rows ``y0:y1`` of the volume, ``(nz, y1 - y0,
    nx)``: in the turned frame, then sampled at the voxels (module notes)."""
    _, ny, nx = filtered.shape
    g = group.index.numel()
    y_px, z_px = (y0 - ny // 2, y1 - 1 - ny // 2), (-(nz // 2), nz - 1 - nz // 2)
    if group.x_tilt_rad == 0.0:
        rows = filtered[:, y0:y1][group.index]  # (g, m, nx)
        first, last = _depth_range(0.0, y_px, z_px)
    else:
        first_row, last_row = _row_range(group.x_tilt_rad, y_px, z_px)
        rows = torch.zeros((g, last_row - first_row + 1, nx), dtype=torch.float32, device=filtered.device)
        lo, hi = max(first_row + ny // 2, 0), min(last_row + ny // 2 + 1, ny)
        if hi > lo:
            rows[:, lo - first_row - ny // 2 : hi - first_row - ny // 2] = filtered[:, lo:hi][group.index]
        first, last = _depth_range(group.x_tilt_rad, y_px, z_px)
    m = rows.shape[1]
    stacked = rows.transpose(1, 2).reshape(g * nx, m)
    start, stop = (first - group.first_depth_px) * nx, (last - group.first_depth_px + 1) * nx
    turned = backproject_bags(stacked, group.indices[start:stop], group.weights[start:stop])  # (nk * nx, m)
    turned = turned.reshape(last - first + 1, nx, m)
    if group.x_tilt_rad == 0.0:
        return turned.permute(0, 2, 1)
    return _sample_turned(turned, group.x_tilt_rad, first, first_row, y_px, nz)


def _sample_turned(turned: torch.Tensor, x_tilt_rad: float, first_depth: int, first_row: int,
                   y_px: tuple[int, int], nz: int) -> torch.Tensor:  # fmt: skip
    """The turned-frame slab ``(nk, nx, m)`` (depths ``z'`` from ``first_depth``, rows ``y'`` from ``first_row``)
    sampled bilinearly at the voxels ``y`` in ``y_px`` (closed), all ``z``: ``(nz, ny_slab, nx)``."""
    nk, _, m = turned.shape
    device = turned.device
    s, c = math.sin(x_tilt_rad), math.cos(x_tilt_rad)
    y = torch.arange(y_px[0], y_px[1] + 1, device=device, dtype=torch.float64)[None, :]
    z = torch.arange(nz, device=device, dtype=torch.float64)[:, None] - nz // 2
    across = (y * c - z * s - first_row) * (2.0 / (m - 1)) - 1.0
    down = (y * s + z * c - first_depth) * (2.0 / (nk - 1)) - 1.0
    grid = torch.stack([across, down], dim=-1).float()[None]  # (1, nz, ny_slab, 2)
    planes = turned.permute(1, 0, 2).contiguous()[None]  # (1, nx, nk, m): one channel per x
    sampled = functional.grid_sample(planes, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return sampled[0].permute(1, 2, 0)


def _rows_per_slab(groups: Sequence[_Group], shape_zyx: tuple[int, int, int], *, fixed_bytes: int,
                   max_memory_bytes: int) -> int:  # fmt: skip
    """The most rows per slab whose working memory (module notes), with ``fixed_bytes`` and the tables, stays
    within ``max_memory_bytes``; at least 1."""
    nz, ny, nx = shape_zyx
    tables = sum(group.indices.numel() * 8 for group in groups)

    def slab_bytes(rows: int) -> float:
        largest = 0.0
        for group in groups:
            s, c = abs(math.sin(group.x_tilt_rad)), math.cos(group.x_tilt_rad)
            m, nk = rows * c + nz * s + 2, nz * c + rows * s + 2
            turned = 2 * nk * nx * m + (nz * rows * 3 if s else 0)
            largest = max(largest, group.index.numel() * nx * m * 2 + turned)
        return 4 * (largest + 3 * nz * rows * nx)

    per_row = slab_bytes(2) - slab_bytes(1)
    room = max_memory_bytes - fixed_bytes - tables - (slab_bytes(1) - per_row)
    return int(min(ny, MAX_ROWS_PER_SLAB, max(1, room // per_row)))
