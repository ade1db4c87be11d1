"""STAR files (RELION's format) through the ``starfile`` package, with atomic writes and clear errors."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import starfile

from tomoprep.errors import InputError

#: Columns that hold names or paths: always read as text, so that a tilt series called ``01`` stays ``01``.
STRING_LABELS = [
    "rlnTomoName",
    "rlnTomoTiltSeriesStarFile",
    "rlnOpticsGroupName",
    "rlnMicrographMovieName",
    "rlnMicrographName",
    "rlnMicrographNameEven",
    "rlnMicrographNameOdd",
    "rlnMicrographMetadata",
    "rlnCtfPowerSpectrum",
    "rlnCtfImage",
    "rlnEtomoDirectiveFile",
    "rlnTomoReconstructedTomogram",
    "rlnTomoReconstructedTomogramHalf1",
    "rlnTomoReconstructedTomogramHalf2",
    "tpMdocFiles",
    "tpGainReference",
    "tpGainFlip",
    "tpDateTime",
    "tpExclusionReason",
    "tpLocalAlignmentFile",
]


def read_star(path: Path) -> dict[str, pd.DataFrame]:
    """Read every data block of a STAR file.

    Returns
    -------
    dict
        Block name (without ``data_``) to a DataFrame; a key/value block becomes a one-row frame.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "STAR file does not exist.", "check the path or re-run the step that writes it.")
    try:
        blocks = starfile.read(path, always_dict=True, parse_as_string=STRING_LABELS)
    except Exception as exc:  # starfile raises many kinds on malformed text
        raise InputError(path, f"cannot be parsed as a STAR file ({exc}).", "check the file is complete.") from exc
    out: dict[str, pd.DataFrame] = {}
    for name, block in blocks.items():
        out[name] = block if isinstance(block, pd.DataFrame) else pd.DataFrame([block])
    return out


def write_star(path: Path, blocks: Mapping[str, pd.DataFrame]) -> None:
    """Write data blocks to ``path`` through a temporary file and a rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        # An absent number is written ``nan``, which C's number parsing (RELION's) reads as not-a-number;
        # starfile's default ``<NA>`` is not a number to it.
        starfile.write(dict(blocks), tmp_name, float_format="%.6f", sep="\t", na_rep="nan")
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
