"""Parsing of AreTomo ``.aln`` text and the choice of its ``SEC`` convention (layout in :mod:`tomoprep.io.aretomo`)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tomoprep.errors import InputError

SecBase = Literal[0, 1]

_KEY_VALUE = re.compile(r"^(\w+)\s*=(.*)$")
_HEADER_KEYS = ("RawSize", "NumPatches", "DarkFrame", "AlphaOffset", "BetaOffset", "Thickness")
_GLOBAL_COLUMNS = 10
_LOCAL_COLUMNS = 7
_FIX = "give the .aln file AreTomo wrote, unedited."


@dataclass(frozen=True)
class AlnRow:
    """One global row: ``SEC`` as written, angles in degrees, shifts in pixels of the input stack."""

    sec: int
    rot_deg: float
    tx_px: float
    ty_px: float
    tilt_deg: float
    gmag: float = 1.0
    smean: float = 1.0
    sfit: float = 1.0
    scale: float = 1.0
    base: float = 0.0


@dataclass(frozen=True)
class AlnDarkFrame:
    """A dark image AreTomo removed: tilt-sorted position (0-based), section as written, tilt (degrees)."""

    frame_index: int
    sec: int
    tilt_deg: float


@dataclass(frozen=True)
class AlnLocalRow:
    """One local-alignment row: global row (0-based), patch, patch centre and shift (pixels), good flag."""

    row: int
    patch: int
    x_px: float
    y_px: float
    shift_x_px: float
    shift_y_px: float
    good: float


@dataclass
class ParsedAln:
    """Everything an ``.aln`` holds, its ``SEC`` convention not yet decided."""

    rows: tuple[AlnRow, ...] = ()
    raw_size_px: tuple[int, int, int] | None = None
    num_patches: int | None = None
    dark_frames: tuple[AlnDarkFrame, ...] = ()
    alpha_offset_deg: float | None = None
    beta_offset_deg: float | None = None
    thickness_px: int | None = None
    local_rows: tuple[AlnLocalRow, ...] = ()
    other_header_lines: tuple[str, ...] = field(default=())

    @property
    def n_stack_sections(self) -> int:
        """``RawSize``'s sections, else rows plus dark frames."""
        return self.raw_size_px[2] if self.raw_size_px is not None else len(self.rows) + len(self.dark_frames)


def parse_aln(path: Path) -> ParsedAln:
    """Parse an ``.aln`` file, checking its counts (see :func:`tomoprep.io.aretomo.read_aln`)."""
    if not path.is_file():
        raise InputError(path, "AreTomo alignment file does not exist.", "check the path.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"is not a text file ({exc}).", "give the AreTomo .aln file.") from exc
    parsed = ParsedAln()
    rows: list[AlnRow] = []
    local: list[AlnLocalRow] = []
    darks: list[AlnDarkFrame] = []
    others: list[str] = []
    in_local = False
    for line_no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            body = stripped[1:].strip()
            if body == "Local Alignment":
                in_local = True
            elif not (body.startswith(("AreTomo Alignment", "SEC ")) or _header(parsed, darks, body, path, line_no)):
                others.append(stripped)
            continue
        numbers = _numbers(stripped, _LOCAL_COLUMNS if in_local else _GLOBAL_COLUMNS, path, line_no)
        if in_local:
            row, patch = _integer(numbers[0], path, line_no), _integer(numbers[1], path, line_no)
            local.append(AlnLocalRow(row, patch, *numbers[2:]))
        else:
            sec = _integer(numbers[0], path, line_no)
            rot, gmag, tx, ty, smean, sfit, scale, base, tilt = numbers[1:]
            rows.append(AlnRow(sec, rot, tx, ty, tilt, gmag, smean, sfit, scale, base))
    parsed.rows, parsed.local_rows = tuple(rows), tuple(local)
    parsed.dark_frames, parsed.other_header_lines = tuple(darks), tuple(others)
    _check_counts(parsed, path)
    return parsed


def _header(parsed: ParsedAln, darks: list[AlnDarkFrame], body: str, path: Path, line_no: int) -> bool:
    """Store a ``Key = value`` header line AreTomo writes; False for any other comment."""
    match = _KEY_VALUE.match(body)
    if match is None or match[1] not in _HEADER_KEYS:
        return False
    key, values = match[1], match[2].split()
    widths = {"RawSize": 3, "DarkFrame": 3}
    numbers = _numbers(" ".join(values), widths.get(key, 1), path, line_no)
    if key == "RawSize":
        width, height, sections = (_integer(n, path, line_no) for n in numbers)
        parsed.raw_size_px = (width, height, sections)
    elif key == "DarkFrame":
        darks.append(AlnDarkFrame(_integer(numbers[0], path, line_no), _integer(numbers[1], path, line_no), numbers[2]))
    elif key == "NumPatches":
        parsed.num_patches = _integer(numbers[0], path, line_no)
    elif key == "Thickness":
        parsed.thickness_px = _integer(numbers[0], path, line_no)
    elif key == "AlphaOffset":
        parsed.alpha_offset_deg = numbers[0]
    else:
        parsed.beta_offset_deg = numbers[0]
    return True


def _numbers(text: str, count: int, path: Path, line_no: int) -> list[float]:
    try:
        numbers = [float(field) for field in text.split()]
    except ValueError:
        numbers = []
    if len(numbers) != count or not all(math.isfinite(n) for n in numbers):
        raise InputError(path, f"line {line_no} is not {count} numbers: {text!r}.", _FIX)
    return numbers


def _integer(value: float, path: Path, line_no: int) -> int:
    if value != int(value):
        raise InputError(path, f"line {line_no}: {value} should be a whole number.", _FIX)
    return int(value)


def _check_counts(parsed: ParsedAln, path: Path) -> None:
    n_rows = len(parsed.rows)
    if n_rows == 0:
        raise InputError(path, "holds no alignment rows.", "check AreTomo finished writing the file.")
    n_local = len(parsed.local_rows)
    if parsed.num_patches is None:
        parsed.num_patches = n_local // n_rows
    if n_local != parsed.num_patches * n_rows:
        raise InputError(
            path,
            f"has {n_local} local-alignment rows, not NumPatches ({parsed.num_patches}) x {n_rows} global rows.",
            _FIX,
        )
    if any(not 0 <= q.row < n_rows for q in parsed.local_rows):
        raise InputError(path, f"a local-alignment row refers to a global row outside 0..{n_rows - 1}.", _FIX)
    if parsed.raw_size_px is not None and n_rows + len(parsed.dark_frames) != parsed.raw_size_px[2]:
        raise InputError(
            path,
            f"has {n_rows} rows and {len(parsed.dark_frames)} dark frames, which do not add up to the "
            f"{parsed.raw_size_px[2]} sections of RawSize.",
            _FIX,
        )


def resolve_sec_base(
    secs: Sequence[int],
    *,
    dark_secs: Sequence[int],
    n_sections: int,
    requested: Literal["auto", 0, 1],
    path: Path | str,
) -> SecBase:
    """The ``SEC`` convention of an ``.aln``: 0-based (AreTomo 1.x, AreTomo2) or 1-based (AreTomo3).

    Rule of ``"auto"``, with ``N = n_sections`` (``RawSize``, else rows plus dark frames): a row with ``SEC`` 0
    means 0-based, a row with ``SEC`` N means 1-based. Without either, the first and the last stack section are
    both missing from the rows (dark frames removed), so the rows alone fit both conventions; then the
    ``DarkFrame`` sections decide if they are exactly the missing sections of one convention. Otherwise (no or
    inconsistent ``DarkFrame`` lines: AreTomo3 versions have written their dark-frame sections 0-based beside
    1-based rows) the convention cannot be told and an error asks for it.

    Raises
    ------
    InputError
        If the ``SEC`` numbers repeat, do not fit the stack in the requested (or any) convention, or
        ``"auto"`` cannot decide.
    """
    fix = "pass sec_base=0 (AreTomo 1.x, AreTomo2) or sec_base=1 (AreTomo3) for this file."
    if len(set(secs)) != len(secs):
        raise InputError(path, f"repeats SEC numbers: {sorted(secs)}.", "give the .aln file AreTomo wrote.")
    bases: tuple[SecBase, ...] = (0, 1) if requested == "auto" else (requested,)
    fitting = [b for b in bases if all(b <= s < b + n_sections for s in secs)]
    if not fitting:
        raise InputError(
            path,
            f"SEC numbers {min(secs)}..{max(secs)} do not fit a stack of {n_sections} sections "
            f"{'in either convention' if requested == 'auto' else f'counted from {requested}'}.",
            fix if requested != "auto" else "give the .aln file AreTomo wrote for this stack.",
        )
    if len(fitting) == 1:
        return fitting[0]
    missing = {b: set(range(b, b + n_sections)) - set(secs) for b in fitting}
    by_darks = [b for b in fitting if dark_secs and set(dark_secs) == missing[b]]
    if len(by_darks) == 1:
        return by_darks[0]
    raise InputError(
        path,
        f"lacks both the first and the last of its {n_sections} stack sections (SEC {min(secs)}..{max(secs)}), "
        "so its SEC numbers fit both the 0-based and the 1-based convention.",
        fix,
    )
