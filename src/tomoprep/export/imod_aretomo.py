"""Export a tilt series' alignment for IMOD and AreTomo: a stack of the kept tilts and the files that align it.

For each series, into ``OUT/<name>/``:

- ``<name>.st``: the included tilts' images, in the stack order of
  :func:`tomoprep.io.alignment_order.stack_order` (by section for a series imported from a stack, else by nominal
  tilt angle), float32, with the pixel spacing;
- ``<name>.rawtlt``: the nominal tilt angles of those sections;
- ``<name>.xf``, ``<name>.tlt``, ``<name>.xtilt`` (``--format imod``): IMOD's transforms, tilt angles and X tilts
  (``imod_from_alignment``: ``A = R(-ZRot)``, ``(DX, DY) = -A shift``), and ``newst.com``, ``tilt.com``: IMOD
  command files (``submfg newst.com tilt.com``) that make ``<name>.ali`` and ``<name>_rec.mrc``;
- ``<name>.aln`` (``--format aretomo``): AreTomo2's alignment of the same stack (``SEC`` 0-based, rows by tilt
  angle).

Because the files list the included tilts of that stack order, :mod:`tomoprep.io.imod_align` and
:mod:`tomoprep.io.aretomo` read them back onto the same tilts. A tilt without an alignment is written with its
nominal tilt, the nominal axis and no shift (the caller is told).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from tomoprep.errors import InputError
from tomoprep.io.alignment_order import stack_order
from tomoprep.model import TiltAlignment, TiltImage, TiltSeries

#: IMOD's default radial filter of ``tilt`` (cutoff, fall-off as fractions of Nyquist).
RADIAL_FILTER = "0.35 0.035"


@dataclass(frozen=True)
class AlignmentFiles:
    """What was written for one series: its folder, the stack, and warnings for the log."""

    folder: Path
    stack: Path
    notes: tuple[str, ...]


def stack_tilts(ts: TiltSeries) -> list[TiltImage]:
    """The included tilts in the order of the exported stack's sections."""
    return [t for t in stack_order(ts.tilts) if not t.excluded]


def _poses(ts: TiltSeries, tilts: list[TiltImage]) -> tuple[list[TiltAlignment], tuple[str, ...]]:
    poses = [
        t.alignment
        if t.alignment is not None
        else TiltAlignment(y_tilt_deg=t.acquisition.nominal_tilt_angle_deg, z_rot_deg=ts.nominal_tilt_axis_angle_deg)
        for t in tilts
    ]
    unaligned = sum(1 for t in tilts if t.alignment is None)
    notes = (f"{unaligned} of {len(tilts)} tilts of {ts.name} are not aligned: written with "
             "the nominal tilt and axis and no shift.",) if unaligned else ()  # fmt: skip
    return poses, notes


def write_stack(ts: TiltSeries, tilts: list[TiltImage], path: Path) -> tuple[int, int]:
    """Write the images of ``tilts`` as one MRC stack; return its ``(width, height)`` in pixels."""
    import numpy as np

    from tomoprep.io.mrc import read_mrc, write_mrc

    images = []
    for tilt in tilts:
        acquisition = tilt.acquisition
        if acquisition.stack_path is not None:
            images.append(read_mrc(acquisition.stack_path, sections=[acquisition.section_index])[0])
        elif tilt.motion is not None:
            images.append(read_mrc(tilt.motion.micrograph_path))
        else:
            raise InputError(None, f"tilt {acquisition.nominal_tilt_angle_deg:+.1f}° of {ts.name!r} has no image.",
                             "export a run that holds tilt images.")  # fmt: skip
    spacing = ts.tilt_series_pixel_spacing_angstrom
    if spacing is None:
        raise InputError(None, f"tilt series {ts.name!r} has no tilt images.", "run tomoprep motioncorr first.")
    write_mrc(path, np.stack(images), pixel_spacing_angstrom=spacing, overwrite=True)
    return int(images[0].shape[1]), int(images[0].shape[0])


def export_alignment_files(
    ts: TiltSeries, out: Path, *, formats: frozenset[str], thickness_angstrom: float | None = None
) -> AlignmentFiles:
    """Write the stack and the IMOD (``"imod"``) and/or AreTomo (``"aretomo"``) files of ``ts`` into
    ``out/<name>/``.

    Raises
    ------
    InputError
        If every tilt is excluded, a tilt has no image, or (for IMOD's ``tilt.com``) the thickness is unknown.
    """
    from tomoprep.io.aretomo import aretomo_from_alignment, write_aln
    from tomoprep.io.imod import write_tilt_angles, write_xf, write_xtilt
    from tomoprep.io.imod_align import imod_from_alignment

    tilts = stack_tilts(ts)
    if not tilts:
        raise InputError(None, f"every tilt of {ts.name!r} is excluded; there is nothing to export.",
                         "include tilts again (tomoprep clean) or leave the series out.")  # fmt: skip
    folder = Path(out) / ts.name
    folder.mkdir(parents=True, exist_ok=True)
    stack = folder / f"{ts.name}.st"
    size = write_stack(ts, tilts, stack)
    spacing = float(ts.tilt_series_pixel_spacing_angstrom or math.nan)
    poses, notes = _poses(ts, tilts)
    write_tilt_angles(folder / f"{ts.name}.rawtlt", [t.acquisition.nominal_tilt_angle_deg for t in tilts])
    if "imod" in formats:
        xf, tlt, xtilt = imod_from_alignment(poses, pixel_spacing_angstrom=spacing)
        write_xf(folder / f"{ts.name}.xf", xf)
        write_tilt_angles(folder / f"{ts.name}.tlt", tlt)
        write_xtilt(folder / f"{ts.name}.xtilt", xtilt)
        thickness_px = _thickness_px(ts, spacing, thickness_angstrom)
        (folder / "newst.com").write_text(newst_com(ts.name))
        (folder / "tilt.com").write_text(tilt_com(ts.name, size, thickness_px=thickness_px))
    if "aretomo" in formats:
        by_angle = sorted(range(len(tilts)), key=lambda i: (poses[i].y_tilt_deg, i))
        try:
            aln = aretomo_from_alignment([poses[i] for i in by_angle], pixel_spacing_angstrom=spacing,
                                         image_size_px=size, sections=by_angle)  # fmt: skip
        except ValueError as error:  # an X tilt, which the .aln format has no column for
            raise InputError(None, f"{ts.name}: {error}", "export --format imod for this series.") from error
        write_aln(folder / f"{ts.name}.aln", aln)
    return AlignmentFiles(folder, stack, notes)


def _thickness_px(ts: TiltSeries, spacing: float, thickness_angstrom: float | None) -> int:
    thickness = thickness_angstrom if thickness_angstrom is not None else ts.specimen_thickness_angstrom
    if thickness is None:
        raise InputError(None, f"the thickness of {ts.name!r} is unknown, and IMOD's tilt.com needs it.",
                         "align the series first (it measures the thickness), or give "
                         "--tomogram-thickness-angstrom.")  # fmt: skip
    return 2 * math.ceil(thickness / spacing / 2)


def newst_com(name: str) -> str:
    """IMOD's ``newst.com``: the aligned stack ``<name>.ali`` from ``<name>.st`` and ``<name>.xf``."""
    return "\n".join([
        "$newstack -StandardInput",
        f"InputFile {name}.st",
        f"OutputFile {name}.ali",
        f"TransformFile {name}.xf",
        "TaperAtFill 1,0",
        "AdjustOrigin",
        "OffsetsInXandY 0.0,0.0",
        "ImagesAreBinned 1.0",
        "BinByFactor 1",
        "$if (-e ./savework) ./savework",
        "",
    ])  # fmt: skip


def tilt_com(name: str, size_px: tuple[int, int], *, thickness_px: int) -> str:
    """IMOD's ``tilt.com``: weighted back projection of ``<name>.ali`` into ``<name>_rec.mrc`` (slices along Y, as
    IMOD's default; ``trimvol -rx`` turns them to Z). No ``LOG`` entry: the images are not taken as logarithms,
    as etomo sets for cryo data, whose sums may hold values at or below 0."""
    return "\n".join([
        "$tilt -StandardInput",
        f"InputProjections {name}.ali",
        f"OutputFile {name}_rec.mrc",
        "IMAGEBINNED 1",
        f"TILTFILE {name}.tlt",
        f"XTILTFILE {name}.xtilt",
        f"THICKNESS {thickness_px}",
        f"RADIAL {RADIAL_FILTER}",
        "FalloffIsTrueSigma 1",
        "XAXISTILT 0.0",
        "SCALE 0.0 1.0",
        "PERPENDICULAR",
        "MODE 2",
        f"FULLIMAGE {size_px[0]} {size_px[1]}",
        "SUBSETSTART 0 0",
        "AdjustOrigin",
        "OFFSET 0.0",
        "SHIFT 0.0 0.0",
        "$if (-e ./savework) ./savework",
        "",
    ])  # fmt: skip
