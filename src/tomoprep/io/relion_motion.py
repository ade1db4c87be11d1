"""RELION's per-movie motion STAR file (``data_general``, ``data_global_shift``, ``data_local_shift``,
``data_hot_pixels``).

Shifts are in movie pixels, one row per frame numbered from 1, with RELION's sign: the shift that aligns frame
``f``, i.e. minus the displacement of its content (a frame whose specimen moved by ``(dx, dy)`` is listed as
``(-dx, -dy)``), as RELION's motion correction writes them for polishing (checked against RELION 3.1's output
on the same simulated movie in ``benchmarks/motioncorr.py``). ``data_local_shift`` lists, per frame and patch centre,
the total shift there (global plus local model), with the same sign.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tomoprep.io.star import read_star, write_star


@dataclass(frozen=True)
class MovieMotion:
    """Motion of one movie and the facts RELION keeps beside it."""

    movie_name: str
    image_size_xyz: tuple[int, int, int]
    shifts_xy_px: np.ndarray  # (n_frames, 2): x, y in movie pixels, RELION's sign (minus the content motion)
    original_pixel_spacing_angstrom: float
    binning: float
    dose_per_frame_e_per_angstrom2: float
    pre_exposure_e_per_angstrom2: float
    voltage_kv: float
    hot_pixels_xy: np.ndarray | None = None  # (n, 2) x, y
    gain_name: str | None = None
    local_shifts: np.ndarray | None = None  # (m, 5): frame (from 1), x, y, shift x, shift y (total, px)


def write_motion_star(path: Path, motion: MovieMotion) -> None:
    """Write ``motion`` as RELION 5 does (``# version 50001`` blocks)."""
    general = {
        "rlnImageSizeX": motion.image_size_xyz[0],
        "rlnImageSizeY": motion.image_size_xyz[1],
        "rlnImageSizeZ": motion.image_size_xyz[2],
        "rlnMicrographMovieName": motion.movie_name,
        "rlnMicrographGainName": motion.gain_name or "None",
        "rlnMicrographBinning": motion.binning,
        "rlnMicrographOriginalPixelSize": motion.original_pixel_spacing_angstrom,
        "rlnMicrographDoseRate": motion.dose_per_frame_e_per_angstrom2,
        "rlnMicrographPreExposure": motion.pre_exposure_e_per_angstrom2,
        "rlnVoltage": motion.voltage_kv,
        "rlnMicrographStartFrame": 1,
        "rlnMotionModelVersion": 0,
    }
    shifts = np.asarray(motion.shifts_xy_px, dtype=float)
    blocks = {
        "general": pd.DataFrame([general]),
        "global_shift": pd.DataFrame(
            {
                "rlnMicrographFrameNumber": np.arange(1, len(shifts) + 1),
                "rlnMicrographShiftX": shifts[:, 0],
                "rlnMicrographShiftY": shifts[:, 1],
            }
        ),
    }
    if motion.local_shifts is not None and len(motion.local_shifts):
        local = np.asarray(motion.local_shifts, dtype=float)
        blocks["local_shift"] = pd.DataFrame(
            {
                "rlnMicrographFrameNumber": local[:, 0].astype(int),
                "rlnCoordinateX": local[:, 1],
                "rlnCoordinateY": local[:, 2],
                "rlnMicrographShiftX": local[:, 3],
                "rlnMicrographShiftY": local[:, 4],
            }
        )
    if motion.hot_pixels_xy is not None and len(motion.hot_pixels_xy):
        hot = np.asarray(motion.hot_pixels_xy, dtype=float)
        blocks["hot_pixels"] = pd.DataFrame({"rlnCoordinateX": hot[:, 0], "rlnCoordinateY": hot[:, 1]})
    write_star(path, blocks)


def read_motion_shifts(path: Path) -> np.ndarray:
    """The ``(n_frames, 2)`` x, y shifts (unbinned pixels) of a RELION motion STAR file."""
    table = read_star(path)["global_shift"]
    return table[["rlnMicrographShiftX", "rlnMicrographShiftY"]].to_numpy(dtype=float)


def read_local_shifts(path: Path) -> np.ndarray | None:
    """``(m, 5)`` frame, x, y, shift x, shift y of the ``data_local_shift`` block, or ``None`` without one."""
    blocks = read_star(path)
    if "local_shift" not in blocks:
        return None
    labels = [
        "rlnMicrographFrameNumber",
        "rlnCoordinateX",
        "rlnCoordinateY",
        "rlnMicrographShiftX",
        "rlnMicrographShiftY",
    ]
    return blocks["local_shift"][labels].to_numpy(dtype=float)


def frame_numbers(path: Path) -> Sequence[int]:
    """Frame numbers (from 1) listed in a RELION motion STAR file."""
    return [int(n) for n in read_star(path)["global_shift"]["rlnMicrographFrameNumber"]]
