"""RELION's per-movie motion STAR: the real file reads, and ours reads back with RELION's blocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tomoprep.io.relion_motion import MovieMotion, frame_numbers, read_motion_shifts, write_motion_star
from tomoprep.io.star import read_star

REAL = "tomobabel-cets-relion/relion5_project/MotionCorr/job002/frames/TS_01_000_0_0.star"


def test_real_relion_motion_file_reads(real_data: Path) -> None:
    shifts = read_motion_shifts(real_data / REAL)
    assert shifts.shape == (8, 2) and np.all(shifts[0] == 0)
    np.testing.assert_allclose(shifts[1], [-0.55116, 0.315925])
    assert frame_numbers(real_data / REAL) == list(range(1, 9))


def test_written_motion_has_relions_blocks_and_labels(tmp_path: Path, real_data: Path) -> None:
    motion = MovieMotion(
        movie_name="frames/a.eer",
        image_size_xyz=(4096, 4096, 20),
        shifts_xy_px=np.array([[0.0, 0.0], [1.5, -2.25], [2.0, -3.0]]),
        original_pixel_spacing_angstrom=0.95,
        binning=2.0,
        dose_per_frame_e_per_angstrom2=0.15,
        pre_exposure_e_per_angstrom2=6.0,
        voltage_kv=300.0,
        hot_pixels_xy=np.array([[10, 20], [30, 40]]),
    )
    write_motion_star(tmp_path / "a.star", motion)
    ours, relion = read_star(tmp_path / "a.star"), read_star(real_data / REAL)
    assert set(relion) == set(ours)
    assert set(relion["general"].columns) <= set(ours["general"].columns)
    np.testing.assert_allclose(read_motion_shifts(tmp_path / "a.star"), motion.shifts_xy_px)
    assert ours["hot_pixels"].shape == (2, 2)
