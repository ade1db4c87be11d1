"""Alignment files of a series: writing IMOD and AreTomo files for tomoprep's alignment, reading theirs.

Views are in the order an external program sees them (:func:`tomoprep.io.alignment_order.stack_order`): the
sections of an imported stack, otherwise the included tilts sorted by tilt angle. Shifts in the files refer to
the tilt series' own images (``rlnTomoTiltSeriesPixelSize``), not to the working binning.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tomoprep.errors import InputError
from tomoprep.io.alignment_order import stack_order, views_in_file_order
from tomoprep.io.aretomo import alignment_from_aretomo, aretomo_from_alignment, read_aln, tilts_of_aln_rows, write_aln
from tomoprep.io.imod import read_tilt_angles, read_xf, read_xtilt, write_tilt_angles, write_xf, write_xtilt
from tomoprep.io.imod_align import alignment_from_imod, imod_from_alignment
from tomoprep.model import TiltSeries
from tomoprep.steps.tilt_images import series_pixel_spacing


def write_alignment_files(ts: TiltSeries, output_dir: Path, *, image_size_px: tuple[int, int]) -> list[Path]:
    """Write ``<name>.xf/.tlt/.xtilt`` (IMOD) and ``<name>.aln`` (AreTomo) for the aligned tilts of ``ts``."""
    views = [t for t in stack_order(ts.tilts) if not t.excluded and t.alignment is not None]
    alignments = [t.alignment for t in views if t.alignment is not None]
    spacing = series_pixel_spacing(ts)
    xf, tlt, xtilt = imod_from_alignment(alignments, pixel_spacing_angstrom=spacing)
    stem = output_dir / ts.name
    paths = [stem.with_suffix(".xf"), stem.with_suffix(".tlt"), stem.with_suffix(".xtilt"), stem.with_suffix(".aln")]
    write_xf(paths[0], xf)
    write_tilt_angles(paths[1], tlt)
    write_xtilt(paths[2], xtilt)
    everything = stack_order(ts.tilts)
    position = {id(t): k for k, t in enumerate(everything)}
    removed = {
        position[id(t)]: t.acquisition.nominal_tilt_angle_deg for t in everything if id(t) not in {id(v) for v in views}
    }
    aln = aretomo_from_alignment(
        [replace(a, x_tilt_deg=0.0) for a in alignments],
        pixel_spacing_angstrom=spacing,
        image_size_px=image_size_px,
        sections=[position[id(t)] for t in views],
        removed_sections=removed,
    )
    write_aln(paths[3], aln)
    return paths


def read_alignment_files(ts: TiltSeries, folder: Path) -> TiltSeries:
    """``ts`` with the alignment found in ``folder`` (IMOD ``<name>.xf`` + ``.tlt``, or AreTomo ``<name>.aln``).

    Raises
    ------
    InputError
        If the folder holds neither for this series, or their rows do not match its tilts.
    """
    spacing = series_pixel_spacing(ts)
    stem = Path(folder) / ts.name
    if stem.with_suffix(".xf").is_file():
        xf = read_xf(stem.with_suffix(".xf"))
        tlt_path = stem.with_suffix(".tlt")
        if not tlt_path.is_file():
            raise InputError(tlt_path, "is missing beside the .xf.", "give the .tlt tiltalign wrote.")
        xtilt_path = stem.with_suffix(".xtilt")
        x_tilts = read_xtilt(xtilt_path) if xtilt_path.is_file() else None
        poses = alignment_from_imod(xf, read_tilt_angles(tlt_path), pixel_spacing_angstrom=spacing, x_tilts_deg=x_tilts)
        views = views_in_file_order(ts.tilts, n_rows=len(poses), path=stem.with_suffix(".xf"))
    elif stem.with_suffix(".aln").is_file():
        aln = read_aln(stem.with_suffix(".aln"))
        poses = alignment_from_aretomo(aln, pixel_spacing_angstrom=spacing)
        views = tilts_of_aln_rows(ts.tilts, aln, path=stem.with_suffix(".aln"))
    else:
        raise InputError(folder, f"holds no {ts.name}.xf or {ts.name}.aln.", "name the files after the tilt series.")
    by_tilt = {id(t): pose for t, pose in zip(views, poses, strict=True)}
    tilts = tuple(replace(t, alignment=by_tilt.get(id(t))) for t in ts.tilts)
    return replace(ts, tilts=tilts)
