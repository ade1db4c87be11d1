"""Small real movie files for import tests: tiny MRC stacks named as an mdoc's SubFramePaths."""

from __future__ import annotations

import re
from pathlib import Path

import mrcfile
import numpy as np


def sub_frame_names(mdoc_text: str) -> list[str]:
    """The file names of every SubFramePath in an mdoc (Windows or POSIX separators)."""
    paths = re.findall(r"^SubFramePath = (.+?)\s*$", mdoc_text, flags=re.MULTILINE)
    return [p.replace("\\", "/").rsplit("/", 1)[-1] for p in paths]


def write_movie(path: Path, *, n_frames: int = 8, shape: tuple[int, int] = (8, 8), voxel_size: float = 0.0) -> Path:
    """A real MRC movie of ``n_frames`` small Poisson frames."""
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(rng.poisson(1.0, size=(n_frames, *shape)).astype(np.int8))
        mrc.voxel_size = voxel_size
    return path


def write_movies_for(mdoc_text: str, folder: Path, *, n_frames: int = 8) -> list[Path]:
    """One tiny MRC movie per SubFramePath of ``mdoc_text`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return [write_movie(folder / name, n_frames=n_frames) for name in sub_frame_names(mdoc_text)]
