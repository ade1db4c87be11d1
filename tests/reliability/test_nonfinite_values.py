"""Pixels that are not numbers (nan, inf) in a gain reference or a movie frame never reach an output: they are
found where they enter, repaired as defects or the tilt excluded, and the log says which. A gain reference of
the wrong size is named, with both shapes, before anything reads it."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest
from project_faults import flat, snapshot, tomoprep

from tomoprep.model import TiltExclusion, TiltSeries
from tomoprep.steps.tilt_series_set import load_tilt_series_set

MOVIE = "TS_01_001_10.0.mrc"
# mrcfile warns when the tests write the spoilt files; tomoprep's own warnings are asserted in the output.
pytestmark = pytest.mark.filterwarnings("ignore:Data array contains NaN values:RuntimeWarning")


def _motioncorr(tmp_path: Path, session: Path) -> tuple[object, Path, dict[str, str]]:
    """Import the session, then motion-correct it; the import's folder as it was before motioncorr."""
    project = tmp_path / "p"
    assert tomoprep("init", str(project)).exit_code == 0
    imported = tomoprep("import", "-p", str(project), "--mdoc", str(session / "*.mdoc"), "--movies",
                        str(session / "frames"))  # fmt: skip
    assert imported.exit_code == 0, imported.output
    before = snapshot(project / "runs" / "001_import")
    result = tomoprep("motioncorr", "-p", str(project), "--no-local-motion")
    assert snapshot(project / "runs" / "001_import") == before
    return result, project, before


def _corrected(tmp_path: Path, session: Path) -> tuple[str, Path, TiltSeries]:
    """Import and motion-correct the session, which must succeed: the output (lines joined), the project and the
    corrected series."""
    result, project, _ = _motioncorr(tmp_path, session)
    text = flat(result.output)
    assert result.exit_code == 0, text
    (ts,) = load_tilt_series_set(project / "runs" / "002_motioncorr")
    return text, project, ts


def _sums(project: Path) -> dict[str, np.ndarray]:
    return {p.name: mrcfile.read(p) for p in sorted((project / "runs" / "002_motioncorr").rglob("*.mrc"))}


def _float_movie(path: Path, edit) -> None:
    frames = mrcfile.read(path).astype(np.float32)
    edit(frames)
    with mrcfile.open(path, mode="r+") as mrc:
        voxel = mrc.voxel_size.copy()
        mrc.set_data(frames)
        mrc.voxel_size = voxel


def test_a_nan_in_the_gain_is_a_defect_and_no_output_is_nan(tmp_path: Path, session: Path) -> None:
    gain = session / "gain_A.mrc"
    with mrcfile.open(gain, mode="r+") as mrc:
        mrc.data[40, 70] = np.nan
    text, project, _ = _corrected(tmp_path, session)
    assert "gain reference gain_A.mrc: 1 pixel not finite (nan or inf, first at x=70, y=40)" in text
    assert "treated as defects" in text
    sums = _sums(project)
    assert len(sums) >= 3 and all(np.isfinite(image).all() for image in sums.values())


def test_a_movie_frame_of_nan_excludes_its_tilt_with_the_reason(tmp_path: Path, session: Path) -> None:
    _float_movie(session / "frames" / MOVIE, lambda frames: frames.__setitem__(2, np.nan))
    text, project, ts = _corrected(tmp_path, session)
    reason = f"motioncorr: non-finite values in frame 2 of {MOVIE} (16384 of 16384 pixels nan or inf)"
    assert reason in text
    excluded = [t for t in ts.tilts if t.excluded]
    assert [t.exclusion.reason for t in excluded] == [reason] and excluded[0].acquisition.movie_path.name == MOVIE
    sums = _sums(project)
    assert sums and not any(MOVIE.removesuffix(".mrc") in name for name in sums)
    assert all(np.isfinite(image).all() for image in sums.values())


def test_a_blank_movie_excludes_its_tilt_as_blank(tmp_path: Path, session: Path) -> None:
    _float_movie(session / "frames" / MOVIE, lambda frames: frames.__setitem__(slice(None), 0.0))
    text, project, ts = _corrected(tmp_path, session)
    reason = f"motioncorr: blank movie: every pixel of every frame of {MOVIE} is 0 (no image was recorded)"
    assert reason in text
    assert [t.exclusion.reason for t in ts.tilts if t.exclusion is not None] == [reason]
    assert not any(MOVIE.removesuffix(".mrc") in name for name in _sums(project))


def _keep_frames(path: Path, count: int) -> None:
    frames = mrcfile.read(path)
    with mrcfile.open(path, mode="r+") as mrc:
        voxel = mrc.voxel_size.copy()
        mrc.set_data(np.ascontiguousarray(frames[:count]))
        mrc.voxel_size = voxel


def test_a_movie_of_one_frame_excludes_its_tilt_saying_no_motion_can_be_measured(tmp_path: Path, session: Path) -> None:
    _keep_frames(session / "frames" / MOVIE, 1)
    text, project, ts = _corrected(tmp_path, session)
    reason = f"motioncorr: {MOVIE} has 1 frame: no motion can be measured in a single image"
    assert reason in text and "import single images as a tilt stack (tomoprep import --stack)" in text
    assert "--group-frames" not in text
    assert [t.exclusion.reason.startswith(reason) for t in ts.tilts if t.exclusion is not None] == [True]
    assert len(_sums(project)) >= 2  # the other tilts are corrected


def test_a_series_of_one_frame_movies_fails_naming_the_movie_and_the_fix(tmp_path: Path, session: Path) -> None:
    for movie in (session / "frames").glob("*.mrc"):
        _keep_frames(movie, 1)
    result, _, _ = _motioncorr(tmp_path, session)
    text = flat(result.output)
    assert result.exit_code == 1 and "FAILED" in text, text
    assert "every movie of TS_01 (3) has 1 frame: no motion can be measured in a single image" in text
    assert "Fix: give the tilt's movie of several frames" in text and "--group-frames" not in text


def test_a_few_infinite_pixels_of_a_frame_are_repaired_as_defects(tmp_path: Path, session: Path) -> None:
    def spoil(frames: np.ndarray) -> None:
        frames[4, 10, 20] = np.inf
        frames[1, 90, 5] = np.nan

    _float_movie(session / "frames" / MOVIE, spoil)
    text, project, ts = _corrected(tmp_path, session)
    assert f"{MOVIE}: pixels not finite (nan or inf; 1 in frame 1, 1 in frame 4, counted from 0)" in text
    assert not any(t.excluded for t in ts.tilts)
    sums = _sums(project)
    assert any(MOVIE.removesuffix(".mrc") in name for name in sums)
    assert all(np.isfinite(image).all() for image in sums.values())


def test_a_stack_section_with_a_nan_is_excluded_at_import(tmp_path: Path) -> None:
    folder = tmp_path / "stacks"
    folder.mkdir()
    stack = folder / "TS_S.mrc"
    data = np.random.default_rng(0).normal(size=(3, 32, 32)).astype(np.float32)
    data[1, 5, 6] = np.nan
    with mrcfile.new(stack) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 2.0
    (folder / "TS_S.rawtlt").write_text("-3\n0\n3\n")
    project = tmp_path / "p"
    assert tomoprep("init", str(project)).exit_code == 0
    before = snapshot(folder)
    result = tomoprep("import", "-p", str(project), "--stack", str(stack), "--tilt-axis-angle-deg", "85",
                      "--dose-per-tilt-e-per-angstrom2", "3")  # fmt: skip
    text = flat(result.output)
    assert result.exit_code == 0, text
    reason = "import: non-finite values in section 1 of TS_S.mrc (1 of 1024 pixels nan or inf)"
    assert f"section 1 (0.0°) excluded: {reason}" in text
    (ts,) = load_tilt_series_set(project / "runs" / "001_import")
    assert [t.exclusion for t in ts.tilts] == [None, TiltExclusion(reason), None]
    assert snapshot(folder) == before


def test_a_gain_of_the_wrong_size_is_named_with_both_shapes_before_any_check(tmp_path: Path, session: Path) -> None:
    gain = session / "gain_A.mrc"
    with mrcfile.new(gain, overwrite=True) as mrc:
        mrc.set_data(np.ones((100, 90), dtype=np.float32))
    result, _, _ = _motioncorr(tmp_path, session)
    text = flat(result.output)
    assert result.exit_code == 1 and "FAILED" in text
    assert (
        f"{gain}: this gain reference (shape (100, 90) y, x, as rotated 0° and flipped none) does not fit the "
        "movies' frames (128, 128)" in text
    )
    assert "Fix: give the gain of this camera and mode (tomoprep import --gain)" in text
    assert "max() arg" not in text
