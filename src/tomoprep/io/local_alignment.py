"""Local alignment of a tilt series (patch tracking), as a STAR file: one row per patch and tilt.

``data_local_alignment`` columns (Å and degrees; the patch position in the specimen frame of the series'
global alignment, from the specimen centre, z along the slab normal; the local shift in the tilt image, in
RELION's sense: where the patch lands relative to where the global alignment puts it)::

    tpAcquisitionIndex          tilt (0-based, acquisition order), as in the tilt-series STAR
    rlnTomoNominalStageTiltAngle
    tpPatchIndex                0-based
    tpPatchXAngst tpPatchYAngst tpPatchZAngst
    tpLocalShiftXAngst tpLocalShiftYAngst
    tpPatchScore                normalised correlation with the tilt's leave-one-out reprojection
    tpPatchMeasured             1, or 0 where the patch left the image (its shift is then 0)

RELION 5 has no field for local alignment; this file is what tomoprep's own reconstruction and the exports read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tomoprep.errors import InputError
from tomoprep.io.star import read_star, write_star

BLOCK = "local_alignment"
COLUMNS = (
    "tpAcquisitionIndex",
    "rlnTomoNominalStageTiltAngle",
    "tpPatchIndex",
    "tpPatchXAngst",
    "tpPatchYAngst",
    "tpPatchZAngst",
    "tpLocalShiftXAngst",
    "tpLocalShiftYAngst",
    "tpPatchScore",
    "tpPatchMeasured",
)


@dataclass(frozen=True)
class LocalAlignment:
    """Patches and their local shifts, tilts in the given order.

    Attributes
    ----------
    acquisition_indices
        ``(n,)`` the tilts' acquisition indices.
    tilts_deg
        ``(n,)`` their nominal tilt angles.
    patches_angstrom
        ``(p, 3)`` patch positions ``(x, y, z)`` in the specimen frame.
    shifts_angstrom
        ``(n, p, 2)`` local shifts ``(x, y)``.
    scores
        ``(n, p)``.
    measured
        ``(n, p)`` booleans.
    """

    acquisition_indices: np.ndarray
    tilts_deg: np.ndarray
    patches_angstrom: np.ndarray
    shifts_angstrom: np.ndarray
    scores: np.ndarray
    measured: np.ndarray


def write_local_alignment(path: Path, local: LocalAlignment) -> None:
    """Write ``local`` as a STAR table (rows by tilt, then patch)."""
    n, p = local.scores.shape
    tilt, patch = np.repeat(np.arange(n), p), np.tile(np.arange(p), n)
    table = pd.DataFrame(
        {
            "tpAcquisitionIndex": local.acquisition_indices[tilt].astype(int),
            "rlnTomoNominalStageTiltAngle": local.tilts_deg[tilt],
            "tpPatchIndex": patch,
            "tpPatchXAngst": local.patches_angstrom[patch, 0],
            "tpPatchYAngst": local.patches_angstrom[patch, 1],
            "tpPatchZAngst": local.patches_angstrom[patch, 2],
            "tpLocalShiftXAngst": local.shifts_angstrom[tilt, patch, 0],
            "tpLocalShiftYAngst": local.shifts_angstrom[tilt, patch, 1],
            "tpPatchScore": local.scores[tilt, patch],
            "tpPatchMeasured": local.measured[tilt, patch].astype(int),
        }
    )
    write_star(path, {BLOCK: table})


def read_local_alignment(path: Path) -> LocalAlignment:
    """Read a file written by :func:`write_local_alignment`.

    Raises
    ------
    InputError
        If the block or a column is missing, or the rows are not every patch of every tilt.
    """
    blocks = read_star(path)
    if BLOCK not in blocks:
        raise InputError(path, f"has no data_{BLOCK} block.", "give a local alignment written by tomoprep align.")
    table = blocks[BLOCK]
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise InputError(path, f"lacks the columns {', '.join(missing)}.", "re-run tomoprep align --patch-tracking.")
    tilts = list(dict.fromkeys(table["tpAcquisitionIndex"].astype(int)))
    patches = sorted(set(table["tpPatchIndex"].astype(int)))
    n, p = len(tilts), len(patches)
    if len(table) != n * p or patches != list(range(p)):
        raise InputError(path, f"has {len(table)} rows, not {p} patches for each of {n} tilts.", "re-write it.")
    order = {t: k for k, t in enumerate(tilts)}
    table = table.assign(tilt_order=table["tpAcquisitionIndex"].astype(int).map(order))
    table = table.sort_values(["tilt_order", "tpPatchIndex"], kind="stable")
    first = table[table["tpAcquisitionIndex"] == tilts[0]]
    return LocalAlignment(
        acquisition_indices=np.array(tilts),
        tilts_deg=table["rlnTomoNominalStageTiltAngle"].to_numpy(float).reshape(n, p)[:, 0],
        patches_angstrom=first[["tpPatchXAngst", "tpPatchYAngst", "tpPatchZAngst"]].to_numpy(float),
        shifts_angstrom=table[["tpLocalShiftXAngst", "tpLocalShiftYAngst"]].to_numpy(float).reshape(n, p, 2),
        scores=table["tpPatchScore"].to_numpy(float).reshape(n, p),
        measured=table["tpPatchMeasured"].to_numpy(int).reshape(n, p).astype(bool),
    )
