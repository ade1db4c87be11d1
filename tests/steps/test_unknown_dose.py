"""A series whose dose is unknown imports with a warning; the steps that need a dose say so and name the option;
those that need none run."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import pytest

from tomoprep.execution import run_step
from tomoprep.io.star import read_star
from tomoprep.project import Project, init_project
from tomoprep.simulate.params import SimulateParams
from tomoprep.simulate.session import simulate_session
from tomoprep.steps import get_step
from tomoprep.steps.tilt_series_set import load_tilt_series_set

IMPORT, MOTIONCORR, CLEAN, ALIGN = (get_step(n) for n in ("import", "motioncorr", "clean", "align"))
DOSE_OPTION = "--dose-per-tilt-e-per-angstrom2"


def _without_dose(mdoc: Path) -> None:
    """The mdoc as SerialEM writes it without a dose calibration: ExposureDose 0, no PriorRecordDose."""
    text = re.sub(r"ExposureDose = \S+", "ExposureDose = 0", mdoc.read_text())
    mdoc.write_text("".join(line for line in text.splitlines(keepends=True) if "PriorRecordDose" not in line))


def _warnings(project: Project, run_id: int) -> list[str]:
    return [message for _, level, _, message in project.events(run_id) if level == "WARNING"]


@pytest.fixture
def no_dose_movies(tmp_path: Path, request: pytest.FixtureRequest) -> Project:
    """A tiny simulated session (movies in the format asked for) imported from mdocs that give no dose."""
    session = tmp_path / "session"
    simulate_session(
        session, SimulateParams(preset="tiny", n_tilts=3, detector_size_px=128, movie_format=request.param, seed=5)
    )
    for mdoc in session.glob("*.mdoc"):
        _without_dose(mdoc)
    project = init_project(tmp_path / "project")
    run = run_step(project, IMPORT, {"mdoc": str(session / "*.mdoc"), "movies": session / "frames"})
    assert run.status == "SUCCEEDED", run.error
    (warning,) = _warnings(project, run.id)
    assert "TS_01.mrc.mdoc" in warning and "unknown" in warning and DOSE_OPTION in warning
    (series,) = load_tilt_series_set(project.run_dir(run))
    assert not series.dose_known
    return project


@pytest.mark.parametrize("no_dose_movies", ["tiff"], indirect=True)
def test_dose_weighting_asks_for_the_dose_before_reading_a_movie(no_dose_movies: Project) -> None:
    run = run_step(no_dose_movies, MOTIONCORR, {})
    assert run.status == "FAILED"
    error = run.units["TS_01"].error or ""
    assert "TS_01" in error and "dose" in error and DOSE_OPTION in error and "--no-dose-weighting" in error
    assert not (no_dose_movies.run_dir(run) / "TS_01").exists()  # failed at planning: nothing was read


@pytest.mark.parametrize("no_dose_movies", ["tiff"], indirect=True)
def test_motion_correction_without_dose_weighting_runs_and_leaves_the_dose_unknown(no_dose_movies: Project) -> None:
    run = run_step(no_dose_movies, MOTIONCORR, {"dose_weighting": False})
    assert run.status == "SUCCEEDED", run.error
    (series,) = load_tilt_series_set(no_dose_movies.run_dir(run))
    for tilt in series.tilts:
        assert tilt.motion is not None and tilt.motion.micrograph_dose_weighted_path is None
        assert tilt.acquisition.dose_e_per_angstrom2 is None and tilt.acquisition.pre_exposure_e_per_angstrom2 is None
        total, early, late = tilt.motion.accumulated_motion_angstrom or (math.nan,) * 3
        assert total > 0 and math.isnan(early) and math.isnan(late)  # the early/late cut is at a dose
        general = read_star(tilt.motion.motion_metadata_path)["general"].iloc[0]  # type: ignore[arg-type]
        assert math.isnan(float(general["rlnMicrographPreExposure"]))
        assert math.isnan(float(general["rlnMicrographDoseRate"]))


@pytest.mark.parametrize("no_dose_movies", ["eer"], indirect=True)
def test_eer_grouping_by_dose_asks_for_the_dose_or_a_frame_count(no_dose_movies: Project) -> None:
    run = run_step(no_dose_movies, MOTIONCORR, {"dose_weighting": False})
    assert run.status == "FAILED"
    error = run.units["TS_01"].error or ""
    assert DOSE_OPTION in error and "--eer-frames-per-group" in error
    run = run_step(no_dose_movies, MOTIONCORR, {"dose_weighting": False, "eer_frames_per_group": 100})
    assert run.status == "SUCCEEDED", run.error


@pytest.mark.slow
def test_stack_without_dose_is_cleaned_and_aligned(tmp_path: Path) -> None:
    """A tilt stack with its tilt angles and nothing else (no mdoc): no dose, yet clean and align run."""
    session = tmp_path / "session"
    truth = simulate_session(
        session,
        SimulateParams(preset="demo", n_tilt_series=1, write_tilt_stack=True, frames_per_tilt=2,
                       pixel_spacing_angstrom=6.0, n_complexes=200, seed=3),
    ).tilt_series[0]  # fmt: skip
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("TS_01.st", "TS_01.rawtlt"):
        shutil.copy(session / "stacks" / name, bare / name)
    project = init_project(tmp_path / "project")
    axis = {"tilt_axis_angle_deg": truth.nominal_tilt_axis_deg, "stack_acquisition_order": "dose_symmetric"}
    imported = run_step(project, IMPORT, {"stack": str(bare / "TS_01.st"), **axis})
    assert imported.status == "SUCCEEDED", imported.error
    assert any("records no dose" in w and DOSE_OPTION in w for w in _warnings(project, imported.id))
    cleaned = run_step(project, CLEAN, {})
    assert cleaned.status == "SUCCEEDED", cleaned.error
    (series,) = load_tilt_series_set(project.run_dir(cleaned))
    assert len(series.included_tilts) >= series.n_tilts - 2
    aligned = run_step(project, ALIGN, {"working_size_px": 128})
    assert aligned.status == "SUCCEEDED", aligned.error
    (series,) = load_tilt_series_set(project.run_dir(aligned))
    assert all(t.alignment is not None for t in series.included_tilts)
    assert not series.dose_known
