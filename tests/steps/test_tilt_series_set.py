"""A run's tilt-series set names the files of the project relative to the project folder, so it reads back
wherever the folder is moved; files outside the project stay absolute."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import starfile

from built_series import built_series
from tomoprep.io.stored_paths import map_paths
from tomoprep.model import GainReference, TiltCtf, TiltSeries
from tomoprep.steps.tilt_series_set import load_tilt_series_set, save_tilt_series


def _series_with_every_path(project: Path, raw: Path):
    """A series whose files lie in the project's run folders, with a gain, power spectra and the alignment's files;
    the movies, gain and mdoc lie in ``raw``, outside the project."""
    ts = built_series(project / "runs" / "002_motioncorr")
    gain = GainReference(raw / "gain.mrc", rotation_deg=90)
    spectra = project / "runs" / "004_ctf" / "TS_07" / "TS_07_ctf_spectra.mrc"
    tilts = tuple(
        replace(t, acquisition=replace(t.acquisition, movie_path=raw / t.acquisition.movie_path.name, gain=gain),
                ctf=replace(t.ctf, power_spectrum_path=spectra, power_spectrum_section=k)
                if isinstance(t.ctf, TiltCtf) else None)
        for k, t in enumerate(ts.tilts)
    )  # fmt: skip
    align = project / "runs" / "003_align" / "TS_07"
    return replace(ts, tilts=tilts, sources=(raw / "TS_07.mdoc",), local_alignment_path=align / "TS_07_local.star",
                   axis_scores_path=align / "TS_07_axis_scores.star")  # fmt: skip


def test_the_set_names_the_projects_files_relative_to_it_and_reads_back_after_a_move(tmp_path: Path) -> None:
    project, raw = tmp_path / "project", tmp_path / "raw"
    ts = _series_with_every_path(project, raw)
    run_dir = project / "runs" / "005_ctf"
    save_tilt_series(ts, run_dir)
    texts = [p.read_text() for p in (run_dir / "tilt_series.star", run_dir / "tilt_series" / "TS_07.star")]
    assert all(str(project) not in text for text in texts)
    assert all(str(raw) in text for text in texts)  # the raw files stay absolute
    row = starfile.read(run_dir / "tilt_series.star", always_dict=True)["global"].iloc[0]
    assert row["tpAxisScoresFile"] == "runs/003_align/TS_07/TS_07_axis_scores.star"
    assert row["rlnTomoTiltSeriesStarFile"] == "runs/005_ctf/tilt_series/TS_07.star"
    table = starfile.read(run_dir / "tilt_series" / "TS_07.star")
    assert table["rlnCtfImage"].iloc[1] == "2@runs/004_ctf/TS_07/TS_07_ctf_spectra.mrc"
    # Every path reads back as it was (the numbers round to the files' decimals and are compared elsewhere).
    (read,) = load_tilt_series_set(run_dir)
    assert _paths(read) == _paths(ts)

    moved = tmp_path / "elsewhere" / "renamed"
    shutil.move(project, moved)
    (read,) = load_tilt_series_set(moved / "runs" / "005_ctf")
    expected = [moved / p.relative_to(project) if p.is_relative_to(project) else p for p in _paths(ts)]
    assert _paths(read) == expected
    assert read.tilts[0].motion.micrograph_path.is_file() and read.tomograms[0].path.is_file()
    assert read.sources == ts.sources and read.tilts[0].acquisition.gain == ts.tilts[0].acquisition.gain


def _paths(ts: TiltSeries) -> list[Path]:
    """Every path ``ts`` holds, in the order of its fields."""
    found: list[Path] = []
    map_paths(ts, lambda path: found.append(path) or path)
    return found
