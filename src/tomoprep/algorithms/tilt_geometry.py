"""Geometry of tilt images: the tilt axis in the image, cosine stretching, and resampling images by affine maps.

Conventions of the tilt-alignment kernels
    Positions and shifts are ``(x, y)`` in pixels, relative to the image centre pixel ``(N // 2)`` along each
    axis (images are ``(..., y, x)`` tensors). The tilt axis makes ``axis_deg`` degrees counter-clockwise with
    the image Y axis (RELION's ``rlnTomoZRot``): it points along ``(-sin a, cos a)``; the direction across it,
    ``(cos a, sin a)``, is where a tilted flat specimen is foreshortened by ``cos(tilt)``.
    RELION 5's projection: a specimen point ``X`` (pixels from the specimen centre) lands at
    ``Rz(axis) Ry(tilt) Rx(x_tilt) X + shift``; a content displacement of ``d`` pixels in an image is a shift of
    ``+d``.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional


def rotation_2d(angle_deg: float) -> torch.Tensor:
    """Counter-clockwise rotation by ``angle_deg`` of ``(x, y)`` vectors, ``(2, 2)`` float64."""
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)


def across_axis(axis_deg: float) -> torch.Tensor:
    """Unit vector ``(x, y)`` across the tilt axis, ``(cos a, sin a)``, float64."""
    a = math.radians(axis_deg)
    return torch.tensor([math.cos(a), math.sin(a)], dtype=torch.float64)


def stretch_matrix(axis_deg: float, factor: float) -> torch.Tensor:
    """``(2, 2)`` map that scales by ``factor`` across the tilt axis and keeps lengths along it."""
    p = across_axis(axis_deg)
    return torch.eye(2, dtype=torch.float64) + (factor - 1.0) * torch.outer(p, p)


def rotation_3d(axis: int, angle_deg: float) -> torch.Tensor:
    """Right-handed active rotation about coordinate ``axis`` (0 = x, 1 = y, 2 = z), ``(3, 3)`` float64."""
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    matrix = torch.eye(3, dtype=torch.float64)
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    return matrix


def projection_rotation(*, y_tilt_deg: float, z_rot_deg: float, x_tilt_deg: float = 0.0) -> torch.Tensor:
    """``Rz(z_rot) Ry(y_tilt) Rx(x_tilt)``, ``(3, 3)`` float64: specimen axes to (image x, image y, depth)."""
    return rotation_3d(2, z_rot_deg) @ rotation_3d(1, y_tilt_deg) @ rotation_3d(0, x_tilt_deg)


def centre_px(shape_yx: tuple[int, int]) -> tuple[int, int]:
    """The centre pixel ``(x, y)`` of an image of ``shape_yx``: ``(nx // 2, ny // 2)``."""
    return shape_yx[1] // 2, shape_yx[0] // 2


def resample(
    images: torch.Tensor,
    matrices: torch.Tensor,
    offsets_px: torch.Tensor,
    *,
    out_shape_yx: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Sample images at affinely mapped positions: ``out(r) = in(M r + o)``, bilinear, zero outside.

    Parameters
    ----------
    images
        ``(n, ny, nx)`` images.
    matrices
        ``(n, 2, 2)`` or ``(2, 2)`` maps ``M`` acting on ``(x, y)`` relative to the centres.
    offsets_px
        ``(n, 2)`` or ``(2,)`` offsets ``o``, ``(x, y)`` pixels.
    out_shape_yx
        Shape of the output images; default the input shape. ``r`` is relative to the output centre, ``M r + o``
        to the input centre (both :func:`centre_px`).

    Returns
    -------
    torch.Tensor
        ``(n, *out_shape_yx)`` float32.
    """
    n, ny, nx = images.shape
    oy, ox = out_shape_yx or (ny, nx)
    device = images.device
    m = matrices.to(device=device, dtype=torch.float64).expand(n, 2, 2)
    o = offsets_px.to(device=device, dtype=torch.float64).expand(n, 2)
    ys = torch.arange(oy, device=device, dtype=torch.float64) - oy // 2
    xs = torch.arange(ox, device=device, dtype=torch.float64) - ox // 2
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([grid_x, grid_y], dim=-1).reshape(1, -1, 2)  # (1, P, 2)
    mapped = points @ m.transpose(1, 2) + o[:, None, :]  # (n, P, 2)
    cx, cy = centre_px((ny, nx))
    gx = (mapped[..., 0] + cx) * (2.0 / max(nx - 1, 1)) - 1.0
    gy = (mapped[..., 1] + cy) * (2.0 / max(ny - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1).reshape(n, oy, ox, 2).float()
    out = functional.grid_sample(
        images[:, None].float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )
    return out[:, 0]
