"""A movie that is not what the mdoc promises is named for what it is: a broken link (and where it points), a
folder, frames of another size than the series' (with both sizes), never blamed on something else."""

from __future__ import annotations

import os
from pathlib import Path

import mrcfile
import numpy as np
from project_faults import flat, snapshot, tomoprep

from tomoprep.steps.tilt_series_set import load_tilt_series_set

MOVIE = "TS_01_001_10.0.mrc"


def _import(tmp_path: Path, session: Path, *options: str):
    project = tmp_path / "p"
    assert tomoprep("init", str(project)).exit_code == 0
    before = snapshot(session)
    result = tomoprep("import", "-p", str(project), "--mdoc", str(session / "*.mdoc"), "--movies",
                      str(session / "frames"), *options)  # fmt: skip
    assert snapshot(session) == before
    return result, project


def _cropped(path: Path, shape_yx: tuple[int, int]) -> None:
    frames = mrcfile.read(path)
    with mrcfile.open(path, mode="r+") as mrc:
        voxel = mrc.voxel_size.copy()
        mrc.set_data(np.ascontiguousarray(frames[:, : shape_yx[0], : shape_yx[1]]))
        mrc.voxel_size = voxel


def test_a_broken_link_in_place_of_a_movie_is_named_with_its_target(tmp_path: Path, session: Path) -> None:
    movie = session / "frames" / MOVIE
    movie.unlink()
    os.symlink(tmp_path / "gone" / MOVIE, movie)
    result, _ = _import(tmp_path, session)
    text = flat(result.output)
    assert result.exit_code == 1 and "FAILED" in text, text
    assert (
        f"names movie '{MOVIE}': {movie} is a broken link (to {tmp_path / 'gone' / MOVIE}, which does not exist)"
        in text
    )
    assert "Fix: restore the file the link points to" in text and "which is not in" not in text


def test_a_folder_named_like_a_movie_is_named_as_a_folder(tmp_path: Path, session: Path) -> None:
    movie = session / "frames" / MOVIE
    movie.unlink()
    movie.mkdir()
    result, _ = _import(tmp_path, session)
    text = flat(result.output)
    assert result.exit_code == 1 and "FAILED" in text, text
    assert f"names movie '{MOVIE}': {movie} is a folder, not a movie file." in text
    assert "which is not in" not in text


def test_a_movie_of_another_frame_size_is_named_with_both_sizes_at_import(tmp_path: Path, session: Path) -> None:
    _cropped(session / "frames" / MOVIE, (96, 128))
    result, _ = _import(tmp_path, session)
    text = flat(result.output)
    assert result.exit_code == 1 and "FAILED" in text, text
    message = (
        f"{session / 'frames' / MOVIE}: frames of 96 x 128 pixels (y, x), but 2 of the series' 3 movies have 128 x 128"
    )
    assert message in text and "--on-bad-movie exclude" in text and "gain" not in text.split(message)[1][:200]
    excluded, project = _import(tmp_path / "again", session, "--on-bad-movie", "exclude")
    assert excluded.exit_code == 0, excluded.output
    (ts,) = load_tilt_series_set(project / "runs" / "001_import")
    assert [t.exclusion.reason.startswith(f"import: {session / 'frames' / MOVIE}: frames of 96 x 128") for t in
            ts.tilts if t.exclusion is not None] == [True]  # fmt: skip


def test_a_movie_replaced_by_one_of_another_size_is_named_by_motioncorr(tmp_path: Path, session: Path) -> None:
    result, project = _import(tmp_path, session)
    assert result.exit_code == 0, result.output
    before = snapshot(project / "runs" / "001_import")
    _cropped(session / "frames" / MOVIE, (128, 100))
    corrected = tomoprep("motioncorr", "-p", str(project), "--no-local-motion")
    text = flat(corrected.output)
    assert corrected.exit_code == 1 and "FAILED" in text, text
    assert f"{MOVIE}: frames of 128 x 100 pixels (y, x), but the series' movie" in text
    assert "gain reference" not in text
    assert snapshot(project / "runs" / "001_import") == before
