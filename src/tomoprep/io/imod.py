"""IMOD text files used when importing an aligned tilt series: tilt angles (``.tlt``, ``.rawtlt``), X-axis tilts
(``.xtilt``) and 2-D transforms (``.xf``).

Formats, as IMOD writes them:

``.tlt`` / ``.rawtlt``
    One tilt angle in degrees per line, in the order of the views in the stack; ``tiltalign`` writes
    ``%7.2f``. Some tools add columns (TomoBabel's ``cets-imod`` files carry the accumulated dose in
    e/Å² as a second column), so the angle is the first number of each line and
    :func:`read_tilt_columns` gives them all.
``.xtilt``
    One X-axis tilt in degrees per line, ``%7.2f``, in stack order: ``tiltalign``'s ``OutputXAxisTiltFile``, the
    per-view X-tilt variable of its model (0 for views it did not solve). How it enters RELION's model is in
    :mod:`tomoprep.io.imod_align`.
``.xf``
    One line per view: ``A11 A12 A21 A22 DX DY``, the matrix in ``%12.7f`` and the shifts (pixels) in
    ``%12.3f``. A point ``(x, y)`` of the raw view, relative to its centre, lands at ``A (x, y) + (DX, DY)``
    relative to the centre of the aligned view (IMOD ``xf2rotmagstr`` manual).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tomoprep.errors import InputError

#: Columns of an ``.xf`` line.
XF_COLUMNS = 6
#: Field widths IMOD uses for ``.xf`` files: matrix, then shifts.
_XF_MATRIX_FORMAT = "{:12.7f}"
_XF_SHIFT_FORMAT = "{:12.3f}"
_XF_FIELD_WIDTH = 12


def read_tilt_columns(path: Path) -> np.ndarray:
    """Read every numeric column of a tilt-angle file.

    Blank lines, surrounding blanks and CRLF line ends are tolerated; every other line must hold the same
    number of numbers.

    Returns
    -------
    numpy.ndarray
        ``(n_views, n_columns)`` float64; column 0 holds the tilt angles in degrees.

    Raises
    ------
    InputError
        If the file is missing, empty, or a line holds a non-number or a different number of columns;
        the message names the line.
    """
    path = Path(path)
    rows = _read_number_rows(path, what="tilt-angle")
    widths = {len(row) for _, row in rows}
    if len(widths) > 1:
        first = len(rows[0][1])
        line_no = next(n for n, row in rows if len(row) != first)
        raise InputError(
            path,
            f"line {line_no} has a different number of columns than line {rows[0][0]} ({first}).",
            "give every line the same columns (one tilt angle per line).",
        )
    return np.array([row for _, row in rows], dtype=np.float64)


def read_tilt_angles(path: Path) -> np.ndarray:
    """Read the tilt angles of an IMOD ``.tlt`` or ``.rawtlt`` file.

    Returns
    -------
    numpy.ndarray
        ``(n_views,)`` float64 tilt angles in degrees, in file order. Further columns (see
        :func:`read_tilt_columns`) are checked but not returned.

    Raises
    ------
    InputError
        As :func:`read_tilt_columns`.
    """
    return read_tilt_columns(path)[:, 0].copy()


def write_tilt_angles(path: Path, angles_deg: Sequence[float] | np.ndarray) -> None:
    """Write tilt angles one per line as IMOD's ``tiltalign`` does (``%7.2f``: rounded to 0.01°).

    Raises
    ------
    ValueError
        If an angle is not finite.
    """
    _write_degrees(Path(path), angles_deg, what="tilt angles")


def read_xtilt(path: Path) -> np.ndarray:
    """Read an IMOD ``.xtilt`` file: one X-axis tilt per view.

    Returns
    -------
    numpy.ndarray
        ``(n_views,)`` float64 X-axis tilts in degrees, in file (stack) order.

    Raises
    ------
    InputError
        If the file is missing, empty, or a line does not hold exactly one number; the message names the line.
    """
    path = Path(path)
    rows = _read_number_rows(path, what="X-axis tilt")
    for line_no, row in rows:
        if len(row) != 1:
            raise InputError(
                path,
                f"line {line_no} holds {len(row)} numbers, not the one X-axis tilt of an .xtilt line.",
                "give the .xtilt file tiltalign wrote (OutputXAxisTiltFile).",
            )
    return np.array([row[0] for _, row in rows], dtype=np.float64)


def write_xtilt(path: Path, x_tilts_deg: Sequence[float] | np.ndarray) -> None:
    """Write X-axis tilts one per line as ``tiltalign`` does (``%7.2f``: rounded to 0.01°).

    Raises
    ------
    ValueError
        If a value is not finite.
    """
    _write_degrees(Path(path), x_tilts_deg, what="X-axis tilts")


def read_xf(path: Path) -> np.ndarray:
    """Read an IMOD ``.xf`` file of 2-D transforms, one per view.

    Returns
    -------
    numpy.ndarray
        ``(n_views, 2, 3)`` float64: ``[[A11, A12, DX], [A21, A22, DY]]`` per view, shifts in pixels.

    Raises
    ------
    InputError
        If the file is missing or empty, or a line does not hold exactly six numbers; the message names
        the line.
    """
    path = Path(path)
    rows = _read_number_rows(path, what="transform")
    for line_no, row in rows:
        if len(row) != XF_COLUMNS:
            raise InputError(
                path,
                f"line {line_no} holds {len(row)} numbers, not the {XF_COLUMNS} of A11 A12 A21 A22 DX DY.",
                "check it is a global .xf file from IMOD (local alignment files have another layout).",
            )
    a11, a12, a21, a22, dx, dy = np.array([row for _, row in rows], dtype=np.float64).T
    return np.stack([np.stack([a11, a12, dx], axis=-1), np.stack([a21, a22, dy], axis=-1)], axis=1)


def write_xf(path: Path, xf: np.ndarray) -> None:
    """Write 2-D transforms in IMOD's fixed-width ``.xf`` format.

    Parameters
    ----------
    path
        Destination file.
    xf
        ``(n_views, 2, 3)``: ``[[A11, A12, DX], [A21, A22, DY]]`` per view, shifts in pixels.

    Raises
    ------
    ValueError
        If ``xf`` has another shape, holds a non-finite value, or a value too large for IMOD's field width.
    """
    transforms = np.asarray(xf, dtype=np.float64)
    if transforms.ndim != 3 or transforms.shape[1:] != (2, 3):
        raise ValueError(f"xf must have shape (n_views, 2, 3), got {transforms.shape}.")
    if not np.all(np.isfinite(transforms)):
        raise ValueError("xf holds a non-finite value.")
    lines = []
    for (a11, a12, dx), (a21, a22, dy) in transforms:
        fields = [_XF_MATRIX_FORMAT.format(v) for v in (a11, a12, a21, a22)]
        fields += [_XF_SHIFT_FORMAT.format(v) for v in (dx, dy)]
        # A field with no leading blank runs into its neighbour and could not be read back.
        too_wide = [f for f in fields if not f.startswith(" ")]
        if too_wide:
            raise ValueError(f"xf values {too_wide} do not fit IMOD's {_XF_FIELD_WIDTH}-character fields.")
        lines.append("".join(fields))
    _write_lines(Path(path), lines)


def _read_number_rows(path: Path, *, what: str) -> list[tuple[int, list[float]]]:
    """The non-blank lines of a text file as (1-based line number, numbers)."""
    if not path.is_file():
        raise InputError(path, f"{what} file does not exist.", "check the path.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"is not a text file ({exc}).", f"give the IMOD {what} file.") from exc
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            numbers = [float(field) for field in fields]
        except ValueError:
            numbers = []
        if not numbers or not all(math.isfinite(n) for n in numbers):
            raise InputError(
                path,
                f"line {line_no} is not a row of numbers: {line.strip()!r}.",
                f"correct or remove that line of the {what} file.",
            )
        rows.append((line_no, numbers))
    if not rows:
        raise InputError(path, f"holds no {what} lines.", f"check the {what} file was written completely.")
    return rows


def _write_degrees(path: Path, values_deg: Sequence[float] | np.ndarray, *, what: str) -> None:
    values = np.asarray(values_deg, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} must be finite, got {values[~np.isfinite(values)].tolist()}.")
    _write_lines(path, [f"{value:7.2f}" for value in values])


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    # Always LF, as IMOD writes, whatever the platform.
    with path.open("w", encoding="ascii", newline="\n") as stream:
        stream.writelines(line + "\n" for line in lines)
