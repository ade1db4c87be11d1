"""CTF estimates made by other programs: CTFFIND4/5 output text, IMOD ctfplotter ``.defocus``, AreTomo ``_CTF.txt``.

Every reader returns :class:`CtfEstimate` per image in RELION's conventions: defocus U/V in Å, positive for
underfocus; the astigmatism angle (degrees) from image X towards image Y to U (RELION takes CTFFIND's
``azimuth`` and ctfplotter's angle as they are); phase shift in degrees; fit resolution in Å.

CTFFIND4/5 and AreTomo
    ``#`` header lines, then one row per image. The ``# Columns:`` line names the columns; CTFFIND writes
    ``micrograph number, defocus 1, defocus 2, azimuth, additional phase shift [radians], cross correlation,
    spacing up to which CTF rings were fit``, CTFFIND5 adds the tilt axis, tilt angle and sample thickness,
    AreTomo3 adds ``dfHand``; the phase shift is in radians in all of them. CTFFIND's header also gives pixel,
    voltage, Cs and amplitude contrast.
IMOD ctfplotter ``.defocus``
    Rows ``start end tilt1 tilt2 defocus...`` (views numbered from 1; a row may cover several views; defocus in
    nm). Version 2: the first row ends with the version number 2 and every row has one defocus. Version 3: a
    first line ``flags 0 0.0 0.0 0.0 3`` whose flags are the sum of 1 (astigmatism: defocus 1, defocus 2,
    angle), 2 (that angle in radians), 4 (a phase shift column), 8 (it in radians), 16 (tilt angles inverted
    against ctfplotter's) and 32 (a cut-on frequency column, 1/nm).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from tomoprep.errors import InputError

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_CTFFIND_OPTICS = re.compile(
    rf"Pixel size:\s*({_NUMBER}).*?voltage:\s*({_NUMBER}).*?aberration:\s*({_NUMBER}).*?contrast:\s*({_NUMBER})",
    re.IGNORECASE,
)
_COLUMN_ITEM = re.compile(r"#\s*(\d+)\s*[-:]?\s*([^;#]*)")
#: Column names (lower case) of the CTFFIND-style tables, by the words that identify them.
_COLUMN_KEYS = (
    ("micrograph", "number"), ("defocus 1", "defocus_1"), ("defocus 2", "defocus_2"), ("azimuth", "azimuth"),
    ("phase shift", "phase"), ("cross correlation", "score"), ("spacing", "resolution"),
    ("tilt axis", "tilt_axis"), ("tilt angle", "tilt"), ("thickness", "thickness"), ("dfhand", "hand"),
)  # fmt: skip
_DEFAULT_COLUMNS = ("number", "defocus_1", "defocus_2", "azimuth", "phase", "score", "resolution")
_CTFPLOTTER_FLAGS = {1: "astigmatism", 2: "angle in radians", 4: "phase shift", 8: "phase in radians",
                     16: "inverted tilt angles", 32: "cut-on frequency"}  # fmt: skip


@dataclass(frozen=True)
class CtfEstimate:
    """One image's CTF from another program (RELION conventions).

    Attributes
    ----------
    index
        0-based position of the image in the stack or list the program read.
    defocus_u_angstrom, defocus_v_angstrom
        Defocus along U and V, Å, positive = underfocus.
    astigmatism_angle_deg
        Angle from image X towards Y to U, degrees.
    phase_shift_deg
        Phase shift, degrees.
    fit_resolution_angstrom
        Spacing up to which the rings fit, Å (``nan`` when the file has none).
    figure_of_merit
        The program's fit score (``nan`` when none).
    tilt_deg
        Tilt angle the file gives for the image, degrees (``nan`` when none).
    """

    index: int
    defocus_u_angstrom: float
    defocus_v_angstrom: float
    astigmatism_angle_deg: float
    phase_shift_deg: float
    fit_resolution_angstrom: float = math.nan
    figure_of_merit: float = math.nan
    tilt_deg: float = math.nan


@dataclass(frozen=True)
class CtfFile:
    """The estimates of one file and what the file says about how they were made.

    ``program`` names the writer; ``optics`` is ``(pixel Å, kV, Cs mm, amplitude contrast)`` where the header
    gives it; ``hand`` is AreTomo3's ``dfHand`` (``-1``: the tilt axis is 180° off) where present.
    """

    path: Path
    program: str
    estimates: list[CtfEstimate]
    optics: tuple[float, float, float, float] | None = None
    hand: int | None = None


def _numbers(path: Path, line: str, number: int) -> list[float]:
    try:
        return [float(value) for value in line.split()]
    except ValueError:
        raise InputError(path, f"line {number} is not a row of numbers: {line.strip()!r}.",
                         "give the file the program wrote, unedited.") from None  # fmt: skip


def _columns(header: list[str]) -> tuple[str, ...] | None:
    """Column keys from a ``# Columns:`` header (which may run over several ``#`` lines), or None."""
    text = " ".join(line.lstrip("#").strip() for line in header)
    start = text.lower().find("columns:")
    if start < 0:
        return None
    keys = []
    for _, name in _COLUMN_ITEM.findall(text[start + len("columns:") :]):
        lowered = name.lower()
        keys.append(next((key for words, key in _COLUMN_KEYS if words in lowered), "other"))
    return tuple(keys) or None


def _table_estimate(path: Path, row: dict[str, float], index: int) -> CtfEstimate:
    for needed in ("defocus_1", "defocus_2", "azimuth"):
        if needed not in row:
            raise InputError(path, f"no '{needed.replace('_', ' ')}' column.", "give the file the program wrote.")
    return CtfEstimate(
        index=index, defocus_u_angstrom=row["defocus_1"], defocus_v_angstrom=row["defocus_2"],
        astigmatism_angle_deg=row["azimuth"], phase_shift_deg=math.degrees(row.get("phase", 0.0)),
        fit_resolution_angstrom=row.get("resolution", math.nan), figure_of_merit=row.get("score", math.nan),
        tilt_deg=row.get("tilt", math.nan),
    )  # fmt: skip


def _read_table(path: Path, program: str) -> CtfFile:
    """A CTFFIND-style table (CTFFIND4/5, AreTomo)."""
    lines = Path(path).read_text(errors="replace").splitlines()
    header = [line for line in lines if line.lstrip().startswith("#")]
    rows = [(i + 1, line) for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    if not rows:
        raise InputError(path, f"no rows of estimates in this {program} file.", "give the file the program wrote.")
    columns = _columns(header) or _DEFAULT_COLUMNS
    estimates, hands = [], set()
    for position, (number, line) in enumerate(rows):
        values = _numbers(path, line, number)
        names = columns if len(values) == len(columns) else columns[1:] if len(values) == len(columns) - 1 else None
        if names is None:
            raise InputError(path, f"line {number} has {len(values)} values; the header names {len(columns)} columns.",
                             "give the file the program wrote, unedited.")  # fmt: skip
        row = dict(zip(names, values, strict=True))
        index = round(row["number"]) - 1 if "number" in row else position
        estimates.append(_table_estimate(path, row, index))
        if "hand" in row:
            hands.add(round(row["hand"]))
    optics_match = _CTFFIND_OPTICS.search(" ".join(header))
    optics = tuple(float(v) for v in optics_match.groups()) if optics_match else None
    hand = hands.pop() if len(hands) == 1 else None
    version = re.search(r"CTFFind version\s+(\S+)", " ".join(header), re.IGNORECASE)
    name = f"{program} {version.group(1).rstrip(',')}" if version else program
    return CtfFile(Path(path), name, estimates, optics, hand)  # type: ignore[arg-type]


def read_ctffind(path: Path | str) -> CtfFile:
    """Read a CTFFIND4 or CTFFIND5 output text file (the ``.txt`` beside the diagnostic image)."""
    return _read_table(Path(path), "CTFFIND")


def read_aretomo_ctf(path: Path | str) -> CtfFile:
    """Read an AreTomo2/3 ``_CTF.txt`` (phase shift in radians; AreTomo3's ``dfHand`` in :attr:`CtfFile.hand`)."""
    return _read_table(Path(path), "AreTomo")


def _ctfplotter_layout(path: Path, first: list[float], second: list[float] | None) -> tuple[int, int]:
    """``(flags, rows to skip)`` of a ``.defocus`` file from its first two rows."""
    if len(first) == 6 and first[5] == 3 and first[1:5] == [0.0, 0.0, 0.0, 0.0]:
        flags = int(first[0])
        unknown = flags & ~sum(_CTFPLOTTER_FLAGS)
        if unknown or flags != first[0]:
            raise InputError(path, f"unknown flags {first[0]:g} in the version-3 header line.",
                             "give the .defocus file ctfplotter wrote, unedited.")  # fmt: skip
        return flags, 1
    if len(first) == 6 and first[5] == 2 and (second is None or len(second) == 5):
        return 0, 0
    raise InputError(path, "neither a version-2 first row (ending in 2) nor a version-3 header line "
                     "('flags 0 0.0 0.0 0.0 3'): a file from ctfplotter before IMOD 3.12, or not a .defocus file.",
                     "run ctfplotter of a current IMOD on the stack, or give the file it wrote.")  # fmt: skip


def _ctfplotter_row(path: Path, values: list[float], flags: int, number: int) -> list[CtfEstimate]:
    astigmatism, phase, cut_on = bool(flags & 1), bool(flags & 4), bool(flags & 32)
    expected = 5 + 2 * astigmatism + phase + cut_on
    if len(values) != expected and not (flags == 0 and len(values) == 6 and number == 1):
        raise InputError(path, f"line {number} has {len(values)} values; its flags ({flags}) call for {expected}.",
                         "give the .defocus file ctfplotter wrote, unedited.")  # fmt: skip
    start, end = int(values[0]), int(values[1])
    if start < 1 or end < start:
        raise InputError(path, f"line {number}: views {start} to {end} (views are numbered from 1).",
                         "give the .defocus file ctfplotter wrote, unedited.")  # fmt: skip
    defocus_1 = values[4] * 10.0
    defocus_2, angle = (values[5] * 10.0, values[6]) if astigmatism else (defocus_1, 0.0)
    if flags & 2:
        angle = math.degrees(angle)
    shift = values[5 + 2 * astigmatism] if phase else 0.0
    if flags & 8:
        shift = math.degrees(shift)
    tilt = 0.5 * (values[2] + values[3]) * (-1.0 if flags & 16 else 1.0)
    return [CtfEstimate(index=view - 1, defocus_u_angstrom=defocus_1, defocus_v_angstrom=defocus_2,
                        astigmatism_angle_deg=angle, phase_shift_deg=shift, tilt_deg=tilt)
            for view in range(start, end + 1)]  # fmt: skip


def read_ctfplotter(path: Path | str) -> CtfFile:
    """Read an IMOD ctfplotter ``.defocus`` file, any version-2 or version-3 flavour.

    A row covering several views gives each of them its estimate; the tilt angle is the mean of the row's two.
    The estimates come in file order; ``index`` is the view (from 0).
    """
    path = Path(path)
    lines = [(i + 1, line) for i, line in enumerate(path.read_text(errors="replace").splitlines()) if line.strip()]
    if not lines:
        raise InputError(path, "the .defocus file is empty.", "give the .defocus file ctfplotter wrote.")
    rows = [(number, _numbers(path, line, number)) for number, line in lines]
    flags, skip = _ctfplotter_layout(path, rows[0][1], rows[1][1] if len(rows) > 1 else None)
    estimates = [e for number, values in rows[skip:] for e in _ctfplotter_row(path, values, flags, number)]
    if not estimates:
        raise InputError(path, "a header line and no estimates.", "give the .defocus file ctfplotter wrote.")
    return CtfFile(path, "IMOD ctfplotter", estimates)


def read_ctf_file(path: Path | str) -> CtfFile:
    """Read any of the supported files, recognised by content: ``#``-headed tables (CTFFIND, or AreTomo when
    the header does not name CTFFIND) and ``.defocus`` rows."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        raise InputError(path, f"cannot be read ({error.strerror}).", "check the path.") from None
    first = next((line for line in text.splitlines() if line.strip()), "")
    if first.lstrip().startswith("#"):
        return read_ctffind(path) if "ctffind" in text.lower() else read_aretomo_ctf(path)
    return read_ctfplotter(path)
