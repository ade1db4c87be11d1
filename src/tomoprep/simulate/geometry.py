"""Projection geometry: where a specimen point lands in a tilt image, and the beam's path through the ice.

Geometry (RELION 5, ``reference/relion5-format.md`` §9.4)
    A specimen point ``X`` (Å from the specimen centre) lands at image pixel
    ``R·X / px + shift / px + (W // 2, H // 2)`` with ``R = Rz(tilt_axis) · Ry(tilt) · Rx(x_tilt)``, right-handed
    active rotations; ``(x, y)`` index the array as ``image[y, x]``. The third row of ``R·X`` is the depth ``z'``
    (Å). So a point at ``+z`` moves towards ``+x`` for a positive tilt about y, and the tilt axis (the specimen
    ``y`` axis) appears at ``tilt_axis`` degrees counter-clockwise from the image Y axis: along ``-x`` for 90°.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tomoprep.simulate.phantom import Phantom

#: Below this |cos(beam, slab normal)| the slab is taken as edge-on (path clipped).
MIN_SLAB_COSINE = 0.01


@dataclass(frozen=True)
class TiltGeometry:
    """Pose of one tilt image (RELION 5 tilt-series fields).

    Attributes
    ----------
    tilt_deg
        True tilt angle (nominal + offset), degrees -> ``rlnTomoYTilt``.
    tilt_axis_deg
        True tilt-axis angle, degrees counter-clockwise from image Y -> ``rlnTomoZRot``.
    x_tilt_deg
        Tilt about the specimen x axis, degrees -> ``rlnTomoXTilt``.
    shift_x_angstrom, shift_y_angstrom
        Image shift, Å -> ``rlnTomoXShiftAngst``, ``rlnTomoYShiftAngst``.
    """

    tilt_deg: float
    tilt_axis_deg: float
    x_tilt_deg: float = 0.0
    shift_x_angstrom: float = 0.0
    shift_y_angstrom: float = 0.0


def _rotation(axis: int, angle_deg: float) -> np.ndarray:
    """Right-handed active rotation about coordinate ``axis`` (0 = x, 1 = y, 2 = z)."""
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    matrix = np.eye(3)
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    return matrix


def projection_matrix(g: TiltGeometry) -> np.ndarray:
    """``R = Rz(tilt_axis) · Ry(tilt) · Rx(x_tilt)``, ``(3, 3)``: specimen coordinates to (image x, image y, depth)."""
    return _rotation(2, g.tilt_axis_deg) @ _rotation(1, g.tilt_deg) @ _rotation(0, g.x_tilt_deg)


def project_points(
    points_xyz_angstrom: np.ndarray, g: TiltGeometry, *, image_shape_yx: tuple[int, int], pixel_spacing_angstrom: float
) -> tuple[np.ndarray, np.ndarray]:
    """Where specimen points land in a tilt image.

    Parameters
    ----------
    points_xyz_angstrom
        ``(n, 3)`` specimen coordinates, Å from the specimen centre.
    g
        The tilt's geometry.
    image_shape_yx
        ``(H, W)`` of the tilt image.
    pixel_spacing_angstrom
        Pixel spacing, Å.

    Returns
    -------
    pixels_xy
        ``(n, 2)`` float positions ``(x, y)`` in array index units (the pixel ``image[y, x]``); the specimen
        centre lands on ``(W // 2, H // 2)`` plus the shift.
    depth_angstrom
        ``(n,)`` depth ``z'``, Å: the third row of ``R·X``.
    """
    points = np.asarray(points_xyz_angstrom, dtype=float).reshape(-1, 3)
    rotated = points @ projection_matrix(g).T
    height, width = image_shape_yx
    offset = np.array([g.shift_x_angstrom / pixel_spacing_angstrom + width // 2,
                       g.shift_y_angstrom / pixel_spacing_angstrom + height // 2])  # fmt: skip
    return rotated[:, :2] / pixel_spacing_angstrom + offset, rotated[:, 2]


def ice_path_length_angstrom(phantom: Phantom, g: TiltGeometry) -> float:
    """Path of the beam through the ice slab, Å: ``thickness / |cos(angle between beam and slab normal)|``."""
    cosine = abs(float((projection_matrix(g) @ phantom.slab_normal)[2]))
    return phantom.thickness_angstrom / max(cosine, MIN_SLAB_COSINE)
