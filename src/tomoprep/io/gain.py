"""Gain references: read them (MRC, TIFF, Thermo Fisher EER ``.gain``), orient them, apply them.

Row order. Gains come back in the row order of :mod:`tomoprep.io.movies` (MRC row order), so that the
rotation and flip a gain needs are the ones RELION needs:

- MRC: as stored.
- TIFF (``.tif``/``.tiff``): rows reversed, like TIFF movies (and as RELION, IMOD and MotionCor2 read TIFF).
- EER ``.gain`` (a TIFF that EPU writes beside EER movies): as stored, the row order of EER frames as
  decoded. RELION's ``loadEERGain`` undoes its TIFF flip for ``.gain`` files for the same reason.

Gains are multiplicative: ``corrected = frames * gain``. Pixels at 0 (defects in EER gains) stay 0.
RELION additionally reads a non-``.gain`` gain for EER movies as the inverse (it uses ``mean / gain``); that
is not done here.

Rotation and flip. ``rotation_deg`` turns the gain counter-clockwise as IMOD's 3dmod displays it (origin
bottom left, +y up), which is clockwise as relion_display shows it (row 0 at the top). On ``(y, x)`` arrays
90° is ``np.rot90(gain, k=-1)``: ``new[i, j] = old[ny - 1 - j, i]``, and the shape ``(ny, nx)`` becomes
``(nx, ny)``. RELION's ``--gain_rot n`` and MotionCor2's ``-RotGain n`` are both this rotation by ``90 n``
degrees: RELION calls it clockwise (in relion_display) and MotionCor2 counter-clockwise (in IMOD's display),
but it is the same operation (RELION ``image_op.h``: "equivalent to MotionCor2's -RotGain 1. In
relion_display, this looks clock-wise"). ``flip`` names the array axis that is reversed: ``"y"`` turns the
gain upside down (``np.flipud``; RELION ``--gain_flip 1``, MotionCor2 ``-FlipGain 1``), ``"x"`` left to
right (``np.fliplr``; value 2 in both). The rotation is applied first, then the flip, as in RELION.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import mrcfile
import numpy as np
import tifffile

from tomoprep.conventions import IMAGE_DTYPE
from tomoprep.errors import ImageFileError, InputError

GainRotation = Literal[0, 90, 180, 270]
GainFlip = Literal["none", "x", "y"]

#: RELION ``--gain_flip`` / MotionCor2 ``-FlipGain`` values.
_FLIP_CODES: dict[int, GainFlip] = {0: "none", 1: "y", 2: "x"}
_TIFF_SUFFIXES = (".tif", ".tiff")


def read_gain(path: Path, *, rotation_deg: GainRotation = 0, flip: GainFlip = "none") -> np.ndarray:
    """Read a gain reference and orient it.

    Parameters
    ----------
    path
        ``.mrc``, ``.tif``/``.tiff`` or Thermo Fisher ``.gain`` file holding one image.
    rotation_deg
        Counter-clockwise rotation as IMOD displays the image (module notes), applied first.
    flip
        ``"y"`` (upside down), ``"x"`` (left to right) or ``"none"``, applied after the rotation.

    Returns
    -------
    numpy.ndarray
        ``(y, x)`` float32 multiplicative gain in MRC row order.

    Raises
    ------
    ImageFileError
        If the file is missing, truncated, not a single image, or a DM3/DM4 file.
    InputError
        If ``rotation_deg`` or ``flip`` is not one of the allowed values.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".dm4", ".dm3"):
        fix = f"convert it with IMOD: dm2mrc {path.name} {path.with_suffix('.mrc').name}"
        raise ImageFileError(path, "is a Digital Micrograph file, which tomoprep does not read.", fix)
    if suffix not in (".mrc", ".gain", *_TIFF_SUFFIXES):
        raise ImageFileError(path, f"has suffix {path.suffix!r}, not a gain format.", "give a .mrc/.tif/.gain file.")
    if not path.is_file():
        raise ImageFileError(path, "does not exist.", "check the gain reference path.")
    image = _read_mrc_image(path) if suffix == ".mrc" else _read_tiff_image(path)
    if suffix in _TIFF_SUFFIXES:
        image = image[::-1]  # TIFF rows to MRC row order, as for TIFF movies
    return orient_gain(np.asarray(image, dtype=IMAGE_DTYPE), rotation_deg=rotation_deg, flip=flip)


def orient_gain(gain: np.ndarray, *, rotation_deg: GainRotation = 0, flip: GainFlip = "none") -> np.ndarray:
    """Rotate, then flip, a ``(y, x)`` gain (conventions in the module notes).

    Returns
    -------
    numpy.ndarray
        A new ``(y, x)`` array; a 90° or 270° rotation swaps the shape.

    Raises
    ------
    InputError
        If ``rotation_deg`` is not 0, 90, 180 or 270, or ``flip`` not "none", "x" or "y".
    """
    if rotation_deg not in get_args(GainRotation):
        problem = f"gain rotation {rotation_deg!r} is not 0, 90, 180 or 270 degrees."
        raise InputError(None, problem, "convert RELION/MotionCor2 codes with gain_orientation_from_relion().")
    if flip not in get_args(GainFlip):
        raise InputError(None, f"gain flip {flip!r} is not 'none', 'x' or 'y'.", "use 'y' for upside down.")
    return np.ascontiguousarray(oriented_view(gain, rotation_deg=rotation_deg, flip=flip))


def oriented_view(gain: np.ndarray, *, rotation_deg: GainRotation = 0, flip: GainFlip = "none") -> np.ndarray:
    """As :func:`orient_gain`, as a view of ``gain`` (no copy, no check of the arguments)."""
    # k = -1 per 90°: clockwise with row 0 on top (relion_display), counter-clockwise in IMOD's display.
    oriented = np.rot90(gain, k=-(rotation_deg // 90))
    if flip == "y":
        return oriented[::-1, :]
    if flip == "x":
        return oriented[:, ::-1]
    return oriented


def gain_orientation_from_relion(gain_rot: int, gain_flip: int) -> tuple[GainRotation, GainFlip]:
    """``(rotation_deg, flip)`` from RELION's ``--gain_rot`` (0-3) and ``--gain_flip`` (0-2).

    Raises
    ------
    InputError
        If a value is out of range.
    """
    return _orientation_from_codes(gain_rot, gain_flip, program="RELION --gain_rot/--gain_flip")


def gain_orientation_from_motioncor2(rot_gain: int, flip_gain: int) -> tuple[GainRotation, GainFlip]:
    """``(rotation_deg, flip)`` from MotionCor2's ``-RotGain`` (0-3) and ``-FlipGain`` (0-2).

    The same mapping as :func:`gain_orientation_from_relion`: the two programs' values mean the same
    operation (module notes).

    Raises
    ------
    InputError
        If a value is out of range.
    """
    return _orientation_from_codes(rot_gain, flip_gain, program="MotionCor2 -RotGain/-FlipGain")


def apply_gain(frames: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Multiply frames by a gain reference.

    A gain with half the frame size in both axes (a 4K EER gain on frames rendered with
    ``eer_upsampling=2``) is applied to each 2x2 block of half-pixels, as RELION does; the 2x2-binned result
    then equals the gain-corrected 1x rendering.

    Parameters
    ----------
    frames
        ``(n, y, x)`` stack or ``(y, x)`` image.
    gain
        ``(y, x)`` multiplicative gain, oriented (:func:`read_gain`).

    Returns
    -------
    numpy.ndarray
        New float32 array of the frames' shape.

    Raises
    ------
    InputError
        If the shapes do not match; the message names both and the likely fix.
    """
    frames = np.asarray(frames)
    if frames.ndim not in (2, 3):
        problem = f"apply_gain needs (n, y, x) frames or a (y, x) frame, got shape {frames.shape}."
        raise InputError(None, problem, "pass frames as a stack or one image.")
    return np.multiply(frames, gain_for_frames(gain, frames.shape[-2:]), dtype=IMAGE_DTYPE)


def gain_for_frames(gain: np.ndarray, frame_yx: tuple[int, ...]) -> np.ndarray:
    """The float32 gain to multiply ``frame_yx`` frames with, pixel by pixel (a half-size gain repeated on
    each 2x2 block, as :func:`apply_gain` does).

    Raises
    ------
    InputError
        If the gain is not one image or its shape fits neither the frames nor half of them.
    """
    gain = np.asarray(gain, dtype=IMAGE_DTYPE)
    frame_yx = tuple(int(n) for n in frame_yx)
    if gain.ndim != 2:
        raise InputError(None, f"the gain must be one (y, x) image, got shape {gain.shape}.", "pass one 2-D gain.")
    if frame_yx == (2 * gain.shape[0], 2 * gain.shape[1]):
        return np.repeat(np.repeat(gain, 2, axis=0), 2, axis=1)
    if frame_yx != gain.shape:
        raise InputError(
            None,
            f"gain shape {gain.shape} does not match frame shape {frame_yx}.",
            _shape_fix(frame_yx, gain.shape),
        )
    return gain


def _shape_fix(frame_yx: tuple[int, ...], gain_yx: tuple[int, ...]) -> str:
    if gain_yx == frame_yx[::-1]:
        return "the gain is transposed relative to the frames: it needs rotation_deg=90 or 270."
    if gain_yx == (2 * frame_yx[0], 2 * frame_yx[1]):
        return "the gain is twice the frame size: read the EER movie with eer_upsampling=2."
    return (
        "use the gain recorded for this camera and mode; a 90/270-degree rotated gain has its shape swapped "
        "and a 4K EER gain fits 4K or 8K (eer_upsampling=2) renders."
    )


def _orientation_from_codes(rotation: int, flip: int, *, program: str) -> tuple[GainRotation, GainFlip]:
    if rotation not in (0, 1, 2, 3) or flip not in _FLIP_CODES:
        problem = f"{program} values ({rotation}, {flip}) are out of range."
        raise InputError(None, problem, "rotation is 0, 1, 2 or 3 (steps of 90 degrees), flip 0, 1 or 2.")
    degrees: tuple[GainRotation, ...] = (0, 90, 180, 270)
    return degrees[rotation], _FLIP_CODES[flip]


def _read_mrc_image(path: Path) -> np.ndarray:
    try:
        with mrcfile.open(path, permissive=False) as mrc:
            data = np.asarray(mrc.data)
    except ValueError as exc:  # mrcfile raises it for truncated or non-MRC files
        raise ImageFileError(path, f"cannot be read as MRC ({exc}).", "re-copy the gain reference.") from exc
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise ImageFileError(path, f"holds data of shape {data.shape}, not one image.", "give a single gain image.")
    return data


def _read_tiff_image(path: Path) -> np.ndarray:
    size = path.stat().st_size
    try:
        with tifffile.TiffFile(path) as tif:
            page: Any = tif.pages.first
            end = max(o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=True))
            data = page.asarray() if end <= size else None
    except (ValueError, RuntimeError, OSError) as exc:  # tifffile / imagecodecs parse and decode errors
        raise ImageFileError(path, f"cannot be read as TIFF ({exc}).", "re-copy the gain reference.") from exc
    if data is None:
        problem = f"is truncated: the file is {size} bytes, its header implies {end}."
        raise ImageFileError(path, problem, "re-copy the gain reference.")
    if data.ndim != 2:
        problem = f"holds data of shape {data.shape}, not one image."
        raise ImageFileError(path, problem, "give a single gain image.")
    return data
