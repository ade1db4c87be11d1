"""Export tilt series as a folder RELION 5 uses as its project directory, as it is.

```
OUT/tomograms.star             data_global: one row per tilt series (what RELION 5's Tomograms job writes)
OUT/optimisation_set.star      rlnTomoTomogramsFile (+ rlnTomoParticlesFile with particles)
OUT/particles.star             with coordinates: data_optics + data_particles (:mod:`.particles`)
OUT/tilt_series/<name>.star    data_<name>: one row per kept tilt (:mod:`.relion5_tables`)
OUT/<name>/images/...          tilt images (or the stack, as <name>.mrcs), odd/even sums: links or copies
OUT/<name>/movies/...          the raw movies (always links: RELION's motion correction reads them)
OUT/<name>/tomograms/...       the finest tomogram, its halves and denoised copy: links or copies
```

Every path in the STAR files is relative to OUT. ``rlnTomoSizeX/Y/Z`` are in tilt-series pixels (a bin-1
tomogram): the primary tomogram's size times its binning, or without a tomogram the tilt images' width and
height and the specimen thickness (rounded up to an even number of pixels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from tomoprep.errors import InputError
from tomoprep.export.files import FilePlacer
from tomoprep.export.relion5_tables import Placer, kept_tilts, tilt_rows
from tomoprep.io.tilt_series_star import series_optics_fields
from tomoprep.model import TiltImage, TiltSeries

TOMOGRAMS_FILE = "tomograms.star"
OPTIMISATION_SET_FILE = "optimisation_set.star"
PARTICLES_FILE = "particles.star"
SERIES_FOLDER = "tilt_series"
#: Global-table labels of the primary tomogram's files and the :class:`Tomogram` fields that hold them.
TOMOGRAM_FILES = {
    "rlnTomoReconstructedTomogram": "path",
    "rlnTomoReconstructedTomogramHalf1": "half1_path",
    "rlnTomoReconstructedTomogramHalf2": "half2_path",
    "rlnTomoReconstructedTomogramDenoised": "denoised_path",
}


@dataclass(frozen=True)
class ExportedSeries:
    """One series as exported: its global row (label -> value) and the notes for the log."""

    global_row: dict[str, object]
    notes: tuple[str, ...]


def series_star_file(name: str) -> str:
    """Where the per-series STAR of ``name`` lies, relative to the export folder."""
    return f"{SERIES_FOLDER}/{name}.star"


def export_series(
    ts: TiltSeries,
    out: Path,
    *,
    copy: bool = False,
    thickness_angstrom: float | None = None,
    moves_with: Path | None = None,
) -> ExportedSeries:
    """Write ``ts``'s per-series STAR and place its files under ``out``; return its global row.

    Parameters
    ----------
    ts
        The series, with tilt images (alignment and CTF where measured; nominal values fill in otherwise).
    out
        The export folder.
    copy
        Copy images and tomograms instead of linking them (movies are always linked).
    thickness_angstrom
        Depth of the volume RELION reconstructs when the series has no tomogram, Å; default: the specimen
        thickness the alignment measured.
    moves_with
        The project folder: links from an export folder inside it to its files are relative
        (:class:`~tomoprep.export.files.FilePlacer`), so the project can be moved with its export.

    Raises
    ------
    InputError
        If the series has no tilt images, a kept tilt lacks what RELION needs, a file is missing, or the depth
        is unknown for a series without a tomogram.
    """
    import pandas as pd

    from tomoprep.io.star import write_star

    spacing = _tilt_series_spacing(ts)
    placer = FilePlacer(out, copy=copy, moves_with=moves_with)
    place = _placing(placer)
    table = tilt_rows(ts, place)
    write_star(Path(out) / series_star_file(ts.name), {ts.name: pd.DataFrame(table.rows)})
    row: dict[str, object] = {
        "rlnTomoName": ts.name,
        **series_optics_fields(ts),
        "rlnTomoTiltSeriesPixelSize": spacing,
        "rlnTomoTiltSeriesStarFile": series_star_file(ts.name),
    }
    row.update(_volume_fields(ts, place, spacing=spacing, thickness_angstrom=thickness_angstrom))
    return ExportedSeries(row, table.notes)


def _placing(placer: FilePlacer) -> Placer:
    def place(source: Path, folder: str, *, what: str, rename: str | None = None) -> str:
        # Movies are large and only RELION's motion correction reads them: linked even when images are copied.
        return placer.place(source, folder, what=what, rename=rename, copy=False if what == "movie" else None)

    return place


def _tilt_series_spacing(ts: TiltSeries) -> float:
    if ts.tilt_series_pixel_spacing_angstrom is None:
        raise InputError(
            None,
            f"tilt series {ts.name!r} has no tilt images (only movies), which RELION's tomogram set needs.",
            "run tomoprep motioncorr first, or export a run that holds tilt images.",
        )
    return ts.tilt_series_pixel_spacing_angstrom


def _volume_fields(
    ts: TiltSeries,
    place: Placer,
    *,
    spacing: float,
    thickness_angstrom: float | None,
) -> dict[str, object]:
    tomogram = ts.primary_tomogram
    if tomogram is None:
        size_x, size_y = image_size_px(kept_tilts(ts)[0])
        thickness = thickness_angstrom if thickness_angstrom is not None else ts.specimen_thickness_angstrom
        if thickness is None:
            raise InputError(
                None,
                f"tilt series {ts.name!r} has neither a tomogram nor a measured specimen thickness, so the depth of "
                "its volume (rlnTomoSizeZ) is unknown.",
                "align the series first (it measures the thickness), or give --tomogram-thickness-angstrom.",
            )
        size_z = 2 * math.ceil(thickness / spacing / 2)
        return {"rlnTomoSizeX": size_x, "rlnTomoSizeY": size_y, "rlnTomoSizeZ": size_z}
    fields: dict[str, object] = {"rlnTomoTomogramBinning": tomogram.binning}
    for axis, voxels in zip("XYZ", tomogram.size_xyz, strict=True):
        fields[f"rlnTomoSize{axis}"] = round(voxels * tomogram.binning)
    for label, attribute in TOMOGRAM_FILES.items():
        path = getattr(tomogram, attribute)
        if path is not None:
            fields[label] = place(path, f"{ts.name}/tomograms", what=label.removeprefix("rln"))
    return fields


def image_size_px(tilt: TiltImage) -> tuple[int, int]:
    """``(width, height)`` of a tilt's image in pixels, from its MRC header."""
    from tomoprep.io.mrc import read_mrc_header

    acquisition = tilt.acquisition
    path = acquisition.stack_path
    if path is None and tilt.motion is not None:
        path = tilt.motion.micrograph_path
    if path is None:
        raise InputError(None, "a tilt without an image has no size.", "export a run that holds tilt images.")
    shape = read_mrc_header(Path(path)).shape
    return int(shape[-1]), int(shape[-2])


def write_tomogram_set(out: Path, rows: list[dict[str, object]]) -> tuple[Path, tuple[str, ...]]:
    """Write ``tomograms.star`` (``data_global``) from the series' global rows; return it and notes.

    Tomogram columns are kept only when every series has them (a column some rows lack cannot be written).
    """
    import pandas as pd

    from tomoprep.io.star import write_star

    common = set.intersection(*(set(r) for r in rows)) if rows else set()
    order = [label for label in rows[0] if label in common] if rows else []
    dropped = sorted({label for r in rows for label in r} - common)
    notes: tuple[str, ...] = ()
    if dropped:
        lacking = [str(r["rlnTomoName"]) for r in rows if not set(dropped) <= set(r)]
        notes = (f"{', '.join(lacking)} lack {', '.join(dropped)}; those columns are left out of "
                 f"{TOMOGRAMS_FILE} for every series.",)  # fmt: skip
    path = Path(out) / TOMOGRAMS_FILE
    write_star(path, {"global": pd.DataFrame([{k: r[k] for k in order} for r in rows])})
    return path, notes


def write_optimisation_set(out: Path, *, particles: bool) -> Path:
    """Write ``optimisation_set.star``: the tomogram set, and the particles when they were exported."""
    import pandas as pd

    from tomoprep.io.star import write_star

    row = {"rlnTomoTomogramsFile": TOMOGRAMS_FILE}
    if particles:
        row = {"rlnTomoParticlesFile": PARTICLES_FILE, **row}
    path = Path(out) / OPTIMISATION_SET_FILE
    write_star(path, {"optimisation_set": pd.DataFrame([row])})
    return path
