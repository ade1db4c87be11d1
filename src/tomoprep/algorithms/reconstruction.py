"""Tomograms from aligned tilt series: weighted back projection with a ramp or SIRT-like filter.

Geometry
    Each tilt's projection is RELION 5's (``model.TiltAlignment``), in pixels of the images given:
    ``image(Rz(z_rot) (u, v) + shift) = [Ry(y_tilt) Rx(x_tilt) r]_(x, y)`` for a specimen point ``r`` relative to
    the volume's centre voxel. :func:`tomoprep.algorithms.backprojection.align_images` undoes ``Rz`` and the shift;
    what remains is back-projected here.
Output
    A ``(nz, ny, nx)`` float32 volume (``conventions.py``), ``ny, nx`` those of the images, voxel ``(nz // 2,
    ny // 2, nx // 2)`` the specimen centre, the voxel size that of the images' pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tomoprep.algorithms.backprojection import align_images, backproject_columns
from tomoprep.algorithms.sirt_filter import sirt_like_filter


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


def reconstruct_tomogram(
    images: torch.Tensor,
    projections: Sequence[TiltProjection],
    *,
    thickness_px: int,
    sirt_iterations: int | None = None,
    lowpass: float = 0.5,
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

    Returns
    -------
    torch.Tensor
        ``(thickness_px, ny, nx)`` float32 volume.
    """
    if images.ndim != 3 or images.shape[0] != len(projections):
        raise ValueError(f"{len(projections)} projections need an (n, y, x) stack of as many images, "
                         f"got shape {tuple(images.shape)}")  # fmt: skip
    if thickness_px < 1:
        raise ValueError(f"the tomogram's thickness must be at least 1 voxel, got {thickness_px}")
    if any(p.x_tilt_deg != 0.0 for p in projections):
        raise ValueError("back projection with an x-tilt is not supported yet")
    n, ny, nx = images.shape
    shifts = torch.tensor([[p.shift_x_px, p.shift_y_px] for p in projections], dtype=torch.float64)
    aligned = align_images(images, axis_deg=[p.z_rot_deg for p in projections], shifts_px=shifts)
    tilts = [p.y_tilt_deg for p in projections]
    padded = 2 * nx
    weight = sirt_like_filter(padded, tilts, iterations=sirt_iterations, thickness_px=float(thickness_px),
                              lowpass=lowpass, device=str(images.device))  # fmt: skip
    filtered = torch.fft.irfft(torch.fft.rfft(aligned, n=padded, dim=-1) * weight, n=padded, dim=-1)[..., :nx]
    columns = backproject_columns(filtered.contiguous(), tilts, nz=thickness_px, nx=nx)  # (nz, nx, ny)
    return columns.permute(0, 2, 1).contiguous()
