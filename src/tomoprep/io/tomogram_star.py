"""A tilt series' tomograms in STAR: RELION 5's fields of the finest one in the set row, every one in a table.

RELION 5's tomogram set names one tomogram per tilt series in ``data_global``: ``rlnTomoTomogramBinning``,
``rlnTomoSizeX/Y/Z`` (the size of a bin-1 tomogram, in tilt-series pixels: the binned size times the binning),
``rlnTomoReconstructedTomogram`` and its halves and denoised copy. tomoprep writes them for the finest tomogram
(``TiltSeries.primary_tomogram``) and keeps every tomogram (one per binning) in its own table ``data_tp_tomograms``
of the same file, one row per tomogram, keyed by ``rlnTomoName``: binning, voxel size, size in voxels, the four
paths and the CTF correction. Reading takes that table, so the tomograms read back exactly as written; a set
written by RELION (no table) gives its one tomogram from the set row.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from tomoprep.model.tilt_series import TiltSeries, Tomogram

if TYPE_CHECKING:
    import pandas as pd

#: The block of the set STAR that lists every tomogram.
TOMOGRAM_TABLE = "tp_tomograms"
NAME_LABEL = "rlnTomoName"
BINNING_LABEL = "rlnTomoTomogramBinning"
SIZE_LABELS = ("rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ")
VOXEL_SIZE_LABELS = ("tpTomoVoxelsX", "tpTomoVoxelsY", "tpTomoVoxelsZ")
VOXEL_SPACING_LABEL = "tpTomogramPixelSize"
CTF_CORRECTION_LABEL = "tpTomogramCtfCorrection"
#: RELION's path labels and the :class:`Tomogram` fields they hold.
PATH_LABELS = {
    "rlnTomoReconstructedTomogram": "path",
    "rlnTomoReconstructedTomogramHalf1": "half1_path",
    "rlnTomoReconstructedTomogramHalf2": "half2_path",
    "rlnTomoReconstructedTomogramDenoised": "denoised_path",
}
NONE_TEXT = "None"


def _text(path: Path | None) -> str:
    return NONE_TEXT if path is None else str(path)


def _path(value: object) -> Path | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return None if text in ("", NONE_TEXT, "nan", "<NA>") else Path(text)


def _paths(tomogram: Tomogram) -> dict[str, str]:
    return {label: _text(getattr(tomogram, field)) for label, field in PATH_LABELS.items()}


def primary_fields(ts: TiltSeries) -> dict[str, object]:
    """RELION 5's tomogram fields of the set row: those of ``ts.primary_tomogram``; none when it has none."""
    tomogram = ts.primary_tomogram
    if tomogram is None:
        return {}
    unbinned = [round(n * tomogram.binning) for n in tomogram.size_xyz]
    return {BINNING_LABEL: tomogram.binning, **dict(zip(SIZE_LABELS, unbinned, strict=True)), **_paths(tomogram)}


def tomogram_rows(ts: TiltSeries) -> list[dict[str, object]]:
    """The rows of :data:`TOMOGRAM_TABLE` for ``ts``: one per tomogram, finest first."""
    rows = []
    for tomogram in sorted(ts.tomograms, key=lambda t: t.binning):
        rows.append({
            NAME_LABEL: ts.name, BINNING_LABEL: tomogram.binning, VOXEL_SPACING_LABEL: tomogram.voxel_spacing_angstrom,
            **dict(zip(VOXEL_SIZE_LABELS, tomogram.size_xyz, strict=True)), **_paths(tomogram),
            CTF_CORRECTION_LABEL: tomogram.ctf_correction,
        })  # fmt: skip
    return rows


def _tomogram_from_row(row: Any, *, voxels_xyz: tuple[int, int, int], voxel_spacing_angstrom: float) -> Tomogram:
    paths = {field: _path(row.get(label)) for label, field in PATH_LABELS.items()}
    return Tomogram(
        path=cast(Path, paths.pop("path")), binning=float(row[BINNING_LABEL]),
        voxel_spacing_angstrom=voxel_spacing_angstrom, size_xyz=voxels_xyz,
        ctf_correction=str(row.get(CTF_CORRECTION_LABEL, "none")), **paths,
    )  # fmt: skip


def tomograms_from_star(
    set_row: pd.Series, table: pd.DataFrame | None, *, tilt_series_pixel_spacing_angstrom: float | None
) -> tuple[Tomogram, ...]:
    """The tomograms of the series of ``set_row``: its rows of ``table`` (:data:`TOMOGRAM_TABLE`), or, without
    any, the one of RELION's set-row fields (its size from the bin-1 size over the binning)."""
    name = str(set_row[NAME_LABEL])
    if table is not None and len(table):
        rows = table[table[NAME_LABEL].astype(str) == name]
        return tuple(
            _tomogram_from_row(row, voxels_xyz=cast(Any, tuple(int(row[label]) for label in VOXEL_SIZE_LABELS)),
                               voxel_spacing_angstrom=float(row[VOXEL_SPACING_LABEL]))
            for _, row in rows.iterrows()
        )  # fmt: skip
    if _path(set_row.get("rlnTomoReconstructedTomogram")) is None or tilt_series_pixel_spacing_angstrom is None:
        return ()
    binning = float(set_row[BINNING_LABEL])
    voxels = cast(Any, tuple(round(float(set_row[label]) / binning) for label in SIZE_LABELS))
    return (_tomogram_from_row(set_row, voxels_xyz=voxels,
                               voxel_spacing_angstrom=tilt_series_pixel_spacing_angstrom * binning),)  # fmt: skip
