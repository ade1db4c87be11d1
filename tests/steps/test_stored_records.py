"""Tilt-series records written by earlier versions still read, and are written again unchanged.

``tests/data/records/v1`` holds a run folder written with the flat tilt records of commit fb0fbf5 (see its
README); the stage records of today's model must read every stored value of it, and writing the series back
must give the same files, label for label and value for value, so RELION and older readers see no change.
"""

from __future__ import annotations

import math
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from tomoprep.model import TiltAlignment, TiltExclusion
from tomoprep.steps.tilt_series_set import finalize_tilt_series_set, load_tilt_series_set, save_tilt_series

V1 = Path(__file__).parents[1] / "data" / "records" / "v1"
RUN = Path("runs") / "003_align"
FILES = ("tilt_series.star", "tilt_series/TS_01.star", "tilt_series/lamella.star")


@pytest.fixture()
def v1_run(tmp_path: Path) -> Path:
    shutil.copytree(V1, tmp_path / "project")
    return tmp_path / "project" / RUN


def _body(path: Path) -> list[str]:
    """The lines of a STAR file after starfile's time-stamped first line."""
    return path.read_text().splitlines()[1:]


def test_v1_movie_series_reads_into_stage_records(v1_run: Path) -> None:
    movies, _ = load_tilt_series_set(v1_run)
    project = v1_run.parents[1]
    assert movies.name == "TS_01" and movies.nominal_tilt_axis_angle_deg == -94.6
    assert (movies.tilt_series_pixel_spacing_angstrom, movies.specimen_thickness_angstrom) == (1.9, 1830.0)
    # Paths in the project are stored relative to its folder, and read back joined to it.
    assert movies.local_alignment_path == project / "runs/003_align/TS_01/TS_01_local.star"
    first = movies.tilts[0]
    assert first.acquisition.movie_path == Path("/data/TS_01_000.eer") and first.acquisition.frame_count == 400
    assert first.acquisition.nominal_defocus_angstrom == 35000.0 and first.acquisition.section_index == 1
    assert first.acquisition.date_time == datetime(2024, 1, 1, 10, 0, 0)
    assert first.acquisition.gain is not None and first.acquisition.gain.rotation_deg == 90
    assert first.motion is not None and first.motion.accumulated_motion_angstrom == (4.5, 1.25, 3.25)
    assert first.motion.micrograph_dose_weighted_path == project / "runs/002_motioncorr/TS_01/TS_01_000_DW.mrc"
    assert first.alignment == TiltAlignment(0.4, -94.2, 0.0, 12.5, -0.0, local_shift_rms_angstrom=2.5)
    excluded = movies.tilts[2]
    assert excluded.exclusion == TiltExclusion("auto: dark: mean 0.12 of the neighbours")
    assert excluded.alignment is None and excluded.motion is not None
    assert [t.acquisition.pre_exposure_e_per_angstrom2 for t in movies.tilts] == pytest.approx([0.0, 3.1, 6.2, 9.3])


def test_v1_stack_series_reads_into_stage_records(v1_run: Path) -> None:
    _, stack = load_tilt_series_set(v1_run)
    assert stack.name == "lamella" and stack.nominal_tilt_axis_angle_deg == 85.0 and stack.hand == 1
    assert all(t.motion is None for t in stack.tilts)
    assert [t.acquisition.section_index for t in stack.tilts] == [0, 2, 1]
    assert {t.acquisition.stack_path for t in stack.tilts} == {Path("/data/lamella.mrc")}
    assert all(t.acquisition.dose_e_per_angstrom2 is None for t in stack.tilts)
    assert stack.tilts[0].exclusion == TiltExclusion("import: non-finite values in section 0 of lamella.mrc")
    assert stack.tilts[1].alignment is not None and math.isclose(stack.tilts[1].alignment.x_tilt_deg, 0.5)
    assert not stack.dose_known


def test_v1_records_are_written_back_unchanged(v1_run: Path, tmp_path: Path) -> None:
    # Written back into its own project (a copy, whose paths the records then name), so that relative paths stay.
    shutil.copytree(V1, tmp_path / "again")
    again = tmp_path / "again" / RUN
    series = load_tilt_series_set(again)
    for name in FILES:
        (again / name).unlink()
    for ts in series:
        save_tilt_series(ts, again)
    finalize_tilt_series_set(again, [ts.name for ts in series])
    for name in FILES:
        assert _body(again / name) == _body(V1 / RUN / name), name
    assert load_tilt_series_set(again) == series
