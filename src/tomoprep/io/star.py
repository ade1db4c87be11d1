"""STAR files (RELION's format) through the ``starfile`` package, with atomic writes and clear errors."""

from __future__ import annotations

import os
import shlex
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
    "rlnTomoReconstructedTomogramDenoised",
    "tpTomogramCtfCorrection",
    "rlnTomoParticlesFile",
    "rlnTomoTomogramsFile",
    "tpMdocFiles",
    "tpGainReference",
    "tpGainFlip",
    "tpDateTime",
    "tpExclusionReason",
    "tpLocalAlignmentFile",
    "tpAxisScoresFile",
    "tpAxisSearch",
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
    if any(frame[label].isna().any() for frame in out.values() for label in STRING_LABELS if label in frame):
        _restore_text(path, out)
    return out


def _restore_text(path: Path, blocks: dict[str, pd.DataFrame]) -> None:
    """Put back the words of text columns that starfile read as missing numbers (``nan``, ``NaN``, ``<NA>``):
    a tilt series may be called ``nan``, and dropping it would lose the series."""
    block = ""
    labels: list[str] = []
    rows: list[list[str]] = []
    for line in [*path.read_text(errors="replace").splitlines(), "data_"]:
        text = line.strip()
        if text.startswith("data_") or text.startswith("loop_"):
            _put_back(blocks.get(block), labels, rows)
            labels, rows = [], []
            block = text[5:] if text.startswith("data_") else block
        elif text.startswith("_"):
            labels.append(text.split()[0][1:])
        elif text and not text.startswith("#") and labels:
            rows.append(shlex.split(text))


def _put_back(frame: pd.DataFrame | None, labels: list[str], rows: list[list[str]]) -> None:
    if frame is None or len(rows) != len(frame) or any(len(r) != len(labels) for r in rows):
        return  # not a loop, or not the table starfile read: leave it as read
    for k, label in enumerate(labels):
        if label in STRING_LABELS and label in frame and frame[label].isna().any():
            frame[label] = [r[k] for r in rows]


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
