"""The import step on real mdoc files, checked against what RELION 5 wrote for the same series."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from movie_files import sub_frame_names, write_movie, write_movies_for

from tomoprep.execution import run_step
from tomoprep.io.star import read_star
from tomoprep.project import init_project
from tomoprep.steps.import_ import STEP
from tomoprep.steps.tilt_series_set import load_tilt_series_set

EMPIAR_10164 = "alisterburt-tomo_preprocessing/TS_01.mrc.mdoc"
RELION_IMPORT = "tomobabel-cets-relion/relion5_project/Import/job001"
#: The options of RELION's own import job (Import/job001/job.star).
RELION_OPTIONS = {
    "pixel_spacing_angstrom": 0.675,
    "tilt_axis_angle_deg": 85.0,
    "dose_per_tilt_e_per_angstrom2": 3.0,
    "voltage_kv": 300.0,
    "cs_mm": 2.7,
    "amplitude_contrast": 0.1,
    "optics_group_name": "optics1",
}


@pytest.fixture
def project(tmp_path: Path):
    with init_project(tmp_path / "project") as proj:
        yield proj


@pytest.fixture
def session(tmp_path: Path, real_data: Path) -> Path:
    """EMPIAR-10164 TS_01: its real mdoc and one tiny real movie per SubFramePath."""
    folder = tmp_path / "session"
    (folder / "mdoc").mkdir(parents=True)
    text = (real_data / EMPIAR_10164).read_text()
    shutil.copy(real_data / EMPIAR_10164, folder / "mdoc" / "TS_01.mrc.mdoc")
    write_movies_for(text, folder / "frames")
    return folder


def _import(project, session: Path, **overrides):
    params = {"mdoc": str(session / "mdoc" / "*.mdoc"), "movies": session / "frames", **overrides}
    return run_step(project, STEP, params)


def test_import_reproduces_relion5_import_of_empiar_10164(project, session: Path, real_data: Path) -> None:
    run = _import(project, session, **RELION_OPTIONS)
    assert run.status == "SUCCEEDED", run.error
    ours = read_star(project.run_dir(run) / "tilt_series" / "TS_01.star")["TS_01"]
    relion = read_star(real_data / RELION_IMPORT / "tilt_series" / "TS_01.star")["TS_01"]
    assert len(ours) == len(relion) == 41
    assert [Path(p).name for p in ours["rlnMicrographMovieName"]] == [
        Path(p).name for p in relion["rlnMicrographMovieName"]
    ]
    for label in (
        "rlnTomoNominalStageTiltAngle",
        "rlnTomoNominalTiltAxisAngle",
        "rlnMicrographPreExposure",
        "rlnTomoNominalDefocus",
        "rlnTomoTiltMovieFrameCount",
    ):
        np.testing.assert_allclose(ours[label].to_numpy(float), relion[label].to_numpy(float), atol=1e-6, err_msg=label)
    ours_set = read_star(project.run_dir(run) / "tilt_series.star")["global"].iloc[0]
    relion_set = read_star(real_data / RELION_IMPORT / "tilt_series.star")["global"].iloc[0]
    for label in (
        "rlnTomoName",
        "rlnVoltage",
        "rlnSphericalAberration",
        "rlnAmplitudeContrast",
        "rlnMicrographOriginalPixelSize",
        "rlnTomoHand",
        "rlnOpticsGroupName",
    ):
        assert ours_set[label] == relion_set[label], label


def test_pre_exposure_from_mdoc_doses_starts_at_zero_where_relion_does_not(project, session: Path) -> None:
    """RELION's mdoc path sums ExposureDose inclusively, so its first tilt has its own dose as pre-exposure.

    The dose a tilt received *before* it was recorded is the sum over the tilts acquired earlier: 0 for the
    first. With ExposureDose = 3 in the mdoc the result must equal the 3 e/Å² override above.
    """
    mdoc = session / "mdoc" / "TS_01.mrc.mdoc"
    mdoc.write_bytes(mdoc.read_bytes().replace(b"ExposureDose = 0\r", b"ExposureDose = 3\r"))
    run = _import(project, session, pixel_spacing_angstrom=0.675)
    ts = load_tilt_series_set(project.run_dir(run))[0]
    by_order = sorted(ts.tilts, key=lambda t: t.acquisition.acquisition_index)
    assert by_order[0].acquisition.pre_exposure_e_per_angstrom2 == 0.0
    assert [t.acquisition.pre_exposure_e_per_angstrom2 for t in by_order] == [3.0 * i for i in range(41)]
    relion_mdoc_path_first = 3.0  # cumsum(ExposureDose)[0]
    assert by_order[0].acquisition.pre_exposure_e_per_angstrom2 != relion_mdoc_path_first


def test_mdoc_without_dose_imports_with_the_dose_unknown_and_a_warning(project, session: Path) -> None:
    """EMPIAR-10164's mdoc has ExposureDose 0 and no PriorRecordDose: the dose is unknown, not 0."""
    run = _import(project, session, pixel_spacing_angstrom=0.675)
    assert run.status == "SUCCEEDED", run.error
    (series,) = load_tilt_series_set(project.run_dir(run))
    assert not series.dose_known
    records = [t.acquisition for t in series.tilts]
    assert all(a.dose_e_per_angstrom2 is None and a.pre_exposure_e_per_angstrom2 is None for a in records)
    table = read_star(project.run_dir(run) / "tilt_series" / "TS_01.star")["TS_01"]
    assert table["rlnMicrographPreExposure"].isna().all() and table["tpExposureDose"].isna().all()
    warnings = [m for _, level, _, m in project.events(run.id) if level == "WARNING"]
    assert len(warnings) == 1
    assert "TS_01.mrc.mdoc" in warnings[0] and "--dose-per-tilt-e-per-angstrom2" in warnings[0]


def test_tilt_axis_from_mdoc_title_and_override_beats_it(project, session: Path) -> None:
    from_mdoc = _import(project, session, pixel_spacing_angstrom=0.675, dose_per_tilt_e_per_angstrom2=3)
    ts = load_tilt_series_set(project.run_dir(from_mdoc))[0]
    assert ts.nominal_tilt_axis_angle_deg == 85.3
    overridden = _import(
        project,
        session,
        pixel_spacing_angstrom=0.675,
        dose_per_tilt_e_per_angstrom2=3,
        tilt_axis_angle_deg=-95.0,
    )
    ts = load_tilt_series_set(project.run_dir(overridden))[0]
    assert ts.nominal_tilt_axis_angle_deg == -95.0
    assert overridden.params["tilt_axis_angle_deg"] == -95.0
    assert from_mdoc.params["tilt_axis_angle_deg"] is None


def test_one_axis_per_series_and_a_warning_when_the_mdoc_tilts_disagree(project, session: Path) -> None:
    mdoc = session / "mdoc" / "TS_01.mrc.mdoc"
    text = mdoc.read_text()
    mdoc.write_text(text.replace("RotationAngle = 175.3", "RotationAngle = 172.0", 3))
    run = _import(project, session, pixel_spacing_angstrom=0.675, dose_per_tilt_e_per_angstrom2=3)
    assert run.status == "SUCCEEDED", run.error
    (ts,) = load_tilt_series_set(project.run_dir(run))
    assert ts.nominal_tilt_axis_angle_deg == 85.3  # the title line's, for every tilt
    table = read_star(project.run_dir(run) / "tilt_series" / "TS_01.star")["TS_01"]
    assert set(table["rlnTomoNominalTiltAxisAngle"]) == {85.3}
    warnings = [m for _, level, _, m in project.events(run.id) if level == "WARNING"]
    assert any("3 of 41 tilts' RotationAngle give another tilt axis" in m and "82.00°" in m for m in warnings)
    given = _import(project, session, pixel_spacing_angstrom=0.675, dose_per_tilt_e_per_angstrom2=3,
                    tilt_axis_angle_deg=85.0)  # fmt: skip
    assert not [m for _, level, _, m in project.events(given.id) if level == "WARNING"]


def test_binned_mdoc_pixel_spacing_is_not_taken_for_the_movies(project, session: Path) -> None:
    run = _import(project, session, dose_per_tilt_e_per_angstrom2=3)
    assert run.status == "FAILED"
    assert "--pixel-spacing-angstrom" in (run.units["TS_01"].error or "")


def test_missing_movie_fails_its_series_and_the_others_import(project, session: Path) -> None:
    second = session / "mdoc" / "TS_02.mrc.mdoc"
    second.write_text((session / "mdoc" / "TS_01.mrc.mdoc").read_text().replace("TS_01_", "TS_02_"))
    write_movies_for(second.read_text(), session / "frames")
    missing = session / "frames" / "TS_02_005_9.0.mrc"
    missing.unlink()
    run = _import(project, session, **RELION_OPTIONS)
    assert run.status == "SUCCEEDED"
    assert run.units["TS_01"].status == "SUCCEEDED"
    error = run.units["TS_02"].error or ""
    assert run.units["TS_02"].status == "FAILED"
    assert "TS_02_005_9.0.mrc" in error and "TS_02.mrc.mdoc" in error and "--movies" in error
    assert [ts.name for ts in load_tilt_series_set(project.run_dir(run))] == ["TS_01"]


def test_missing_movie_can_exclude_the_tilt_instead(project, session: Path) -> None:
    (session / "frames" / "TS_01_005_9.0.mrc").unlink()
    run = _import(project, session, on_bad_movie="exclude", **RELION_OPTIONS)
    ts = load_tilt_series_set(project.run_dir(run))[0]
    assert ts.n_tilts == 41
    excluded = [t for t in ts.tilts if t.excluded]
    assert len(excluded) == 1 and excluded[0].acquisition.section_index == 5
    assert "TS_01_005_9.0.mrc" in excluded[0].exclusion.reason


def test_truncated_movie_is_named(project, session: Path) -> None:
    movie = session / "frames" / "TS_01_010_-15.0.mrc"
    movie.write_bytes(movie.read_bytes()[:-100])
    run = _import(project, session, **RELION_OPTIONS)
    assert run.status == "FAILED"
    assert "TS_01_010_-15.0.mrc" in (run.units["TS_01"].error or "")


def test_malformed_mdoc_fails_alone(project, session: Path) -> None:
    (session / "mdoc" / "TS_09.mrc.mdoc").write_text("this is not an mdoc\n[ZValue = 0\nTiltAngle = x\n")
    run = _import(project, session, **RELION_OPTIONS)
    assert run.units["TS_01"].status == "SUCCEEDED"
    failed = [u for u in run.units.values() if u.status == "FAILED"]
    assert len(failed) == 1 and "TS_09.mrc.mdoc" in (failed[0].error or "")


def test_movie_names_never_collide_on_dotted_angles(project, tmp_path: Path) -> None:
    mdoc = tmp_path / "TS_05.mdoc"
    sections = []
    for z, (angle, name) in enumerate([(0.0, "TS_05_001_3.0.mrc"), (3.0, "TS_05_001_3.mrc")]):
        sections.append(
            f"[ZValue = {z}]\nTiltAngle = {angle}\nExposureDose = 2\nPixelSpacing = 1.5\n"
            f"SubFramePath = X:\\data\\{name}\nNumSubFrames = {4 + z}\n"
            f"DateTime = 01-Jan-24  10:00:0{z}\n"
        )
    mdoc.write_text(
        "PixelSpacing = 1.5\nVoltage = 200\n\n[T =     Tilt axis angle = -84.7, binning = 1]\n\n" + "\n".join(sections)
    )
    write_movie(tmp_path / "TS_05_001_3.0.mrc", n_frames=4)
    write_movie(tmp_path / "TS_05_001_3.mrc", n_frames=5)
    run = run_step(project, STEP, {"mdoc": str(mdoc)})
    assert run.status == "SUCCEEDED", run.error
    ts = load_tilt_series_set(project.run_dir(run))[0]
    assert [(t.acquisition.movie_path.name, t.acquisition.frame_count) for t in ts.tilts] == [
        ("TS_05_001_3.0.mrc", 4),
        ("TS_05_001_3.mrc", 5),
    ]
    assert ts.optics.voltage_kv == 200 and ts.nominal_tilt_axis_angle_deg == -84.7
    assert [t.acquisition.pre_exposure_e_per_angstrom2 for t in ts.tilts] == [0.0, 2.0]


def test_contradictory_pixel_sizes_are_an_error(project, tmp_path: Path) -> None:
    mdoc = tmp_path / "TS_07.mdoc"
    mdoc.write_text(
        "PixelSpacing = 1.5\n\n[T =     Tilt axis angle = 85, binning = 1]\n\n"
        "[ZValue = 0]\nTiltAngle = 0\nExposureDose = 2\nPixelSpacing = 1.5\nSubFramePath = a.mrc\n\n"
        "[ZValue = 1]\nTiltAngle = 3\nExposureDose = 2\nPixelSpacing = 2.1\nSubFramePath = b.mrc\n"
    )
    write_movie(tmp_path / "a.mrc")
    write_movie(tmp_path / "b.mrc")
    run = run_step(project, STEP, {"mdoc": str(mdoc)})
    error = run.units["TS_07"].error or ""
    assert "TS_07.mdoc" in error and "1.5" in error and "2.1" in error and "--pixel-spacing-angstrom" in error
    fixed = run_step(project, STEP, {"mdoc": str(mdoc), "pixel_spacing_angstrom": 1.5})
    assert fixed.status == "SUCCEEDED"


def test_movie_header_contradicting_mdoc_pixel_size_is_an_error(project, tmp_path: Path) -> None:
    mdoc = tmp_path / "TS_08.mdoc"
    mdoc.write_text(
        "PixelSpacing = 1.5\n\n[T =     Tilt axis angle = 85, binning = 1]\n\n"
        "[ZValue = 0]\nTiltAngle = 0\nExposureDose = 2\nSubFramePath = a.mrc\n"
    )
    write_movie(tmp_path / "a.mrc", voxel_size=0.8)
    run = run_step(project, STEP, {"mdoc": str(mdoc)})
    assert "a.mrc" in (run.units["TS_08"].error or "") and "0.8" in (run.units["TS_08"].error or "")


def test_frame_set_mdocs_keep_gain_and_frame_count_per_tilt(project, tmp_path: Path) -> None:
    gains = {}
    for k, gain_name in enumerate(["gainA.mrc", "gainB.mrc"]):
        gains[k] = write_movie(tmp_path / gain_name, n_frames=1)
    for z in range(4):
        name = f"TS_03_{z:03d}_{3 * z}.0.mrc"
        (tmp_path / f"{name}.mdoc").write_text(
            "T = SerialEM: test scope\nVoltage = 300\n\n[FrameSet = 0]\n"
            f"GainReference = {gains[z // 2].name}\nTiltAngle = {3.0 * z}\nExposureDose = 2.5\nPixelSpacing = 1.2\n"
            f"RotationAngle = 175\nSubFramePath = D:\\frames\\{name}\nNumSubFrames = {6 + z}\n"
            f"DateTime = 01-Jan-24  10:00:{10 + z}\n"
        )
        write_movie(tmp_path / name, n_frames=6 + z)
    run = run_step(project, STEP, {"mdoc": str(tmp_path / "*.mdoc")})
    assert run.status == "SUCCEEDED", run.error
    (ts,) = load_tilt_series_set(project.run_dir(run))
    assert ts.name == "TS_03" and ts.n_tilts == 4
    assert [t.acquisition.frame_count for t in ts.tilts] == [6, 7, 8, 9]
    assert [t.acquisition.gain.path.name for t in ts.tilts] == ["gainA.mrc", "gainA.mrc", "gainB.mrc", "gainB.mrc"]
    assert math.isclose(ts.nominal_tilt_axis_angle_deg, 85.0)


def test_movie_mdocs_whose_numbers_run_on_import_as_two_series_with_a_warning(project, tmp_path: Path) -> None:
    """One root name for two series (SerialEM numbers on): cut where a tilt angle comes back, and said so."""
    for n, angle in enumerate([0.0, 3.0, -3.0, 0.0, 3.0, -3.0], start=1):
        name = f"lamella_{n:05d}_{angle:.1f}.mrc"
        (tmp_path / f"{name}.mdoc").write_text(
            "T = SerialEM: test scope\nVoltage = 300\n\n[FrameSet = 0]\n"
            f"TiltAngle = {angle + 0.02}\nExposureDose = 2.5\nPixelSpacing = 1.2\nRotationAngle = 175\n"
            f"SubFramePath = D:\\frames\\{name}\nNumSubFrames = 6\nDateTime = 01-Jan-24  10:{n:02d}:00\n"
        )
        write_movie(tmp_path / name, n_frames=6)
    run = run_step(project, STEP, {"mdoc": str(tmp_path / "*.mdoc")})
    assert run.status == "SUCCEEDED", run.error
    series = load_tilt_series_set(project.run_dir(run))
    assert [(ts.name, ts.n_tilts) for ts in series] == [("lamella_1", 3), ("lamella_2", 3)]
    warnings = [(unit, m) for _, level, unit, m in project.events(run.id) if level == "WARNING"]
    assert sorted(unit for unit, _ in warnings) == ["lamella_1", "lamella_2"]
    assert all("same tilt angles" in m for _, m in warnings)


def test_every_override_is_recorded_and_applied(project, session: Path) -> None:
    run = _import(project, session, **{**RELION_OPTIONS, "voltage_kv": 200.0, "cs_mm": 2.0, "amplitude_contrast": 0.07})
    ts = load_tilt_series_set(project.run_dir(run))[0]
    assert (ts.optics.voltage_kv, ts.optics.spherical_aberration_mm, ts.optics.amplitude_contrast) == (
        200,
        2.0,
        0.07,
    )
    assert run.params["voltage_kv"] == 200.0 and run.params["cs_mm"] == 2.0
    first_movie = ts.tilts[0].acquisition.movie_path
    assert sub_frame_names((session / "mdoc" / "TS_01.mrc.mdoc").read_text())[0] == first_movie.name


def test_import_runs_in_worker_processes(project, session: Path) -> None:
    from tomoprep.execution import local_executor

    with local_executor(2) as executor:
        run = run_step(
            project,
            STEP,
            {"mdoc": str(session / "mdoc" / "*.mdoc"), "movies": session / "frames", **RELION_OPTIONS},
            executor=executor,
        )
    assert run.status == "SUCCEEDED", run.error
    assert load_tilt_series_set(project.run_dir(run))[0].n_tilts == 41


def test_series_imports_only_the_series_named_and_a_name_not_there_fails_saying_so(project, session: Path) -> None:
    text = (session / "mdoc" / "TS_01.mrc.mdoc").read_text()
    (session / "mdoc" / "TS_02.mrc.mdoc").write_text(text.replace("TS_01", "TS_02"))
    write_movies_for(text.replace("TS_01", "TS_02"), session / "frames")
    run = _import(project, session, series=["TS_02", "TS_09"], **RELION_OPTIONS)
    assert run.units["TS_02"].status == "SUCCEEDED" and "TS_01" not in run.units, run.units["TS_02"].error
    error = run.units["TS_09"].error or ""
    assert run.units["TS_09"].status == "FAILED" and "'TS_09'" in error and "TS_01, TS_02" in error
    assert [ts.name for ts in load_tilt_series_set(project.run_dir(run))] == ["TS_02"]
