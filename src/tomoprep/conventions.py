"""The conventions every module shares, written once.

Arrays
    images ``(y, x)``, stacks ``(n_tilts, y, x)``, volumes ``(z, y, x)``, float32.
Image centre
    pixel ``N // 2`` along each axis, as RELION and teamtomo use it.
Units at public boundaries
    Å for lengths and shifts, degrees for angles, kV, mm for Cs, e⁻/Å² for dose.
    Defocus is positive for underfocus, in Å.
Tilt-axis angle
    degrees, counter-clockwise from the image Y axis (IMOD, AreTomo, RELION), normalised to (-180, 180].
"""

from __future__ import annotations

import math

import numpy as np

IMAGE_DTYPE = np.float32

#: Tilt-axis angles are reported in this half-open interval (degrees).
TILT_AXIS_RANGE_DEG = (-180.0, 180.0)


def image_centre(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Index of the centre pixel of an array of ``shape``: ``N // 2`` per axis."""
    return tuple(n // 2 for n in shape)


def normalise_angle_deg(angle_deg: float) -> float:
    """Wrap an angle into (-180, 180] degrees."""
    wrapped = math.fmod(angle_deg, 360.0)
    if wrapped <= -180.0:
        wrapped += 360.0
    elif wrapped > 180.0:
        wrapped -= 360.0
    return wrapped


def tilt_axis_from_serialem_rotation_angle(rotation_angle_deg: float) -> float:
    """Tilt-axis angle (CCW from Y) from a SerialEM mdoc ``RotationAngle``.

    SerialEM's ``RotationAngle`` is the image rotation, 90° more than the tilt-axis angle it prints in the
    ``Tilt axis angle = ...`` title line (e.g. 175.3 for an 85.3° axis in EMPIAR-10164).
    """
    return normalise_angle_deg(rotation_angle_deg - 90.0)


def tilt_axis_from_tomo5_rotation_angle(rotation_angle_deg: float) -> float:
    """Tilt-axis angle (CCW from Y) from a Thermo Fisher Tomo5 mdoc ``RotationAngle``.

    Tomo5 writes the axis twice: ``TiltAxisAngle = θ`` in a title line, in its own convention, and
    ``RotationAngle = -θ - 90`` in every section (-175.84 and 85.84 in the mdoc quoted in AreTomo3 issue #61).
    That ``RotationAngle`` is already the CCW-from-Y angle (IMOD's ``header`` and ``alignframes`` take it as
    the tilt-axis angle of such files), so it is only wrapped here.
    """
    return normalise_angle_deg(rotation_angle_deg)


def tilt_axis_from_tomo5_title_angle(tilt_axis_angle_deg: float) -> float:
    """Tilt-axis angle (CCW from Y) from the ``TiltAxisAngle = θ`` title line of a Tomo5 mdoc: ``-θ - 90``.

    Scipion applies this conversion with its ``isTomo5`` option; it gives back the ``RotationAngle`` that
    Tomo5 writes in the sections of the same file (see :func:`tilt_axis_from_tomo5_rotation_angle`).
    """
    return normalise_angle_deg(-tilt_axis_angle_deg - 90.0)


def microns_to_angstrom(value_um: float) -> float:
    """Convert micrometres to Å."""
    return value_um * 1e4


def nominal_defocus_um_to_underfocus_angstrom(target_defocus_um: float) -> float:
    """mdoc ``TargetDefocus`` (µm, negative = underfocus) to defocus in Å, positive = underfocus."""
    return -target_defocus_um * 1e4
