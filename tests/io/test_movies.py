"""Reading TIFF, MRC and EER movies: exact values, EER grouping and upsampling, truncation, RELION parity."""

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
from tomoprep.io.eer_groups import eer_frames_per_group, eer_group_ranges
from tomoprep.io.movies import (
    EerUpsampling,
    iter_movie_counts,
    iter_movie_groups,
    movie_format,
    read_movie,
    read_movie_header,
)
from tomoprep.simulate.eer import EerCompression, write_eer


def _events(shape: tuple[int, ...], rate: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < rate).astype(np.uint8)


def _grouped(counts: np.ndarray, ranges: list[tuple[int, int]]) -> np.ndarray:
    return np.stack([counts[a:b].sum(axis=0) for a, b in ranges]).astype(np.float32)


@pytest.fixture
def eer_movie(tmp_path: Path) -> tuple[Path, np.ndarray]:
    counts = _events((22, 64, 64), 0.05)
    path = tmp_path / "TS_01_001.eer"
    write_eer(path, counts, metadata={"sensorPixelSize.width": "1.5e-10", "totalDose": "0.225"})
    return path, counts


# --- format and header ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.tif", "tiff"), ("a.TIFF", "tiff"), ("a.mrc", "mrc"), ("a.mrcs", "mrc"), ("a.EER", "eer")],
)
def test_movie_format_by_suffix(name: str, fmt: str) -> None:
    assert movie_format(Path(name)) == fmt


@pytest.mark.parametrize("name", ["a.dm4", "a.mrc.gz", "a"])
def test_unknown_suffix_is_an_image_file_error(name: str) -> None:
    with pytest.raises(ImageFileError, match="not a movie format"):
        movie_format(Path(name))


def test_eer_header(eer_movie: tuple[Path, np.ndarray]) -> None:
    path, _ = eer_movie
    header = read_movie_header(path)
    assert (header.format, header.n_frames, header.shape_yx, header.dtype) == ("eer", 22, (64, 64), "bool")
    assert header.pixel_spacing_angstrom == pytest.approx(1.5)
    assert header.eer_metadata["numberOfFrames"] == "22"
    assert header.eer_metadata["totalDose"] == "0.225"
    assert header.eer_metadata["totalDose.unit"] == "e/pixel"


# --- EER grouping and upsampling -------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [65000, 65001])
def test_eer_groups_are_exact_sums(tmp_path: Path, compression: EerCompression) -> None:
    counts = _events((20, 64, 64), 0.05, seed=compression)
    path = tmp_path / "movie.eer"
    write_eer(path, counts, compression=compression)
    frames = read_movie(path, eer_group_frames=5)
    assert frames.dtype == np.float32
    assert np.array_equal(frames, _grouped(counts, [(0, 5), (5, 10), (10, 15), (15, 20)]))


def test_eer_remainder_frames_join_the_last_group(eer_movie: tuple[Path, np.ndarray]) -> None:
    path, counts = eer_movie  # 22 frames in groups of 5: frames 20 and 21 go to the last group
    assert eer_group_ranges(22, 5) == (range(0, 5), range(5, 10), range(10, 15), range(15, 22))
    frames = read_movie(path, eer_group_frames=5)
    assert np.array_equal(frames, _grouped(counts, [(0, 5), (5, 10), (10, 15), (15, 22)]))
    assert frames.sum() == counts.sum()  # no event dropped


@pytest.mark.parametrize(("group_frames", "workers"), [(5, 2), (5, 8), (11, 8), (1, 3)])
def test_eer_counts_are_exact_integer_sums_in_order(
    eer_movie: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch, group_frames: int, workers: int
) -> None:
    """Groups decoded in parallel (whole groups, or split between workers when there are fewer groups than
    workers) come back in order, as uint8 counts (at most one event per pixel and frame) equal to the float32
    groups."""
    monkeypatch.setattr("tomoprep.io.counts.os.cpu_count", lambda: workers)
    path, counts = eer_movie
    ranges = [(r.start, r.stop) for r in eer_group_ranges(22, group_frames)]
    integer = list(iter_movie_counts(path, eer_group_frames=group_frames))
    assert all(group.dtype == np.uint8 for group in integer)
    assert np.array_equal(np.stack(integer), _grouped(counts, ranges))
    floats = list(iter_movie_groups(path, eer_group_frames=group_frames))
    assert all(group.dtype == np.float32 for group in floats)
    assert np.array_equal(np.stack(floats), np.stack(integer))


@pytest.mark.parametrize("workers", [1, 2])
def test_eer_groups_of_more_than_255_frames_count_past_255(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """A pixel hit in each of 300 raw frames counts 300: groups too long for uint8 are decoded as uint16, and
    parts of a group split between workers are summed without wrapping."""
    monkeypatch.setattr("tomoprep.io.counts.os.cpu_count", lambda: workers)
    counts = _events((300, 16, 16), 0.3)
    counts[:, 5, 7] = 1
    path = tmp_path / "long.eer"
    write_eer(path, counts, metadata={"sensorPixelSize.width": "1.5e-10", "totalDose": "1"})
    (group,) = iter_movie_counts(path, eer_group_frames=300)
    assert group.dtype == np.uint16 and int(group[5, 7]) == 300
    assert np.array_equal(group, counts.sum(axis=0))
    halves = list(iter_movie_counts(path, eer_group_frames=150))  # 150 frames each: uint8, summed from parts
    assert np.array_equal(np.stack(halves), np.stack([counts[:150].sum(0), counts[150:].sum(0)]))


def test_eer_counts_widen_rather_than_overflow() -> None:
    from tomoprep.io.counts import add_counts

    eight = add_counts(np.full((2, 2), 200, np.uint8), np.full((2, 2), 100, np.uint8))
    assert eight.dtype == np.uint16 and int(eight[0, 0]) == 300

    a = np.full((2, 2), 60000, dtype=np.uint16)
    b = np.full((2, 2), 10000, dtype=np.uint16)
    total = add_counts(a, b)
    assert total.dtype == np.uint32 and int(total[0, 0]) == 70000
    small = add_counts(np.ones((2, 2), np.uint16), np.ones((2, 2), np.uint16))
    assert small.dtype == np.uint16 and int(small[0, 0]) == 2


def test_eer_2x_upsampling_bins_back_to_1x(eer_movie: tuple[Path, np.ndarray]) -> None:
    path, _ = eer_movie
    at_1x = read_movie(path, eer_group_frames=5)
    at_2x = read_movie(path, eer_group_frames=5, eer_upsampling=2)
    assert at_2x.shape == (4, 128, 128)
    assert np.array_equal(at_2x.reshape(4, 64, 2, 64, 2).sum(axis=(2, 4)), at_1x)
    # Our writer's sub-pixel bits (0) decode to the centre sub-pixel: the (+y, +x) half-pixel of each block.
    assert np.array_equal(at_2x[:, 1::2, 1::2], at_1x)


def test_frames_selects_groups(eer_movie: tuple[Path, np.ndarray]) -> None:
    path, _ = eer_movie
    every = read_movie(path, eer_group_frames=5)
    assert np.array_equal(read_movie(path, eer_group_frames=5, frames=slice(1, None, 2)), every[1::2])
    assert np.array_equal(read_movie(path, eer_group_frames=5, frames=slice(-1, None)), every[-1:])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs eer_group_frames"),
        ({"eer_group_frames": 0}, "between 1 and the 22"),
        ({"eer_group_frames": 23}, "between 1 and the 22"),
        ({"eer_group_frames": 5, "eer_upsampling": 4}, "not 1 or 2"),
    ],
)
def test_bad_eer_options(eer_movie: tuple[Path, np.ndarray], options: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_movie(eer_movie[0], **options)


def test_eer_options_on_a_tiff_movie_are_an_error(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "m.tif", np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(InputError, match="only to EER"):
        read_movie(tmp_path / "m.tif", eer_group_frames=2)


# --- TIFF and MRC ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["lzw", "zlib", None])
def test_tiff_movie_reads_back_exactly_in_mrc_row_order(tmp_path: Path, compression: str | None) -> None:
    stored = np.random.default_rng(1).integers(0, 12, (5, 40, 48)).astype(np.uint8)
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, stored, compression=compression)
    header = read_movie_header(path)
    assert (header.format, header.n_frames, header.shape_yx, header.dtype) == ("tiff", 5, (40, 48), "uint8")
    # Rows reversed, as IMOD, MotionCor2 and RELION read TIFF.
    assert np.array_equal(read_movie(path), stored[:, ::-1, :])
    assert np.array_equal(read_movie(path, frames=slice(3, 5)), stored[3:5, ::-1, :])


@pytest.mark.parametrize(
    ("dtype", "group_frames", "expected"),
    [(np.uint8, 1, np.uint8), (np.uint8, 2, np.uint16), (np.uint16, 2, np.uint32), (np.int16, 2, np.float32)],
)
def test_tiff_counts_keep_integer_types(tmp_path: Path, dtype: type, group_frames: int, expected: type) -> None:
    stored = np.random.default_rng(2).integers(0, 250, (5, 24, 32)).astype(dtype)
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, stored)
    counts = list(iter_movie_counts(path, group_frames=group_frames))
    assert all(group.dtype == expected for group in counts)
    ranges = [(r.start, r.stop) for r in eer_group_ranges(5, group_frames)]  # the remainder joins the last group
    assert np.array_equal(np.stack(counts), _grouped(stored[:, ::-1, :].astype(np.int64), ranges))
    assert np.array_equal(np.stack(list(iter_movie_groups(path, group_frames=group_frames))), np.stack(counts))


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.uint16])
def test_mrc_stack_reads_back_exactly(tmp_path: Path, dtype: type) -> None:
    stored: np.ndarray = np.random.default_rng(2).integers(0, 300, (6, 40, 48)).astype(dtype)
    path = tmp_path / "movie.mrcs"
    with mrcfile.new(path) as mrc:
        mrc.set_data(stored)
        mrc.voxel_size = 1.7
    header = read_movie_header(path)
    assert (header.format, header.n_frames, header.shape_yx) == ("mrc", 6, (40, 48))
    assert header.pixel_spacing_angstrom == pytest.approx(1.7, rel=1e-6)  # MRC stores float32
    assert np.array_equal(read_movie(path), stored.astype(np.float32))
    assert np.array_equal(read_movie(path, frames=slice(None, None, -2)), stored[::-2].astype(np.float32))


# --- truncated files ---------------------------------------------------------------------------------------


def _truncate(path: Path, n_bytes: int) -> Path:
    cut = path.with_name("cut_" + path.name)
    cut.write_bytes(path.read_bytes()[:n_bytes])
    return cut


def _movies(tmp_path: Path) -> dict[str, Path]:
    stack = _events((5, 64, 64), 0.3, seed=3)
    paths = {"eer": tmp_path / "m.eer", "tif": tmp_path / "m.tif", "mrc": tmp_path / "m.mrcs"}
    write_eer(paths["eer"], stack)
    tifffile.imwrite(paths["tif"], stack, compression="lzw")
    with mrcfile.new(paths["mrc"]) as mrc:
        mrc.set_data(stack.astype(np.int16))
    return paths


@pytest.mark.parametrize("kind", ["eer", "tif", "mrc"])
@pytest.mark.parametrize("keep", [0.999, 0.9, 0.5, 0.05])
def test_truncated_movie_is_an_image_file_error(tmp_path: Path, kind: str, keep: float) -> None:
    path = _movies(tmp_path)[kind]
    cut = _truncate(path, int(path.stat().st_size * keep))
    with pytest.raises(ImageFileError, match=re.escape(cut.name)):
        read_movie_header(cut)
    with pytest.raises(ImageFileError, match=re.escape(cut.name)):
        read_movie(cut, eer_group_frames=1 if kind == "eer" else None)


def test_truncation_message_gives_both_sizes(tmp_path: Path) -> None:
    path = _movies(tmp_path)["mrc"]
    cut = _truncate(path, path.stat().st_size - 10)
    size = cut.stat().st_size
    with pytest.raises(ImageFileError, match=f"file is {size} bytes, its header implies {size + 10}.*re-copy"):
        read_movie_header(cut)


def test_eer_with_fewer_frames_than_its_metadata_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "short.eer"
    write_eer(path, _events((4, 16, 16), 0.1), metadata={"numberOfFrames": "10"})
    with pytest.raises(ImageFileError, match=r"holds 4 EER frames.*implies 10"):
        read_movie_header(path)


# --- frames per group ------------------------------------------------------------------------------------


def test_eer_frames_per_group_worked_example() -> None:
    # The tutorial's two gain-reference groups: 308 and 350 EER frames, 3.5 e/A^2 per tilt, 1.91 A pixels.
    common = {
        "dose_per_group_e_per_angstrom2": 0.5,
        "dose_per_tilt_e_per_angstrom2": 3.5,
        "pixel_spacing_angstrom": 1.91,
    }
    assert eer_frames_per_group(**common, n_eer_frames=308) == 12  # 0.5 / (3.5 * 1.91**2 / 308) = 12.06
    assert eer_frames_per_group(**common, n_eer_frames=350) == 14  # 13.7
    # With 1 A pixels the group holds the target dose per A^2: 3 e/A^2 in 600 frames, 0.5 per group -> 100.
    assert (
        eer_frames_per_group(
            dose_per_group_e_per_angstrom2=0.5,
            dose_per_tilt_e_per_angstrom2=3.0,
            pixel_spacing_angstrom=1.0,
            n_eer_frames=600,
        )
        == 100
    )


@pytest.mark.parametrize(
    ("per_group", "per_tilt", "pixel", "n", "expected"),
    [
        (1.0, 4.0, 1.0, 450, 112),
        (0.6, 3.5, 1.0, 400, 69),
        (0.5, 3.0, 2.0, 600, 25),
        (0.001, 3.0, 1.0, 600, 1),
        (10.0, 3.0, 1.0, 600, 600),
    ],
)
def test_eer_frames_per_group_rounds_and_clamps(
    per_group: float, per_tilt: float, pixel: float, n: int, expected: int
) -> None:
    # 112.5 rounds to even (112); 68.57 -> 69; 2 A pixels carry 4x the electrons per frame; clamped to [1, n].
    result = eer_frames_per_group(
        dose_per_group_e_per_angstrom2=per_group,
        dose_per_tilt_e_per_angstrom2=per_tilt,
        pixel_spacing_angstrom=pixel,
        n_eer_frames=n,
    )
    assert result == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dose_per_group_e_per_angstrom2": 0.0},
        {"dose_per_tilt_e_per_angstrom2": -3.0},
        {"dose_per_tilt_e_per_angstrom2": float("nan")},
        {"n_eer_frames": 0},
        {"pixel_spacing_angstrom": 0.0},
    ],
)
def test_eer_frames_per_group_rejects_bad_values(kwargs: dict) -> None:
    values = {
        "dose_per_group_e_per_angstrom2": 0.5,
        "dose_per_tilt_e_per_angstrom2": 3.0,
        "pixel_spacing_angstrom": 1.5,
        "n_eer_frames": 600,
    }
    with pytest.raises(InputError, match=next(iter(kwargs))):
        eer_frames_per_group(**{**values, **kwargs})


# --- RELION 3.1 parity -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eer_4k(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """Seven sparse 4096² frames (RELION reads only 4096² EER movies), with an asymmetric mark."""
    rng = np.random.default_rng(7)
    flat = np.zeros((7, 4096 * 4096), dtype=bool)
    for frame in flat:
        frame[rng.integers(0, frame.size, 5000)] = True
    counts = flat.reshape(7, 4096, 4096)
    counts[0, :8, :64] = True  # a flip or transpose would show
    path = tmp_path_factory.mktemp("relion") / "movie.eer"
    write_eer(path, counts)
    return path, counts


@pytest.mark.skipif(shutil.which("relion_convert_to_tiff") is None, reason="RELION is not installed")
@pytest.mark.parametrize("upsampling", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_grouped_eer_equals_relion(eer_4k: tuple[Path, np.ndarray], upsampling: EerUpsampling) -> None:
    """``relion_convert_to_tiff`` (RELION 3.1) renders EER groups like ``read_movie``.

    RELION writes TIFF rows reversed (as it writes every TIFF), undone by ``[:, ::-1]``, and drops the
    remainder frame (frame 6 of 7 in groups of 3) that we add to the last group.
    """
    path, counts = eer_4k
    out = f"relion_{upsampling}x/"
    # Relative names: RELION appends the input path to the output folder.
    command = ["relion_convert_to_tiff", "--i", path.name, "--o", out, "--eer_grouping", "3"]
    subprocess.run([*command, "--eer_upsampling", str(upsampling)], check=True, capture_output=True, cwd=path.parent)
    relion = tifffile.imread(path.parent / out / "movie.tif")[:, ::-1]
    ours = read_movie(path, eer_group_frames=3, eer_upsampling=upsampling)
    assert relion.shape == ours.shape == (2, 4096 * upsampling, 4096 * upsampling)
    assert np.array_equal(relion[0], ours[0])
    # Frame 6's events sit in the centre sub-pixel of their pixel: (1, 1) of each 2x2 block at 2x.
    centre = upsampling // 2
    ours[1, centre::upsampling, centre::upsampling] -= counts[6]
    assert np.array_equal(relion[1], ours[1])
