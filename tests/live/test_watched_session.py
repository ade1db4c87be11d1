"""Discovery of a session's tilt series and the rules that say when one is complete (quick: tiny real files)."""

from __future__ import annotations

import os
from pathlib import Path

from live_session import movie_names, write_mdoc_of, write_movie, write_series

from tomoprep.live.session import CompletenessTracker, describe_wait, mdoc_glob_of, scan_session


def _scan(session: Path) -> dict[str, object]:
    return {s.name: s for s in scan_session(mdoc_glob_of(session, "*.mdoc"), None)}


def test_scan_finds_each_series_with_its_files_and_its_missing_movies(tmp_path: Path) -> None:
    write_series(tmp_path, "TS_01")
    write_series(tmp_path, "TS_02", leave_out=1)
    found = _scan(tmp_path)
    assert sorted(found) == ["TS_01", "TS_02"]
    ts01, ts02 = found["TS_01"], found["TS_02"]
    assert ts01.missing == () and len(ts01.files) == 1 + 3  # the mdoc and its three movies
    assert ts02.missing == (movie_names("TS_02")[-1],) and len(ts02.files) == 1 + 2
    assert describe_wait(ts02) == f"waiting for {movie_names('TS_02')[-1]}"


def test_movies_in_another_folder_and_another_suffix_are_matched_as_the_import_matches_them(tmp_path: Path) -> None:
    write_mdoc_of(tmp_path, "TS_01")
    frames = tmp_path / "frames"
    frames.mkdir()
    for k, name in enumerate(movie_names("TS_01")):  # the mdoc names .mrc; a .mrcs of the same stem is taken
        write_movie(frames / (name + "s"), seed=k)
    (series,) = scan_session(mdoc_glob_of(tmp_path, "*.mdoc"), frames)
    assert series.missing == () and len(series.files) == 4
    (unmatched,) = scan_session(mdoc_glob_of(tmp_path, "*.mdoc"), None)  # not beside the mdoc
    assert len(unmatched.missing) == 3


def test_a_complete_series_is_taken_only_after_its_files_stayed_unchanged_for_the_settle_time(tmp_path: Path) -> None:
    movies = write_series(tmp_path, "TS_01")
    tracker = CompletenessTracker(settle_s=10.0)
    for now_s in (0.0, 5.0, 9.9):
        (series,) = scan_session(mdoc_glob_of(tmp_path, "*.mdoc"), None)
        tracker.update([series], now_s)
        assert not tracker.is_complete(series, now_s)
    # A movie still being written (it grew) starts the settle time again.
    with open(movies[1], "ab") as handle:
        handle.write(b"\0" * 64)
    (series,) = scan_session(mdoc_glob_of(tmp_path, "*.mdoc"), None)
    assert tracker.update([series], 12.0) == {"TS_01"}
    assert not tracker.is_complete(series, 21.9)
    assert not tracker.update([series], 22.0) and tracker.is_complete(series, 22.0)


def test_a_rewrite_of_the_same_size_counts_as_a_change(tmp_path: Path) -> None:
    movies = write_series(tmp_path, "TS_01")
    tracker = CompletenessTracker(settle_s=10.0)
    tracker.update(scan_session(mdoc_glob_of(tmp_path, "*.mdoc"), None), 0.0)
    stat = movies[0].stat()
    os.utime(movies[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert tracker.update(scan_session(mdoc_glob_of(tmp_path, "*.mdoc"), None), 8.0) == {"TS_01"}


def test_a_series_with_a_missing_movie_waits_unless_a_time_limit_is_given(tmp_path: Path) -> None:
    write_series(tmp_path, "TS_01", leave_out=1)
    (series,) = scan_session(mdoc_glob_of(tmp_path, "*.mdoc"), None)
    waiting, limited = CompletenessTracker(settle_s=1.0), CompletenessTracker(settle_s=1.0, missing_timeout_s=30.0)
    for tracker in (waiting, limited):
        tracker.update([series], 0.0)
    assert not waiting.is_complete(series, 1e6)
    assert not limited.is_complete(series, 29.0) and limited.is_complete(series, 30.0)


def test_an_mdoc_cut_mid_section_is_a_series_that_cannot_be_read_yet(tmp_path: Path) -> None:
    path = write_mdoc_of(tmp_path, "TS_01")
    text = path.read_bytes()
    path.write_bytes(text[: text.index(b"[ZValue = 2]") + 30])  # as SerialEM leaves it while writing a section
    (series,) = scan_session(mdoc_glob_of(tmp_path, "*.mdoc"), None)
    assert series.name == "TS_01" and series.error is not None and str(path) in series.error
    assert describe_wait(series) == "its mdoc cannot be read yet"


def test_a_session_folder_with_glob_characters_in_its_name_is_scanned(tmp_path: Path) -> None:
    session = tmp_path / "grid[1] *"
    write_series(session, "TS_01")
    assert [s.name for s in scan_session(mdoc_glob_of(session, "*.mdoc"), None)] == ["TS_01"]


def test_the_mdoc_cache_reads_again_an_mdoc_that_grew(tmp_path: Path) -> None:
    from tomoprep.live.session import MdocCache

    write_series(tmp_path, "TS_01")
    cache, glob = MdocCache(), mdoc_glob_of(tmp_path, "*.mdoc")
    (before,) = scan_session(glob, None, cache)
    assert before.missing == ()
    write_mdoc_of(tmp_path, "TS_01", (0.0, 3.0, -3.0, 6.0))  # SerialEM adds the next tilt's section
    (after,) = scan_session(glob, None, cache)
    assert after.missing == (movie_names("TS_01", (0.0, 3.0, -3.0, 6.0))[-1],)
