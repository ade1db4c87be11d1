"""Single-axis tomography on aligned tilt images: back projection, reprojection, weighting filters.

Aligned frame
    An aligned image has the tilt axis along its Y axis and its shift removed: ``aligned(u, y) =
    image(Rz(axis) (u, y) + shift)`` (positions relative to the centre pixels,
    :mod:`tomoprep.algorithms.tilt_geometry`). Each row ``y`` is then the projection of one slice ``(x, z)`` of the
    specimen at that ``y``: ``u = x cos t + z sin t`` (RELION 5's ``Ry(t)``, x-tilt 0).
Slices
    The reconstruction is held as ``(ny, nz, nx)`` slices (one ``(nz, nx)`` slice per image row), pixels centred
    on ``N // 2`` along each axis; :func:`slices_to_volume` gives the ``(z, y, x)`` volume of the conventions.
Interpolation is linear along ``u`` (back projection) and along ``x`` (projection, ray-driven per z plane).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional

from tomoprep.algorithms.fourier import taper_edges
from tomoprep.algorithms.tilt_geometry import resample, rotation_2d

#: Edges of the tilt images are tapered over this fraction of their size before they are aligned.
EDGE_TAPER_FRACTION = 0.06
#: Entries of the interpolation tables computed at once (bounds the float64 temporaries, 8 bytes each).
_TABLE_CHUNK = 2**18


def align_images(images: torch.Tensor, *, axis_deg: float | Sequence[float], shifts_px: torch.Tensor) -> torch.Tensor:
    """Turn tilt images into the aligned frame: tilt axis along Y, shifts removed.

    Parameters
    ----------
    images
        ``(n, ny, nx)`` tilt images.
    axis_deg
        Tilt-axis angle(s), degrees counter-clockwise from Y (one for all, or one per image).
    shifts_px
        ``(n, 2)`` shifts ``(x, y)`` in pixels (RELION's shift: where the specimen centre lands).

    Returns
    -------
    torch.Tensor
        ``(n, ny, nx)`` aligned images, their mean subtracted and their edges tapered to zero first (a hard edge
        where an image ends would streak through every reconstruction made from it).
    """
    n = images.shape[0]
    axes = [float(axis_deg)] * n if isinstance(axis_deg, int | float) else [float(a) for a in axis_deg]
    matrices = torch.stack([rotation_2d(a) for a in axes])
    width = max(2, round(EDGE_TAPER_FRACTION * min(images.shape[-2:])))
    return resample(taper_edges(images, width), matrices, shifts_px.double())


def shared_field_window(shape_yx: tuple[int, int], *, axis_deg: float, shifts_px: torch.Tensor,
                        axis_margin_deg: float = 0.0) -> torch.Tensor:  # fmt: skip
    """Weight ``(ny, nx)`` on the aligned frame: 1 on the centred rectangle that every tilt's image covers, falling
    to 0 at its edges (raised cosine over :data:`EDGE_TAPER_FRACTION` of the image), 0 outside.

    An image's own edges, turned by the tilt axis, cross the aligned frame obliquely, and where they cross a
    window they move with the axis angle tried: a score of how well tilts match then rises towards axes along
    the image's sides whatever the specimen, and a search for the best axis climbs that ramp (on a stack whose
    axis is 5° from the image Y axis, the score fell steadily over ±0.75° around the true axis; with one window
    it peaks there). One window on the aligned frame, the same for all
    tilts and for every axis within ``axis_margin_deg`` of ``axis_deg``, weights every row alike in every tilt.
    The rectangle ``|u| ≤ k nx / 2``, ``|v| ≤ k ny / 2`` is the largest whose corners, turned by any of those axes
    and moved by any tilt's shift ``(n, 2)`` (pixels), stay inside the images.
    """
    ny, nx = shape_yx
    largest = shifts_px.abs().amax(dim=0).tolist() if shifts_px.numel() else [0.0, 0.0]
    room_x, room_y = nx / 2 - largest[0] - 1.0, ny / 2 - largest[1] - 1.0
    k = 1.0
    for angle in np.linspace(axis_deg - axis_margin_deg, axis_deg + axis_margin_deg, 9):
        c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
        k = min(k, room_x / (nx / 2 * c + ny / 2 * s), room_y / (nx / 2 * s + ny / 2 * c))
    k = max(k, 0.2)
    edge = max(2.0, EDGE_TAPER_FRACTION * min(ny, nx))
    u = (torch.arange(nx, dtype=torch.float32) - nx // 2).abs()
    v = (torch.arange(ny, dtype=torch.float32) - ny // 2).abs()
    wu = torch.clamp((k * nx / 2 - u) / edge, 0, 1)
    wv = torch.clamp((k * ny / 2 - v) / edge, 0, 1)
    return (0.5 - 0.5 * torch.cos(math.pi * wv))[:, None] * (0.5 - 0.5 * torch.cos(math.pi * wu))[None, :]


def align_to_shared_field(images: torch.Tensor, *, axis_deg: float | Sequence[float], shifts_px: torch.Tensor,
                          field: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Aligned images ``(n, ny, nx)`` as :func:`align_images` gives them (one axis for all, or one per image), but
    weighted by ``field`` (default :func:`shared_field_window` for these shifts and every axis given) instead of
    tapered at their own edges, each less its mean over the field."""
    n = images.shape[0]
    axes = [float(axis_deg)] * n if isinstance(axis_deg, (int, float)) else [float(a) for a in axis_deg]
    matrices = torch.stack([rotation_2d(a) for a in axes])
    aligned = resample(images, matrices, shifts_px.double())
    if field is None:
        middle, spread = (max(axes) + min(axes)) / 2, (max(axes) - min(axes)) / 2
        field = shared_field_window((images.shape[-2], images.shape[-1]), axis_deg=middle, shifts_px=shifts_px,
                                    axis_margin_deg=spread)  # fmt: skip
    field = field.to(aligned)
    mean = (aligned * field).sum(dim=(-2, -1), keepdim=True) / field.sum()
    return (aligned - mean) * field


def weighting_filter(
    shape_yx: tuple[int, int], *, kind: str = "ramp", lowpass: float = 0.5, n_tilts: int = 41, device: str = "cpu"
) -> torch.Tensor:
    """Filter along ``u`` (rows) applied before back projection, ``(nx // 2 + 1,)`` on the rfft of a row.

    ``ramp`` is weighted back projection's ``|k|`` (with a floor at the zero frequency so the mean survives);
    ``sirt`` is the ramp tempered like a SIRT-like filter (``|k|`` rising to 1 over the band where the tilts'
    Fourier slices overlap, ``1 / (n_tilts × Δt)``), keeping low-resolution contrast; both roll off with a
    cosine edge up to ``lowpass`` (cycles/pixel, 0.5 = Nyquist).
    """
    k = torch.fft.rfftfreq(shape_yx[1], device=device)
    if kind == "ramp":
        weight = k.clone()
        weight[0] = 0.5 * float(k[1]) if k.numel() > 1 else 1.0
    elif kind == "sirt":
        corner = 1.0 / max(n_tilts, 2)
        weight = torch.clamp(k / corner, max=1.0) * corner
        weight[0] = 0.5 * float(k[1]) if k.numel() > 1 else 1.0
    else:
        raise ValueError(f"unknown weighting {kind!r}: ramp or sirt")
    edge = torch.clamp((lowpass - k) / (0.1 * max(lowpass, 1e-3)), 0.0, 1.0)
    return weight * (0.5 - 0.5 * torch.cos(math.pi * edge))


def filter_rows(aligned: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Multiply every row's rfft by ``weight`` (``(n, ny, nx)`` images, filter of :func:`weighting_filter`)."""
    return torch.fft.irfft(torch.fft.rfft(aligned, dim=-1) * weight, n=aligned.shape[-1], dim=-1)


def bag_tables(tilts_deg: Sequence[float], depths_px: torch.Tensor, *, nx: int, nu: int
               ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Where every voxel of a slice takes its samples: for depth ``Z`` (pixels from the centre, ``(nz,)`` on the
    device to compute on) and column ``X``, the two neighbours of ``u = X cos t + Z sin t`` along each tilt's rows.

    Returns
    -------
    indices, weights
        ``(nz * nx, 2 n)`` int32 rows of the stacked columns ``(n * nu, ...)`` (tilt ``i``'s sample ``k`` is row
        ``i nu + k``) and their float32 linear-interpolation weights, 0 where ``u`` falls outside the row.
    """
    device = depths_px.device
    n, nz = len(tilts_deg), depths_px.numel()
    indices = torch.empty((nz, nx, n, 2), dtype=torch.int32, device=device)
    weights = torch.empty((nz, nx, n, 2), dtype=torch.float32, device=device)
    angles = torch.tensor([math.radians(float(t)) for t in tilts_deg], dtype=torch.float64)
    cos_t, sin_t = torch.cos(angles).float().to(device), torch.sin(angles).float().to(device)
    # float32: positions within 10⁻³ px for rows up to 8192 px, at half the cost of float64.
    x_cos = (torch.arange(nx, device=device, dtype=torch.float32)[:, None] - nx // 2) * cos_t + nu // 2
    first_row = torch.arange(n, device=device, dtype=torch.int32) * nu
    # All tilts at once, a few depths at a time: few large operations, a bounded temporary.
    step = max(1, _TABLE_CHUNK // max(nx * n, 1))
    for start in range(0, nz, step):
        u = torch.addcmul(x_cos, depths_px[start : start + step].float()[:, None, None], sin_t)
        low = torch.floor(u)
        valid = (low >= 0) & (low < nu - 1)
        upper = (u - low).mul_(valid)
        row = low.to(torch.int32).add_(first_row).mul_(valid)
        indices[start : start + step, :, :, 0] = row
        indices[start : start + step, :, :, 1] = row.add_(1)
        weights[start : start + step, :, :, 1] = upper
        weights[start : start + step, :, :, 0] = valid.float().sub_(upper)
    return indices.reshape(nz * nx, 2 * n), weights.reshape(nz * nx, 2 * n)


def backproject_bags(stacked: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Sum over tilts of the interpolated samples of :func:`bag_tables`: ``(nz * nx, m)`` from the stacked columns
    ``(n * nu, m)`` (each row one ``u`` of one tilt, ``m`` image rows side by side).

    One fused gather-and-sum per voxel (``embedding_bag``) instead of one pass over the volume per tilt: the
    volume is written once, and each voxel's ``m`` rows are contiguous.
    """
    return functional.embedding_bag(indices, stacked, per_sample_weights=weights, mode="sum")


def backproject_columns(filtered: torch.Tensor, tilts_deg: Sequence[float], *, nz: int, nx: int | None = None
                        ) -> torch.Tensor:  # fmt: skip
    """Back projection as :func:`backproject`, in the column layout ``(nz, nx, ny)``.

    Every voxel of a slice takes the same two samples of each image row, so with the rows' ``y`` innermost the
    samples are gathered as whole contiguous columns (:func:`backproject_bags`).
    """
    n, ny, nu = filtered.shape
    nx = nu if nx is None else nx
    stacked = filtered.float().transpose(1, 2).reshape(n * nu, ny)
    depths = torch.arange(nz, device=filtered.device, dtype=torch.float64) - nz // 2
    indices, weights = bag_tables(tilts_deg, depths, nx=nx, nu=nu)
    return (backproject_bags(stacked, indices, weights) / max(n, 1)).reshape(nz, nx, ny)


def backproject(filtered: torch.Tensor, tilts_deg: Sequence[float], *, nz: int, nx: int | None = None) -> torch.Tensor:
    """Back-project filtered aligned images into slices ``(ny, nz, nx)`` (sum over tilts, divided by their count).

    Parameters
    ----------
    filtered
        ``(n, ny, nu)`` aligned, weighted images.
    tilts_deg
        ``(n,)`` tilt angles, degrees.
    nz, nx
        Slice size (``nx`` defaults to ``nu``).
    """
    return backproject_columns(filtered, tilts_deg, nz=nz, nx=nx).permute(2, 0, 1).contiguous()


def project_columns(columns: torch.Tensor, tilt_deg: float, *, nu: int | None = None) -> torch.Tensor:
    """Projection as :func:`project` of slices in the column layout ``(nz, nx, ny)``; ``(ny, nu)``."""
    nz, nx, ny = columns.shape
    nu = nx if nu is None else nu
    t = math.radians(tilt_deg)
    cos_t = max(math.cos(t), 1e-3)
    device = columns.device
    z = torch.arange(nz, device=device, dtype=torch.float32)[:, None] - nz // 2
    u = torch.arange(nu, device=device, dtype=torch.float32)[None, :] - nu // 2
    x = (u - z * math.sin(t)) / cos_t + nx // 2
    low = torch.floor(x)
    valid = ((low >= 0) & (low < nx - 1)).float()
    upper = ((x - low) * valid).reshape(-1, 1)
    index = (low.clamp(0, nx - 2) + torch.arange(nz, device=device)[:, None] * nx).long().reshape(-1)
    flat = columns.reshape(nz * nx, ny)
    sampled = flat.index_select(0, index) * (valid.reshape(-1, 1) - upper)
    sampled.addcmul_(flat.index_select(0, index + 1), upper)
    return (sampled.reshape(nz, nu, ny).sum(dim=0) / cos_t).T


def project(slices: torch.Tensor, tilt_deg: float, *, nu: int | None = None) -> torch.Tensor:
    """Project slices ``(ny, nz, nx)`` at one tilt: ``(ny, nu)``, the line integral along the beam (voxel units)."""
    return project_columns(slices.permute(1, 2, 0).contiguous(), tilt_deg, nu=nu).contiguous()


def slices_to_volume(slices: torch.Tensor) -> torch.Tensor:
    """``(ny, nz, nx)`` slices as a ``(z, y, x)`` volume (a contiguous copy)."""
    return slices.permute(1, 0, 2).contiguous()
