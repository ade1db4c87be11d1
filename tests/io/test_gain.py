"""Gain references: orientation conventions (checked against RELION), file formats, application."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile

from tomoprep.errors import ImageFileError, InputError
from tomoprep.io.gain import (
    apply_gain,
    gain_orientation_from_motioncor2,
    gain_orientation_from_relion,
    orient_gain,
    read_gain,
)
from tomoprep.io.movies import read_movie
from tomoprep.simulate.eer import write_eer

#: An asymmetric 2x3 image, row 0 first (MRC row order: the bottom row as IMOD displays it).
A = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)


@pytest.mark.parametrize(
    ("rotation", "flip", "expected"),
    [
        (0, "none", [[1, 2, 3], [4, 5, 6]]),
        # 90: clockwise with row 0 on top (relion_display), counter-clockwise in IMOD's y-up display.
        (90, "none", [[4, 1], [5, 2], [6, 3]]),
        (180, "none", [[6, 5, 4], [3, 2, 1]]),
        (270, "none", [[3, 6], [2, 5], [1, 4]]),
        (0, "y", [[4, 5, 6], [1, 2, 3]]),  # upside down
        (0, "x", [[3, 2, 1], [6, 5, 4]]),  # left to right
        (90, "y", [[6, 3], [5, 2], [4, 1]]),  # rotate first, then flip
        (90, "x", [[1, 4], [2, 5], [3, 6]]),
    ],
)
def test_orientation_conventions(rotation: int, flip: str, expected: list[list[int]]) -> None:
    assert np.array_equal(orient_gain(A, rotation_deg=rotation, flip=flip), np.array(expected))  # type: ignore[arg-type]


def test_rotation_90_is_ccw_in_imod_display_and_cw_in_relion_display() -> None:
    # np.rot90(picture, k=1) turns a picture printed top row first counter-clockwise.
    rotated = orient_gain(A, rotation_deg=90)
    imod_picture = A[::-1]  # IMOD shows row 0 at the bottom
    assert np.array_equal(rotated[::-1], np.rot90(imod_picture, k=1))
    relion_picture = A  # relion_display shows row 0 at the top
    assert np.array_equal(rotated, np.rot90(relion_picture, k=-1))


@pytest.mark.parametrize(
    ("codes", "expected"),
    [((0, 0), (0, "none")), ((1, 0), (90, "none")), ((2, 1), (180, "y")), ((3, 2), (270, "x"))],
)
def test_relion_and_motioncor2_codes(codes: tuple[int, int], expected: tuple[int, str]) -> None:
    # RELION says "clockwise (in relion_display)", MotionCor2 "counter-clockwise": the same operation.
    assert gain_orientation_from_relion(*codes) == expected
    assert gain_orientation_from_motioncor2(*codes) == expected


@pytest.mark.parametrize("codes", [(4, 0), (-1, 0), (0, 3)])
def test_out_of_range_codes(codes: tuple[int, int]) -> None:
    with pytest.raises(InputError, match="out of range"):
        gain_orientation_from_relion(*codes)
    with pytest.raises(InputError, match="MotionCor2"):
        gain_orientation_from_motioncor2(*codes)


def test_bad_rotation_and_flip_values() -> None:
    with pytest.raises(InputError, match="45"):
        orient_gain(A, rotation_deg=45)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="'xy'"):
        orient_gain(A, flip="xy")  # type: ignore[arg-type]


@pytest.mark.skipif(shutil.which("relion_run_motioncorr") is None, reason="RELION is not installed")
def test_orientation_equals_relion(tmp_path: Path) -> None:
    """``relion_run_motioncorr`` writes the rotated/flipped gain it uses as ``<out>/gain.mrc``."""
    gain = np.arange(1, 61, dtype=np.float32).reshape(6, 10)
    with mrcfile.new(tmp_path / "gain.mrc") as mrc:
        mrc.set_data(gain)
    with mrcfile.new(tmp_path / "movie.mrcs") as mrc:  # never motion-corrected: its size differs
        mrc.set_data(np.ones((2, 4, 4), dtype=np.float32))
    for rot in range(4):
        for flip in range(3):
            if rot == flip == 0:
                continue  # RELION writes no gain then
            out = f"out_{rot}_{flip}/"
            command = ["relion_run_motioncorr", "--i", "movie.mrcs", "--o", out, "--use_own", "--angpix", "1"]
            command += [
                "--voltage",
                "300",
                "--gainref",
                "gain.mrc",
                "--gain_rot",
                str(rot),
                "--gain_flip",
                str(flip),
            ]
            subprocess.run(command, capture_output=True, cwd=tmp_path, timeout=60)
            relion = mrcfile.read(tmp_path / out / "gain.mrc")
            rotation, flip_axis = gain_orientation_from_relion(rot, flip)
            assert np.array_equal(read_gain(tmp_path / "gain.mrc", rotation_deg=rotation, flip=flip_axis), relion)


# --- files ---------------------------------------------------------------------------------------------


def test_mrc_gain(tmp_path: Path) -> None:
    path = tmp_path / "gain.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(A[np.newaxis])  # a 1-section volume is one image too
    gain = read_gain(path, rotation_deg=270, flip="x")
    assert gain.dtype == np.float32
    assert np.array_equal(gain, orient_gain(A, rotation_deg=270, flip="x"))


def test_tiff_gain_rows_are_reversed_like_tiff_movies(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "gain.tif", A)
    tifffile.imwrite(tmp_path / "movie.tif", A[np.newaxis], photometric="minisblack")
    assert np.array_equal(read_gain(tmp_path / "gain.tif"), A[::-1])
    assert np.array_equal(read_gain(tmp_path / "gain.tif"), read_movie(tmp_path / "movie.tif")[0])


def test_eer_gain_keeps_the_eer_row_order(tmp_path: Path) -> None:
    # Thermo's .gain is a TIFF in the row order of the EER frames; RELION un-flips it for the same reason.
    tifffile.imwrite(tmp_path / "Falcon.gain", A)
    assert np.array_equal(read_gain(tmp_path / "Falcon.gain"), A)


def test_dm4_gain_says_to_convert_it(tmp_path: Path) -> None:
    with pytest.raises(ImageFileError, match=r"dm2mrc gain\.dm4 gain\.mrc"):
        read_gain(tmp_path / "gain.dm4")


@pytest.mark.parametrize("name", ["gain.png", "missing.mrc"])
def test_unreadable_gain_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ImageFileError, match=re.escape(name)):
        read_gain(tmp_path / name)


@pytest.mark.parametrize("suffix", [".mrc", ".tif", ".gain"])
def test_truncated_gain(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"gain{suffix}"
    data = np.ones((64, 64), dtype=np.float32)
    if suffix == ".mrc":
        with mrcfile.new(path) as mrc:
            mrc.set_data(data)
    else:
        tifffile.imwrite(path, data)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageFileError, match=re.escape(cut.name)):
        read_gain(cut)


# --- applying ------------------------------------------------------------------------------------------


def test_apply_gain_multiplies_every_frame() -> None:
    frames = np.stack([np.full((2, 3), 2.0), np.full((2, 3), 3.0)])
    assert np.array_equal(apply_gain(frames, A), np.stack([2 * A, 3 * A]))
    assert apply_gain(frames, A).dtype == np.float32


def test_shape_mismatch_names_both_shapes_and_suggests_rotation() -> None:
    with pytest.raises(InputError, match=r"gain shape \(3, 2\) does not match frame shape \(2, 3\).*rotation_deg=90"):
        apply_gain(np.ones((4, 2, 3)), orient_gain(A, rotation_deg=90))


def test_shape_mismatch_suggests_eer_upsampling() -> None:
    with pytest.raises(InputError, match="eer_upsampling=2"):
        apply_gain(np.ones((4, 2, 3)), np.ones((4, 6)))
    with pytest.raises(InputError, match=r"\(5, 5\).*\(2, 3\)"):
        apply_gain(np.ones((4, 2, 3)), np.ones((5, 5)))


def test_4k_eer_gain_on_8k_renders(tmp_path: Path) -> None:
    # Each half-pixel takes its sensor pixel's gain, so 2x2 binning commutes with the gain.
    counts = (np.random.default_rng(4).random((10, 32, 32)) < 0.1).astype(np.uint8)
    write_eer(tmp_path / "m.eer", counts)
    gain = np.random.default_rng(5).uniform(0.5, 1.5, (32, 32)).astype(np.float32)
    at_1x = apply_gain(read_movie(tmp_path / "m.eer", eer_group_frames=5), gain)
    at_2x = apply_gain(read_movie(tmp_path / "m.eer", eer_group_frames=5, eer_upsampling=2), gain)
    assert np.allclose(at_2x.reshape(2, 32, 2, 32, 2).sum(axis=(2, 4)), at_1x, rtol=1e-6)
