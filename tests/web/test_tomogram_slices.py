"""Slices of a tomogram for the viewer: the right voxels, the right way up, one grey scale per volume."""

from __future__ import annotations

import io
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from matplotlib.image import imread

from tomoprep.web.tomograms import slice_png, volume_shape

SHAPE = (12, 40, 56)  # z, y, x
MARK = (3, 30, 10)  # a bright voxel: z, y, x


def _volume(tmp_path: Path) -> Path:
    data = np.random.default_rng(0).normal(0.0, 0.1, SHAPE).astype(np.float32)
    data[MARK] = 50.0
    path = tmp_path / "tomogram.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
    return path


def _grey(png: bytes) -> np.ndarray:
    return imread(io.BytesIO(png))[..., 0]


@pytest.mark.parametrize(
    ("axis", "index", "shape", "where"),
    [
        # y up (row 0 at the top shows the last y), as IMOD's 3dmod shows slices
        ("xy", MARK[0], (SHAPE[1], SHAPE[2]), (SHAPE[1] - 1 - MARK[1], MARK[2])),
        ("xz", MARK[1], (SHAPE[0], SHAPE[2]), (SHAPE[0] - 1 - MARK[0], MARK[2])),
        ("yz", MARK[2], (SHAPE[1], SHAPE[0]), (SHAPE[1] - 1 - MARK[1], MARK[0])),
    ],
)
def test_a_slice_shows_its_voxels_the_right_way_up(tmp_path: Path, axis: str, index: int, shape, where) -> None:
    grey = _grey(slice_png(_volume(tmp_path), axis=axis, index=index, low=0.0, high=100.0))
    assert grey.shape == shape
    assert np.unravel_index(np.argmax(grey), grey.shape) == where  # the mark, the only voxel at the top: white
    assert grey[where] == 1.0 and np.sort(grey.ravel())[-2] < 0.1


def test_every_slice_of_a_volume_has_the_same_grey_scale_and_bad_requests_are_refused(tmp_path: Path) -> None:
    path = _volume(tmp_path)
    assert volume_shape(path) == SHAPE
    middle = _grey(slice_png(path, axis="xy", index=None))  # the middle slice: no mark, noise only
    assert 0.2 < middle.mean() < 0.8  # the noise spans the grey scale the volume's percentiles give
    low_contrast = _grey(slice_png(path, axis="xy", index=None, low=0.0, high=100.0))
    assert low_contrast.std() < middle.std()  # the mark at 50 sets the top: the noise is squeezed into dark greys
    for bad in ({"axis": "xx", "index": 0}, {"axis": "xy", "index": SHAPE[0]}, {"axis": "xy", "index": 0, "low": 60,
                                                                              "high": 40}):  # fmt: skip
        with pytest.raises(ValueError):
            slice_png(path, **bad)
