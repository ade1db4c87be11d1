"""IMOD tilt-series alignments (``.xf``, ``.tlt``, ``.xtilt``, ``tiltalign`` logs) in RELION 5's fields, and back.

The model, shared by both programs and checked against IMOD's ``fill_matrices.f90`` and RELION's
``Tomogram::setProjectionMatrix``: a specimen point ``p`` (relative to the specimen centre) appears in the raw
view at

    ``raw = Rz(ZRot) Ry(YTilt) Rx(XTilt) p + shift``     (RELION 5, right-handed active rotations)

while ``tiltalign`` projects ``aligned = Ry(tilt) Rx(alpha) p`` (its ``fill_xtilt_matrix`` and
``fill_ytilt_matrix`` are the same right-handed active rotations, the X tilt applied first) and the ``.xf`` line
``A, s`` maps the raw view onto the aligned one, ``aligned = A raw + s`` (image coordinates relative to the
centre, pixels). Hence, per view (as RELION's ``readIMODResults`` does, see ``docs/formats.md``):

- ``shift = -A⁻¹ s × pixel spacing``: the raw-image position of the point that lands on the aligned centre;
- ``ZRot``: the rotation of ``A⁻¹``, ``atan2(A12 - A21, A11 + A22)``; this is minus IMOD's own rotation of
  ``A`` (``amat_to_rotmagstr``, ``xf2rotmagstr``) and equals RELION's ``±acos(A11)`` and Scipion's
  ``atan2(A12, A11)`` when ``A`` is a rotation. When ``tiltalign`` also solved magnification or stretch,
  RELION's ``acos(A11)`` folds the magnification into the angle; the form used here is the rotation closest to
  ``A`` and ignores an isotropic magnification. Magnification and stretch themselves have no RELION field and
  are dropped.
- ``YTilt = tlt - AngleOffset``; ``XTilt = xtilt`` (same sign, see the model above; RELION sets 0).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomoprep.errors import InputError
from tomoprep.model import TiltAlignment

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_ENTRY = re.compile(rf"^\s*(AngleOffset|RotationAngle)\s*=\s*({_NUMBER})\s*$")
_MIN_TILT_ROTATION = re.compile(rf"At minimum tilt, rotation angle is\s+({_NUMBER})")
_BEAM_TILT = re.compile(rf"Beam tilt angle is\s+({_NUMBER})")
_RESIDUAL = re.compile(rf"Residual error mean and sd:\s+({_NUMBER})\s+({_NUMBER})\s*(\S*)")
_SOLUTION_HEADER = re.compile(r"^\s*view\s+rotation\s+tilt\b")


@dataclass(frozen=True)
class TiltalignLog:
    """What a ``tiltalign`` log (``align.log``, ``taSolution.log``) says about the global alignment.

    Every field is ``None`` (or empty) when the log does not hold it; a ``taSolution.log`` holds only the
    solution table and the lines printed above it.

    Attributes
    ----------
    angle_offset_deg
        ``AngleOffset`` entry: degrees ``tiltalign`` added to every entered tilt angle (the last entry when
        the log holds several runs, as RELION reads it). The ``.tlt`` it writes includes it.
    rotation_angle_deg
        ``RotationAngle`` entry: the initial tilt-axis angle, degrees counter-clockwise from Y.
    minimum_tilt_rotation_deg
        "At minimum tilt, rotation angle is": the solved tilt-axis angle at the lowest tilt, degrees.
    beam_tilt_deg
        "Beam tilt angle is", degrees.
    residual_error_mean, residual_error_sd
        "Residual error mean and sd", in ``residual_error_unit`` (the word after the numbers, ``""`` when
        the log prints none, as older versions do for pixels).
    solution_views
        1-based file views of the global solution table (views ``tiltalign`` left out are absent).
    solution_rotation_deg, solution_tilt_deg
        Rotation and tilt of those views, degrees (printed to 0.1°).
    """

    angle_offset_deg: float | None = None
    rotation_angle_deg: float | None = None
    minimum_tilt_rotation_deg: float | None = None
    beam_tilt_deg: float | None = None
    residual_error_mean: float | None = None
    residual_error_sd: float | None = None
    residual_error_unit: str = ""
    solution_views: tuple[int, ...] = ()
    solution_rotation_deg: tuple[float, ...] = ()
    solution_tilt_deg: tuple[float, ...] = ()


def read_tiltalign_log(path: Path) -> TiltalignLog:
    """Read the global-alignment facts of an IMOD ``tiltalign`` log.

    Raises
    ------
    InputError
        If the file is missing, is not text, or holds none of the facts above.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "tiltalign log does not exist.", "check the path (align.log or taSolution.log).")
    try:
        lines = path.read_text(encoding="utf-8", errors="strict").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(path, f"is not a text file ({exc}).", "give the tiltalign log (align.log).") from exc
    found: dict[str, float | str] = {}
    for line in lines:
        if match := _ENTRY.match(line):
            found[match[1]] = float(match[2])
        elif match := _MIN_TILT_ROTATION.search(line):
            found["minimum_tilt_rotation_deg"] = float(match[1])
        elif match := _BEAM_TILT.search(line):
            found["beam_tilt_deg"] = float(match[1])
        elif match := _RESIDUAL.search(line):
            found.update(residual_error_mean=float(match[1]), residual_error_sd=float(match[2]))
            found["residual_error_unit"] = match[3]
    views, rotations, tilts = _solution_table(lines)
    if not found and not views:
        raise InputError(
            path,
            "holds no tiltalign result (no AngleOffset entry, rotation angle, residual or solution table).",
            "give the log tiltalign wrote (align.log of etomo, or taSolution.log).",
        )
    return TiltalignLog(
        angle_offset_deg=_float_or_none(found.get("AngleOffset")),
        rotation_angle_deg=_float_or_none(found.get("RotationAngle")),
        minimum_tilt_rotation_deg=_float_or_none(found.get("minimum_tilt_rotation_deg")),
        beam_tilt_deg=_float_or_none(found.get("beam_tilt_deg")),
        residual_error_mean=_float_or_none(found.get("residual_error_mean")),
        residual_error_sd=_float_or_none(found.get("residual_error_sd")),
        residual_error_unit=str(found.get("residual_error_unit", "")),
        solution_views=tuple(views),
        solution_rotation_deg=tuple(rotations),
        solution_tilt_deg=tuple(tilts),
    )


def _float_or_none(value: float | str | None) -> float | None:
    return None if value is None else float(value)


def _solution_table(lines: Sequence[str]) -> tuple[list[int], list[float], list[float]]:
    """Views, rotations and tilts of the first ``view rotation tilt ...`` table (the global solution)."""
    start = next((i for i, line in enumerate(lines) if _SOLUTION_HEADER.match(line)), None)
    views: list[int] = []
    rotations: list[float] = []
    tilts: list[float] = []
    if start is None:
        return views, rotations, tilts
    for line in lines[start + 1 :]:
        fields = line.split()
        if len(fields) < 3 or not fields[0].isdigit():
            break
        try:
            rotation, tilt = float(fields[1]), float(fields[2])
        except ValueError:
            break
        views.append(int(fields[0]))
        rotations.append(rotation)
        tilts.append(tilt)
    return views, rotations, tilts


def alignment_from_imod(
    xf: np.ndarray,
    tilt_angles_deg: Sequence[float] | np.ndarray,
    *,
    pixel_spacing_angstrom: float,
    x_tilts_deg: Sequence[float] | np.ndarray | None = None,
    angle_offset_deg: float = 0.0,
) -> list[TiltAlignment]:
    """RELION 5 alignment fields of each view of an IMOD alignment, in file (stack) order.

    Parameters
    ----------
    xf
        ``(n, 2, 3)`` as :func:`tomoprep.io.imod.read_xf` gives, or ``(n, 6)`` file columns
        ``A11 A12 A21 A22 DX DY``; shifts in pixels of the aligned stack.
    tilt_angles_deg
        ``(n,)`` tilt angles of the ``.tlt`` ``tiltalign`` wrote, degrees (they include its ``AngleOffset``).
    pixel_spacing_angstrom
        Pixel spacing of the stack the ``.xf`` refers to, Å.
    x_tilts_deg
        ``(n,)`` X-axis tilts of the ``.xtilt`` file, degrees; ``None`` for 0, as RELION sets.
    angle_offset_deg
        Subtracted from every tilt angle. RELION passes the ``AngleOffset`` of ``align.log``
        (:attr:`TiltalignLog.angle_offset_deg`), so that ``YTilt`` stays in the stage frame; the default 0 keeps
        the ``.tlt`` angles, the frame in which IMOD reconstructs (levelled by the offset ``tomopitch``
        proposed). Both fit the images equally: a constant change of every tilt turns the reconstruction about
        its Y axis (exactly so when the X tilts are constant, as RELION's 0).

    Returns
    -------
    list of TiltAlignment
        One per view: ``z_rot_deg = atan2(A12 - A21, A11 + A22)``, ``y_tilt_deg = tlt - angle_offset_deg``,
        ``x_tilt_deg = xtilt``, shifts ``-A⁻¹ (DX, DY) × pixel_spacing_angstrom`` in Å (module docstring).

    Raises
    ------
    ValueError
        If the arrays disagree in length or shape, a matrix is singular, or a value is not finite.
    """
    matrices, shifts = _split_xf(xf)
    n_views = len(matrices)
    tilts = _per_view(tilt_angles_deg, n_views, "tilt_angles_deg")
    x_tilts = np.zeros(n_views) if x_tilts_deg is None else _per_view(x_tilts_deg, n_views, "x_tilts_deg")
    if not (math.isfinite(pixel_spacing_angstrom) and pixel_spacing_angstrom > 0):
        raise ValueError(f"pixel_spacing_angstrom must be positive, got {pixel_spacing_angstrom}.")
    determinants = np.linalg.det(matrices)
    if np.any(np.abs(determinants) < 1e-6):
        raise ValueError(f"xf matrices of views {np.flatnonzero(np.abs(determinants) < 1e-6).tolist()} are singular.")
    image_shifts = np.linalg.solve(matrices, shifts[:, :, None])[:, :, 0]
    specimen_shifts_angstrom = -image_shifts * pixel_spacing_angstrom
    z_rots = np.degrees(np.arctan2(matrices[:, 0, 1] - matrices[:, 1, 0], matrices[:, 0, 0] + matrices[:, 1, 1]))
    return [
        TiltAlignment(
            y_tilt_deg=float(tilts[i] - angle_offset_deg),
            z_rot_deg=float(z_rots[i]),
            x_tilt_deg=float(x_tilts[i]),
            shift_x_angstrom=float(specimen_shifts_angstrom[i, 0]),
            shift_y_angstrom=float(specimen_shifts_angstrom[i, 1]),
        )
        for i in range(n_views)
    ]


def imod_from_alignment(
    alignments: Sequence[TiltAlignment], *, pixel_spacing_angstrom: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IMOD ``.xf``, ``.tlt`` and ``.xtilt`` contents for RELION 5 alignment fields (the inverse of
    :func:`alignment_from_imod` with ``angle_offset_deg=0``).

    Parameters
    ----------
    alignments
        One per view, in the stack order the files are for.
    pixel_spacing_angstrom
        Pixel spacing of that stack, Å.

    Returns
    -------
    xf : numpy.ndarray
        ``(n, 2, 3)`` for :func:`tomoprep.io.imod.write_xf`: ``A = R(-ZRot)`` (no magnification),
        ``(DX, DY) = -A (shift / pixel_spacing_angstrom)`` in pixels.
    tilt_angles_deg : numpy.ndarray
        ``(n,)`` ``YTilt``, degrees, for :func:`tomoprep.io.imod.write_tilt_angles`.
    x_tilts_deg : numpy.ndarray
        ``(n,)`` ``XTilt``, degrees, for :func:`tomoprep.io.imod.write_xtilt`.

    Raises
    ------
    ValueError
        If the pixel spacing is not positive.
    """
    if not (math.isfinite(pixel_spacing_angstrom) and pixel_spacing_angstrom > 0):
        raise ValueError(f"pixel_spacing_angstrom must be positive, got {pixel_spacing_angstrom}.")
    z_rots = np.radians(np.array([a.z_rot_deg for a in alignments], dtype=np.float64))
    cos, sin = np.cos(z_rots), np.sin(z_rots)
    matrices = np.stack([np.stack([cos, sin], axis=-1), np.stack([-sin, cos], axis=-1)], axis=1)
    shifts_px = np.array([[a.shift_x_angstrom, a.shift_y_angstrom] for a in alignments], dtype=np.float64)
    dxy = -np.einsum("nij,nj->ni", matrices, shifts_px.reshape(-1, 2) / pixel_spacing_angstrom)
    xf = np.concatenate([matrices, dxy[:, :, None]], axis=2)
    tilts = np.array([a.y_tilt_deg for a in alignments], dtype=np.float64)
    x_tilts = np.array([a.x_tilt_deg for a in alignments], dtype=np.float64)
    return xf, tilts, x_tilts


def _split_xf(xf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 2, 2)`` matrices and ``(n, 2)`` shifts of an ``(n, 2, 3)`` or ``(n, 6)`` transform array."""
    array = np.asarray(xf, dtype=np.float64)
    if array.ndim == 2 and array.shape[1] == 6:
        matrices = array[:, :4].reshape(-1, 2, 2)
        shifts = array[:, 4:]
    elif array.ndim == 3 and array.shape[1:] == (2, 3):
        matrices, shifts = array[:, :, :2], array[:, :, 2]
    else:
        raise ValueError(f"xf must have shape (n, 2, 3) or (n, 6), got {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError("xf holds a non-finite value.")
    return matrices, shifts


def _per_view(values: Sequence[float] | np.ndarray, n_views: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(array) != n_views:
        raise ValueError(f"{name} has {len(array)} values for {n_views} xf views.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds a non-finite value.")
    return array
