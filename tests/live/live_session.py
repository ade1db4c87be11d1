"""Small real sessions for the watch's tests: SerialEM tilt-series mdocs (written by the simulator's mdoc writer)
naming tiny MRC movies, written into a folder as a microscope would."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import mrcfile
import numpy as np

from tomoprep.simulate.mdoc_writer import MdocHeader, MdocTiltRecord, movie_name, windows_frame_path, write_mdoc

ANGLES_DEG = (0.0, 3.0, -3.0)
SHAPE_YX = (8, 8)


def movie_names(series: str, angles_deg: tuple[float, ...] = ANGLES_DEG) -> list[str]:
    """The movie file names of a series, in acquisition order."""
    return [movie_name(series, k, angle, ".mrc") for k, angle in enumerate(angles_deg)]


def write_mdoc_of(folder: Path, series: str, angles_deg: tuple[float, ...] = ANGLES_DEG) -> Path:
    """The tilt-series mdoc ``<series>.mrc.mdoc`` in ``folder``, one section per angle, naming its movies."""
    start = datetime(2024, 5, 14, 9, 30)
    header = MdocHeader(f"{series}.mrc", (SHAPE_YX[1], SHAPE_YX[0]), 4.0, 300.0, 85.0, start)
    tilts = [
        MdocTiltRecord(k, angle, 3.0, 3.0 * k, -3.5, -3.5, 0.3, start + timedelta(seconds=20 * k),
                       sub_frame_path=windows_frame_path(name, flavour="serialem"), num_sub_frames=2)
        for k, (angle, name) in enumerate(zip(angles_deg, movie_names(series, angles_deg), strict=True))
    ]  # fmt: skip
    path = folder / f"{series}.mrc.mdoc"
    write_mdoc(path, header, tilts, flavour="serialem")
    return path


def write_movie(path: Path, *, seed: int = 0) -> Path:
    """A real MRC movie of two small Poisson frames."""
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.random.default_rng(seed).poisson(1.0, size=(2, *SHAPE_YX)).astype(np.int8))
    return path


def write_series(folder: Path, series: str, *, leave_out: int = 0) -> list[Path]:
    """A series' mdoc and its movies in ``folder``, the last ``leave_out`` movies not written; returns the movies."""
    folder.mkdir(parents=True, exist_ok=True)
    write_mdoc_of(folder, series)
    names = movie_names(series)
    return [write_movie(folder / name, seed=k) for k, name in enumerate(names[: len(names) - leave_out])]
