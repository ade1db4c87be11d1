"""AreTomo alignment files (``.aln``), read and written as AreTomo 1.3, AreTomo2 and AreTomo3 do.

Layout (AreTomo3 ``MrcUtil/CSaveAlignFile.cpp``; AreTomo2 the same without the offset and thickness lines)::

    # AreTomo Alignment / Priims bprmMn          (sic)
    # RawSize = W H N                            input stack: width, height, sections
    # NumPatches = k
    # DarkFrame =  f s tilt                      one per removed dark image (none in older files)
    # AlphaOffset = a                            AreTomo3: tilt-angle offset, TILT includes it
    # BetaOffset = b                             AreTomo3: offset about the axis normal to the tilt axis
    # Thickness = t                              AreTomo3, pixels
    # SEC     ROT         GMAG       TX          TY      SMEAN     SFIT    SCALE     BASE     TILT
        0   -93.7196    1.00000    155.235    708.750     1.00     1.00     1.00     0.00    -51.98
    # Local Alignment                            only when k > 0, then k rows per global row:
    row patch x y shift_x shift_y good           row (0-based), patch, centre and shift (px), 1.0 or 0.0

Global rows are in tilt-angle order; ``SEC`` is the section of the input stack each describes: 0-based in
AreTomo 1.x and AreTomo2, 1-based in AreTomo3 (whose reader converts older files). ``ROT`` is the tilt-axis
angle (counter-clockwise from Y), ``TX``/``TY`` the shift in pixels of the input stack, ``TILT`` the tilt angle;
the other columns are constants AreTomo writes. In a ``DarkFrame`` line, ``f`` is the position of the removed
image in the tilt-sorted series (0-based) and ``s`` its section (``SEC`` convention, not always: see
:func:`resolve_sec_base`). AreTomo 1.2 wrote a bare ``# N k`` line instead of ``RawSize``/``NumPatches``; it is
kept in :attr:`AreTomoAlignment.other_header_lines`.

Conversion to RELION 5 (its ``readAreTomoResults``): ``YTilt = TILT``, ``ZRot = ROT``, ``XTilt = 0``,
``shift = (TX, TY) × pixel spacing``; the IMOD equivalent is ``xf A = R(-ROT)``, ``xf shift = -A (TX, TY)``
(AreTomo's own ``-OutImod`` export, Scipion), which :mod:`tomoprep.io.imod_align` maps to the same fields.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from tomoprep.io.alignment_order import views_in_file_order
from tomoprep.io.aretomo_text import AlnDarkFrame, AlnLocalRow, AlnRow, SecBase, parse_aln, resolve_sec_base
from tomoprep.model import TiltAlignment, TiltImage

#: First line AreTomo writes (its spelling).
TITLE = "# AreTomo Alignment / Priims bprmMn"
_GLOBAL_HEADER = "# SEC     ROT         GMAG       TX          TY      SMEAN     SFIT    SCALE     BASE     TILT"
_LOCAL_MARKER = "Local Alignment"

__all__ = [
    "TITLE",
    "AlnDarkFrame",
    "AlnLocalRow",
    "AlnRow",
    "AreTomoAlignment",
    "alignment_from_aretomo",
    "aretomo_from_alignment",
    "read_aln",
    "resolve_sec_base",
    "tilts_of_aln_rows",
    "write_aln",
]


@dataclass(frozen=True)
class AreTomoAlignment:
    """Contents of an ``.aln`` file.

    ``sec_base`` is the convention of every ``sec`` (rows and dark frames); ``raw_size_px`` is
    ``(width, height, sections)`` of the input stack, ``None`` in AreTomo 1.2 files. Header comments this module
    does not interpret are kept, in order, in ``other_header_lines``.
    """

    rows: tuple[AlnRow, ...]
    sec_base: SecBase
    raw_size_px: tuple[int, int, int] | None = None
    num_patches: int = 0
    dark_frames: tuple[AlnDarkFrame, ...] = ()
    alpha_offset_deg: float | None = None
    beta_offset_deg: float | None = None
    thickness_px: int | None = None
    local_rows: tuple[AlnLocalRow, ...] = ()
    other_header_lines: tuple[str, ...] = field(default=())

    @property
    def sections(self) -> np.ndarray:
        """``(n_rows,)`` int: 0-based input-stack section of each global row."""
        return np.array([row.sec - self.sec_base for row in self.rows], dtype=np.int64)

    @property
    def n_stack_sections(self) -> int:
        """Sections of the input stack: ``RawSize``'s third number, else rows plus dark frames."""
        if self.raw_size_px is not None:
            return self.raw_size_px[2]
        return len(self.rows) + len(self.dark_frames)


def read_aln(path: Path, *, sec_base: Literal["auto", 0, 1] = "auto") -> AreTomoAlignment:
    """Read an AreTomo ``.aln`` file.

    Parameters
    ----------
    path
        The file.
    sec_base
        Convention of its ``SEC`` numbers: 0 (AreTomo 1.x, AreTomo2), 1 (AreTomo3), or ``"auto"`` to decide
        from the file as :func:`resolve_sec_base` explains.

    Raises
    ------
    InputError
        If the file is missing or malformed (a row of the wrong width or not numbers, local rows that do not
        match ``NumPatches``, rows and dark frames that do not add up to ``RawSize``, repeated or out-of-range
        ``SEC``), or ``"auto"`` cannot decide; the message names the line or the fix.
    """
    parsed = parse_aln(Path(path))
    base = resolve_sec_base(
        [row.sec for row in parsed.rows],
        dark_secs=[dark.sec for dark in parsed.dark_frames],
        n_sections=parsed.n_stack_sections,
        requested=sec_base,
        path=path,
    )
    return AreTomoAlignment(
        rows=parsed.rows,
        sec_base=base,
        raw_size_px=parsed.raw_size_px,
        num_patches=parsed.num_patches or 0,
        dark_frames=parsed.dark_frames,
        alpha_offset_deg=parsed.alpha_offset_deg,
        beta_offset_deg=parsed.beta_offset_deg,
        thickness_px=parsed.thickness_px,
        local_rows=parsed.local_rows,
        other_header_lines=parsed.other_header_lines,
    )


def write_aln(path: Path, aln: AreTomoAlignment) -> None:
    """Write an ``.aln`` file in AreTomo's layout and number formats (``SEC`` as stored, in ``aln.sec_base``).

    Header lines are written for the fields that are set; local rows follow a ``# Local Alignment`` line.

    Raises
    ------
    ValueError
        If a value is not finite, or the local rows do not number ``num_patches`` per global row.
    """
    if aln.local_rows and len(aln.local_rows) != aln.num_patches * len(aln.rows):
        raise ValueError(f"{len(aln.local_rows)} local rows for {aln.num_patches} patches x {len(aln.rows)} rows.")
    values = [v for item in (*aln.rows, *aln.dark_frames, *aln.local_rows) for v in vars(item).values()]
    values += [v for v in (aln.alpha_offset_deg, aln.beta_offset_deg) if v is not None]
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"the alignment for {path} holds a non-finite value.")
    lines = [TITLE, *aln.other_header_lines]
    if aln.raw_size_px is not None:
        lines.append("# RawSize = {} {} {}".format(*aln.raw_size_px))
        lines.append(f"# NumPatches = {aln.num_patches}")
    lines += [f"# DarkFrame =  {d.frame_index:4d} {d.sec:4d} {d.tilt_deg:8.2f}" for d in aln.dark_frames]
    if aln.alpha_offset_deg is not None:
        lines.append(f"# AlphaOffset = {aln.alpha_offset_deg:8.2f}")
    if aln.beta_offset_deg is not None:
        lines.append(f"# BetaOffset = {aln.beta_offset_deg:8.2f}")
    if aln.thickness_px is not None:
        lines.append(f"# Thickness = {aln.thickness_px}")
    lines.append(_GLOBAL_HEADER)
    lines += [
        f"{r.sec:5d}  {r.rot_deg:9.4f}  {r.gmag:9.5f}  {r.tx_px:9.3f}  {r.ty_px:9.3f}  {r.smean:7.2f}  "
        f"{r.sfit:7.2f}  {r.scale:7.2f}  {r.base:7.2f}  {r.tilt_deg:8.2f}"
        for r in aln.rows
    ]
    if aln.local_rows:
        lines.append(f"# {_LOCAL_MARKER}")
        lines += [
            f"{q.row:4d} {q.patch:3d} {q.x_px:8.2f}  {q.y_px:8.2f}  {q.shift_x_px:8.2f}  {q.shift_y_px:8.2f}  "
            f"{q.good:4.1f}"
            for q in aln.local_rows
        ]
    with Path(path).open("w", encoding="ascii", newline="\n") as stream:
        stream.writelines(line + "\n" for line in lines)


def alignment_from_aretomo(aln: AreTomoAlignment, *, pixel_spacing_angstrom: float) -> list[TiltAlignment]:
    """RELION 5 alignment fields of each global row, in row order (RELION's ``readAreTomoResults``).

    Parameters
    ----------
    aln
        The file's contents.
    pixel_spacing_angstrom
        Pixel spacing of the stack AreTomo aligned, Å.

    Returns
    -------
    list of TiltAlignment
        ``y_tilt_deg = TILT`` (AreTomo3 includes its ``AlphaOffset``), ``z_rot_deg = ROT``, ``x_tilt_deg = 0``
        (``BetaOffset`` has no per-tilt field and is not applied, as in RELION), shifts ``(TX, TY)`` × spacing.
    """
    _check_spacing(pixel_spacing_angstrom)
    return [
        TiltAlignment(
            y_tilt_deg=row.tilt_deg,
            z_rot_deg=row.rot_deg,
            x_tilt_deg=0.0,
            shift_x_angstrom=row.tx_px * pixel_spacing_angstrom,
            shift_y_angstrom=row.ty_px * pixel_spacing_angstrom,
        )
        for row in aln.rows
    ]


def aretomo_from_alignment(
    alignments: Sequence[TiltAlignment],
    *,
    pixel_spacing_angstrom: float,
    image_size_px: tuple[int, int],
    sections: Sequence[int] | None = None,
    removed_sections: Mapping[int, float] | None = None,
    sec_base: SecBase = 0,
) -> AreTomoAlignment:
    """An ``.aln`` (global rows only) for RELION 5 alignment fields.

    Parameters
    ----------
    alignments
        One per row, in the order the rows are to be written (AreTomo writes them by tilt angle).
    pixel_spacing_angstrom
        Pixel spacing of the stack, Å.
    image_size_px
        ``(width, height)`` of the stack, for ``RawSize``.
    sections
        0-based stack section of each row; default ``0 .. n-1``.
    removed_sections
        Stack sections without a row (excluded tilts), 0-based, with their tilt angles in degrees. They are
        written as ``DarkFrame`` lines, as AreTomo records the images it removed (position among all sections
        sorted by tilt angle, section, tilt), so that rows and dark frames add up to ``RawSize``.
    sec_base
        Convention of the written ``SEC``: 0 (AreTomo2, what RELION 5 reads; default) or 1 (AreTomo3).

    Raises
    ------
    ValueError
        If an X tilt is not 0 at the file's 0.01° (the format has no column for it), the spacing is not
        positive, or the sections (with the removed ones) are not each of ``0 .. N-1`` once.
    """
    _check_spacing(pixel_spacing_angstrom)
    tilted = [i for i, a in enumerate(alignments) if round(a.x_tilt_deg, 2) != 0]
    if tilted:
        raise ValueError(f"rows {tilted} have an X tilt, which an .aln file cannot hold; write IMOD files instead.")
    row_sections = list(range(len(alignments))) if sections is None else [int(s) for s in sections]
    removed = dict(removed_sections or {})
    if len(row_sections) != len(alignments):
        raise ValueError(f"{len(row_sections)} sections for {len(alignments)} alignments.")
    if sorted([*row_sections, *removed]) != list(range(len(row_sections) + len(removed))):
        raise ValueError(f"sections {row_sections} and removed {sorted(removed)} are not each of 0..N-1 once.")
    rows = tuple(
        AlnRow(
            sec=section + sec_base,
            rot_deg=a.z_rot_deg,
            tx_px=a.shift_x_angstrom / pixel_spacing_angstrom,
            ty_px=a.shift_y_angstrom / pixel_spacing_angstrom,
            tilt_deg=a.y_tilt_deg,
        )
        for section, a in zip(row_sections, alignments, strict=True)
    )
    tilt_of_section = {**{s: a.y_tilt_deg for s, a in zip(row_sections, alignments, strict=True)}, **removed}
    by_tilt = sorted(tilt_of_section, key=lambda s: (tilt_of_section[s], s))
    darks = tuple(AlnDarkFrame(by_tilt.index(s), s + sec_base, removed[s]) for s in sorted(removed))
    n_sections = len(tilt_of_section)
    return AreTomoAlignment(rows=rows, sec_base=sec_base, raw_size_px=(*image_size_px, n_sections), dark_frames=darks)


def tilts_of_aln_rows(tilts: Sequence[TiltImage], aln: AreTomoAlignment, *, path: Path | str) -> list[TiltImage]:
    """The tilt each global row of an ``.aln`` describes, row by row, through its ``SEC``.

    The stack AreTomo read is :func:`tomoprep.io.alignment_order.views_in_file_order` of the tilts with
    :attr:`AreTomoAlignment.n_stack_sections` views; row ``i`` describes its section ``aln.sections[i]``.

    Raises
    ------
    InputError
        If the stack size matches neither all nor the included tilts (naming ``path``).
    """
    stack = views_in_file_order(tilts, n_rows=aln.n_stack_sections, path=path)
    return [stack[section] for section in aln.sections]


def _check_spacing(pixel_spacing_angstrom: float) -> None:
    if not (math.isfinite(pixel_spacing_angstrom) and pixel_spacing_angstrom > 0):
        raise ValueError(f"pixel_spacing_angstrom must be positive, got {pixel_spacing_angstrom}.")
