"""Motion correction on simulated sessions with known trajectories, gains and frame counts."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from tomoprep.errors import StepError
from tomoprep.execution import run_step
from tomoprep.io.eer_groups import eer_frames_per_group
from tomoprep.io.mrc import read_mrc, read_mrc_header
from tomoprep.io.relion_motion import read_motion_shifts
from tomoprep.io.star import read_star
from tomoprep.project import init_project
from tomoprep.simulate.params import SimulateParams
from tomoprep.simulate.session import simulate_session
from tomoprep.steps import get_step
from tomoprep.steps.tilt_series_set import load_tilt_series_set

IMPORT, MOTIONCORR = get_step("import"), get_step("motioncorr")


def _session(folder: Path, **options: object) -> dict:
    simulate_session(folder, SimulateParams.model_validate({"preset": "tiny", **options}))
    return json.loads((folder / "truth.json").read_text())


def _ten_frame_session(folder: Path, **options: object) -> dict:
    """Three tilt movies 20° apart of 10 frames each (detector, pixels, dose and motion as ``options`` say), the
    sessions of the precision tests; returns the truth."""
    return _session(folder, frames_per_tilt=10, n_tilts=3, tilt_step_deg=20, **options)


def _imported(tmp_path: Path, session: Path, **options: object):
    project = init_project(tmp_path / "project")
    run = run_step(project, IMPORT, {"mdoc": str(session / "*.mdoc"), "movies": session / "frames", **options})
    assert run.status == "SUCCEEDED", run.error
    return project


def _trajectory_errors_px(truth: dict, run_dir: Path) -> list[np.ndarray]:
    errors = []
    for series in truth["tilt_series"]:
        spacing = series["pixel_spacing_angstrom"]
        for tilt in series["tilts"]:
            stem = Path(tilt["movie"]).name.rsplit(".", 1)[0]
            # RELION's sign: the listed shift aligns the frame, the content moved the other way.
            estimated = -read_motion_shifts(run_dir / series["name"] / f"{stem}.star")
            true = np.array(tilt["trajectory_angstrom"]) / spacing
            # Both are relative to a reference frame of their own choice: compare about the mean.
            errors.append((estimated - estimated.mean(0)) - (true - true.mean(0)))
    return errors


def _rms_px(trajectory_px: np.ndarray) -> float:
    """RMS length about their mean of ``(n, 2)`` shifts or errors."""
    centred = trajectory_px - trajectory_px.mean(axis=0)
    return float(np.sqrt((centred**2).sum(axis=1).mean()))


@pytest.mark.slow  # 1024² movies; the quick tier checks this precision in test_motion.py
def test_global_trajectories_within_a_tenth_of_a_pixel_at_tomography_dose(tmp_path: Path) -> None:
    """3 e/Å² per tilt over 10 frames at 2 Å/px (1.2 e/px per frame), 1024² movies."""
    session = tmp_path / "session"
    truth = _ten_frame_session(
        session, detector_size_px=1024, pixel_spacing_angstrom=2.0, dose_per_tilt_e_per_angstrom2=3.0, seed=11
    )
    project = _imported(tmp_path, session)
    run = run_step(project, MOTIONCORR, {"local_motion": False})
    assert run.status == "SUCCEEDED", run.error
    errors = np.concatenate(_trajectory_errors_px(truth, project.run_dir(run)))
    rms = float(np.sqrt((errors**2).sum(axis=1).mean()))
    assert rms <= 0.1, f"trajectory RMS error {rms:.3f} px"


def _jittery_session(session: Path, *, detector_size_px: int, seed: int) -> dict:
    """Three tilt movies of 10 frames at 3.8 e/Å² (1.1 e/px per frame at 1.7 Å) whose motion jitters by a random
    walk of 1 Å per axis and frame on top of the settling and drift; returns the truth."""
    return _ten_frame_session(
        session,
        detector_size_px=detector_size_px,
        pixel_spacing_angstrom=1.7,
        dose_per_tilt_e_per_angstrom2=3.8,
        jitter_step_angstrom=1.0,
        seed=seed,
    )


@pytest.mark.slow
def test_jittery_trajectories_are_followed_on_simulated_tilt_movies(tmp_path: Path) -> None:
    """2048² TIFF movies of 10 frames at 1.1 e/px per frame whose motion jitters by a random walk of about
    0.8 px per frame (1 Å per axis at 1.7 Å/px) on top of the settling and drift."""
    session = tmp_path / "session"
    truth = _jittery_session(session, detector_size_px=2048, seed=12)
    project = _imported(tmp_path, session)
    run = run_step(project, MOTIONCORR, {"local_motion": False, "odd_even": False, "dose_weighting": False})
    assert run.status == "SUCCEEDED", run.error
    errors = _trajectory_errors_px(truth, project.run_dir(run))
    rms = [float(np.sqrt((error**2).sum(axis=1).mean())) for error in errors]
    # measured 0.014-0.016 px per movie, refined on the movies themselves (on 1024² copies only: 0.035-0.047; the
    # third-order smoother of before: 0.19-0.36)
    assert max(rms) <= 0.05, rms


@pytest.mark.slow
def test_binned_estimate_is_refined_where_the_movies_hold_finer_detail(tmp_path: Path) -> None:
    """1024² jittery tilt movies (1.1 e/px per frame) estimated on copies binned to 512²: their contrast transfer
    reaches past the copies' Nyquist frequency, so the estimate is refined on the movies themselves, unless told
    not to (``refinement_size_px = 0``)."""
    session = tmp_path / "session"
    truth = _jittery_session(session, detector_size_px=1024, seed=13)
    project = _imported(tmp_path, session)
    rms = {}
    for refinement in (0, 2048):
        options = {"alignment_size_px": 512, "refinement_size_px": refinement, "local_motion": False}
        run = run_step(project, MOTIONCORR, {**options, "odd_even": False, "dose_weighting": False})
        assert run.status == "SUCCEEDED", run.error
        errors = _trajectory_errors_px(truth, project.run_dir(run))
        rms[refinement] = [float(np.sqrt((error**2).sum(axis=1).mean())) for error in errors]
    # measured per movie: 0.049-0.078 px on the copies binned to 512², 0.029-0.037 px refined (RMS over the
    # movies 0.061 and 0.033 px); one movie's error, a few samples of noise, can fall less than the others'
    assert max(rms[2048]) <= 0.05, rms
    pooled = {size: float(np.sqrt(np.mean(np.square(errors)))) for size, errors in rms.items()}
    assert pooled[2048] < 0.7 * pooled[0], rms


def test_movies_without_a_credible_peak_are_summed_unmoved_and_logged(tmp_path: Path) -> None:
    """0.05 e/Å² per tilt: no group's correlation peak stands above the noise of its map."""
    session = tmp_path / "session"
    _session(session, n_tilts=2, detector_size_px=128, dose_per_tilt_e_per_angstrom2=0.05, seed=1)
    project = _imported(tmp_path, session)
    run = run_step(project, MOTIONCORR, {"local_motion": False})
    assert run.status == "SUCCEEDED", run.error
    log = (project.run_dir(run) / "log.txt").read_text()
    assert log.count("no group has a credible correlation peak") == 2 and "credible from 8" in log
    (ts,) = load_tilt_series_set(project.run_dir(run))
    assert all(t.motion.accumulated_motion_angstrom == (0.0, 0.0, 0.0) for t in ts.tilts)


@pytest.mark.slow
def test_low_dose_tilt_movies_are_not_moved_by_imprecise_peaks(tmp_path: Path) -> None:
    """0.2 e/Å² per tilt on 256² movies at 4 Å (0.5 e/px per frame, the B-factor weighs frequencies up to Nyquist
    that the signal hardly reaches): most peaks are 5-8 noise standard deviations high and off by 3-5 times their
    σ, so they must not move their frames; the trajectories stay about as far from the truth as none at all."""
    estimated, unmoved = [], []
    for seed in (1, 2):
        session = tmp_path / f"session{seed}"
        truth = _session(session, dose_per_tilt_e_per_angstrom2=0.2, seed=seed)
        project = _imported(tmp_path / f"project{seed}", session)
        run = run_step(project, MOTIONCORR, {"local_motion": False, "odd_even": False, "dose_weighting": False})
        assert run.status == "SUCCEEDED", run.error
        estimated += [_rms_px(error) for error in _trajectory_errors_px(truth, project.run_dir(run))]
        for series in truth["tilt_series"]:
            spacing = series["pixel_spacing_angstrom"]
            unmoved += [_rms_px(np.array(tilt["trajectory_angstrom"]) / spacing) for tilt in series["tilts"]]
    # measured: 0.27 px against 0.25 px unmoved (mean of 22 movies); with 6 noise standard deviations enough near
    # the trajectory whatever the maps: 0.80 px
    assert np.mean(estimated) <= np.mean(unmoved) + 0.05, (estimated, unmoved)


def test_motion_notes_name_the_groups_interpolated_and_why() -> None:
    import torch

    from tomoprep.algorithms.motion import GlobalMotion
    from tomoprep.steps.motioncorr.movie import motion_notes

    sigma = torch.full((6, 2), 0.02)
    sigma[[0, 4]] = float("inf")
    significance = torch.tensor([3.2, 40.0, 41.0, 39.0, 5.5, 40.0])
    (note,) = motion_notes(GlobalMotion(torch.zeros(6, 2), sigma, significance))
    assert note.startswith("groups 1, 5 of 6: no credible correlation peak") and "3.2, 5.5" in note
    assert "interpolated from the other groups' motion" in note
    assert motion_notes(GlobalMotion(torch.zeros(6, 2), torch.full((6, 2), 0.02), significance)) == ()


def test_search_is_bounded_by_the_largest_shift(tmp_path: Path) -> None:
    session = tmp_path / "session"
    _session(session, n_tilts=2, detector_size_px=128, seed=5)
    project = _imported(tmp_path, session)
    run = run_step(project, MOTIONCORR, {"local_motion": False, "max_shift_angstrom": 2.0})
    assert run.status == "SUCCEEDED", run.error
    for star in project.run_dir(run).glob("TS_01/*.star"):
        shifts = read_motion_shifts(star) * 4.0  # Å (4 Å pixels), about the frames' mean position
        assert float(np.abs(shifts).max()) <= 2.0 + 1e-3


def test_outputs_labels_odd_even_and_pixel_size(tmp_path: Path) -> None:
    session = tmp_path / "session"
    _session(session, seed=2, n_tilts=3, detector_size_px=128)
    project = _imported(tmp_path, session)
    run = run_step(project, MOTIONCORR, {"output_binning": 2.0})
    assert run.status == "SUCCEEDED", run.error
    folder = project.run_dir(run)
    (ts,) = load_tilt_series_set(folder)
    assert ts.tilt_series_pixel_spacing_angstrom == pytest.approx(ts.original_pixel_spacing_angstrom * 2)
    table = read_star(folder / "tilt_series" / f"{ts.name}.star")[ts.name]
    for label in (
        "rlnMicrographName",
        "rlnMicrographNameOdd",
        "rlnMicrographNameEven",
        "rlnMicrographMetadata",
        "rlnAccumMotionTotal",
        "rlnAccumMotionEarly",
        "rlnAccumMotionLate",
    ):
        assert label in table.columns, label
    assert "rlnTomoTiltSeriesPixelSize" in read_star(folder / "tilt_series.star")["global"].columns
    tilt = ts.tilts[0].motion
    assert tilt is not None and tilt.micrograph_odd_path and tilt.micrograph_even_path
    total, odd, even = (
        read_mrc(p) for p in (tilt.micrograph_path, tilt.micrograph_odd_path, tilt.micrograph_even_path)
    )
    assert total.shape == (64, 64)
    np.testing.assert_allclose(odd + even, total, rtol=1e-4, atol=1e-3 * float(np.abs(total).mean()))
    assert read_mrc_header(tilt.micrograph_path).pixel_spacing_angstrom == pytest.approx(
        ts.tilt_series_pixel_spacing_angstrom, rel=1e-4
    )
    assert tilt.micrograph_dose_weighted_path is not None and tilt.micrograph_dose_weighted_path.is_file()
    total_motion, early, late = tilt.accumulated_motion_angstrom or (0, 0, 0)
    assert total_motion == pytest.approx(early + late, rel=1e-6) and total_motion > 0
    assert (folder / ts.name / f"{ts.name}_motion.png").stat().st_size > 5000


@pytest.mark.slow  # EER movies of several frame counts through motion correction: 5 s
def test_eer_groups_follow_each_tilts_frame_count(tmp_path: Path) -> None:
    """Two gain references with different frame counts in one session: each tilt gets its own grouping."""
    session = tmp_path / "session"
    truth = _session(
        session,
        movie_format="eer",
        two_gain_references=True,
        n_tilt_series=2,
        n_tilts=2,
        detector_size_px=128,
        pixel_spacing_angstrom=1.5,
        frames_per_tilt=200,
        seed=4,
    )
    project = _imported(tmp_path, session)
    run = run_step(project, MOTIONCORR, {"local_motion": False})
    assert run.status == "SUCCEEDED", run.error
    counts = set()
    for series in truth["tilt_series"]:
        for tilt in series["tilts"]:
            stem = Path(tilt["movie"]).name.rsplit(".", 1)[0]
            general = read_star(project.run_dir(run) / series["name"] / f"{stem}.star")["general"].iloc[0]
            n = eer_frames_per_group(
                dose_per_group_e_per_angstrom2=0.5,
                dose_per_tilt_e_per_angstrom2=tilt["dose_e_per_angstrom2"],
                pixel_spacing_angstrom=series["pixel_spacing_angstrom"],
                n_eer_frames=tilt["n_frames"],
            )
            assert int(general["rlnImageSizeZ"]) == tilt["n_frames"] // n
            counts.add(tilt["n_frames"])
    assert len(counts) == 2


def test_wrongly_oriented_gain_is_detected(tmp_path: Path) -> None:
    session = tmp_path / "session"
    _session(session, gain_rotation_deg=90, detector_size_px=256, n_tilts=3, seed=3)
    project = _imported(tmp_path, session, gain_rotation_deg=0)
    wrong = run_step(project, MOTIONCORR, {"local_motion": False})
    log = (project.run_dir(wrong) / "log.txt").read_text()
    assert "WARNING: gain reference" in log and "--gain-rotation-deg 90" in log
    right_import = run_step(
        project, IMPORT, {"mdoc": str(session / "*.mdoc"), "movies": session / "frames", "gain_rotation_deg": 90}
    )
    right = run_step(project, MOTIONCORR, {"local_motion": False}, input_run=right_import.id)
    assert "WARNING: gain reference" not in (project.run_dir(right) / "log.txt").read_text()


def test_movie_with_other_frame_count_than_imported_fails_its_series(tmp_path: Path) -> None:
    session = tmp_path / "session"
    truth = _session(session, seed=6, movie_format="mrc", n_tilts=3, detector_size_px=128)
    project = _imported(tmp_path, session)
    movie = session / truth["tilt_series"][0]["tilts"][2]["movie"]
    import mrcfile

    with mrcfile.open(movie) as mrc:
        frames = mrc.data[:-2].copy()
    with mrcfile.new(movie, overwrite=True) as mrc:
        mrc.set_data(frames)
    run = run_step(project, MOTIONCORR, {"local_motion": False})
    error = run.units["TS_01"].error or ""
    assert run.status == "FAILED" and movie.name in error and "frames" in error


def test_an_imported_stack_is_refused_for_it_has_no_movies(tmp_path: Path) -> None:
    """Motion correction needs movies: a stack import holds tilt images instead, and is no input for it."""
    session = tmp_path / "session"
    _session(session, write_tilt_stack=True, seed=8, n_tilts=3, detector_size_px=128)
    project = init_project(tmp_path / "project")
    imported = run_step(project, IMPORT, {"stack": str(session / "stacks" / "*.st")})
    assert imported.status == "SUCCEEDED", imported.error
    with pytest.raises(StepError, match=r"no successful run holds movies \(001_import holds tilt-series metadata, "):
        run_step(project, MOTIONCORR)
    with pytest.raises(StepError, match="run 001_import holds tilt-series metadata, tilt images, but not movies"):
        run_step(project, MOTIONCORR, input_run=imported.id)
    assert [run.label for run in project.list_runs()] == ["001_import"]


@pytest.mark.slow  # 1024² movies with local motion: the quick tier fits local motion in test_local_motion.py
def test_local_motion_is_recovered_where_the_simulator_applies_it(tmp_path: Path) -> None:
    """A smooth deformation of 8 Å at 3 e/Å² per tilt: the patch model must beat global shifts at the patches."""
    from tomoprep.io.relion_motion import read_local_shifts
    from tomoprep.simulate.frames import LocalMotion

    session = tmp_path / "session"
    truth = _ten_frame_session(
        session, detector_size_px=1024, pixel_spacing_angstrom=2.0, local_motion_angstrom=8.0, seed=7
    )
    project = _imported(tmp_path, session)
    run = run_step(project, MOTIONCORR, {"local_motion": True})
    assert run.status == "SUCCEEDED", run.error
    series = truth["tilt_series"][0]
    spacing, width = series["pixel_spacing_angstrom"], series["detector_shape_yx"][1]
    local_errors, global_errors = [], []
    for tilt in series["tilts"]:
        field = LocalMotion(
            *(
                np.array(tilt["local_motion"][key])
                for key in ("wave_vectors_per_angstrom", "phases_rad", "amplitudes_angstrom", "profile")
            )
        )
        star = project.run_dir(run) / "TS_01" / (Path(tilt["movie"]).name.rsplit(".", 1)[0] + ".star")
        rows, global_shifts = read_local_shifts(star), -read_motion_shifts(star)
        trajectory = np.array(tilt["trajectory_angstrom"]) / spacing
        true, local, plain = [], [], []
        for frame, x, y, shift_x, shift_y in rows:
            f = int(frame) - 1
            offset = (
                field.displacement_angstrom(
                    np.array((x - width // 2) * spacing), np.array((y - width // 2) * spacing), f
                ).ravel()
                / spacing
            )
            true.append(trajectory[f] + offset)
            local.append((-shift_x, -shift_y))
            plain.append(global_shifts[f])
        shape = (len(trajectory), len(rows) // len(trajectory), 2)
        local_errors.append(_about_mean(local, shape) - _about_mean(true, shape))
        global_errors.append(_about_mean(plain, shape) - _about_mean(true, shape))
    rms = [float(np.sqrt((np.concatenate(e) ** 2).sum(-1).mean())) for e in (local_errors, global_errors)]
    assert rms[0] <= 0.6 * rms[1], f"local {rms[0]:.3f} px vs global-only {rms[1]:.3f} px"


def _about_mean(values: list, shape: tuple[int, int, int]) -> np.ndarray:
    """(frames, patches, 2) shifts minus each patch's mean over the frames."""
    array = np.array(values).reshape(shape)
    return array - array.mean(axis=0)


def test_frame_correction_leaves_the_stored_groups_untouched() -> None:
    """Float (MRC) groups are corrected in a buffer of their own: the second pass must see the raw values."""
    import torch

    from tomoprep.algorithms.movie_correction import FrameCorrector

    groups = [np.full((8, 6), 2.0, dtype=np.float32), np.full((8, 6), 3.0, dtype=np.float32)]
    gain = torch.full((8, 6), 1.5)
    defects = torch.zeros(8, 6, dtype=torch.bool)
    defects[3, 3] = True
    groups[0][3, 3] = 100.0
    correct = FrameCorrector((8, 6), gain, defects, torch.device("cpu"))
    first = correct(groups[0]).clone()
    assert torch.allclose(first, torch.full((8, 6), 3.0))  # gain applied, the defect filled from neighbours
    assert torch.allclose(correct(groups[1]), torch.full((8, 6), 4.5))
    assert groups[0][3, 3] == 100.0 and groups[0][0, 0] == 2.0 and groups[1][0, 0] == 3.0


def test_series_defects_find_a_dead_pixel_once_the_summed_counts_allow_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At 5 counts per pixel a never-counting pixel is chance (P(0 | 5) = 7e-3); summed over movies it is not.
    The detection runs again only when the summed counts have grown 3.5-fold, and stops at enough counts."""
    import torch

    from tomoprep.algorithms import movie_correction as motioncorr_movie
    from tomoprep.steps.motioncorr.movie import SeriesDefects
    from tomoprep.steps.motioncorr.params import MotionCorrParams

    calls = []
    detect = motioncorr_movie.detect_defects

    def counted(counts: torch.Tensor, **kwargs: float) -> object:
        calls.append(float(counts.mean()))
        return detect(counts, **kwargs)

    monkeypatch.setattr(motioncorr_movie, "detect_defects", counted)
    rng = np.random.default_rng(4)
    defects = SeriesDefects(MotionCorrParams(), torch.device("cpu"))
    masks, summed = [], []
    for index in range(20):
        movie = rng.poisson(5.0, (256, 256)).astype(np.float32)
        movie[100, 37] = 0.0  # dead
        movie[20, 200] += 40.0  # hot
        masks.append(defects.mask_for(movie.shape, lambda m=movie, i=index: summed.append(i) or m))
    assert masks[0][20, 200] and not masks[0][100, 37]
    assert masks[-1][100, 37] and masks[-1][20, 200]
    assert int(masks[-1].sum()) == 2  # nothing else at 6 sigma
    assert len(calls) == 3  # after movies 1, 4 and 13 (64 counts per pixel: final)
    assert calls[-1] >= 64 and all(b >= 3.5 * a for a, b in itertools.pairwise(calls[:-1]))
    assert masks[-1] is masks[13]  # later movies reuse the final mask
    assert summed == list(range(13))  # and their counts are never summed


def test_sums_are_written_in_the_background_and_their_errors_reach_the_step(tmp_path: Path) -> None:
    from tomoprep.steps.motioncorr.output import SumWriter

    image = np.arange(400 * 300, dtype=np.float32).reshape(400, 300)
    with SumWriter() as writer:
        paths = writer.write(3, {"sum": image, "odd": image / 2}, tmp_path, "TS_01_003", 1.5)
        second = writer.write(4, {"sum": -image}, tmp_path, "TS_01_004", 1.5)
    assert paths == {"sum": tmp_path / "TS_01_003.mrc", "odd": tmp_path / "TS_01_003_ODD.mrc"}
    assert np.array_equal(read_mrc(paths["sum"]), image) and np.array_equal(read_mrc(second["sum"]), -image)
    assert np.array_equal(read_mrc(paths["odd"]), image / 2)
    assert read_mrc_header(paths["sum"]).pixel_spacing_angstrom == pytest.approx(1.5)
    assert set(writer.thumbnails) == {3, 4} and writer.thumbnails[3].shape == (200, 150)
    with pytest.raises(OSError), SumWriter() as failing:
        failing.write(0, {"sum": image}, tmp_path / "no_such_folder", "TS_01_000", 1.5)


@pytest.mark.parametrize(
    "groups",
    [
        [np.full((3, 4), 255, np.uint8)] * 200,  # 51000: past int16
        [np.full((3, 4), 7, np.uint8), np.full((3, 4), 9, np.uint8)],
        [np.full((3, 4), 65535, np.uint16)] * 3,
        [np.full((3, 4), 1.5, np.float32)] * 4,
    ],
)
def test_counts_sum_is_exact_whatever_the_count_type(groups: list[np.ndarray]) -> None:
    from tomoprep.algorithms.movie_correction import counts_sum

    total = counts_sum(groups)
    assert total.dtype == np.float32
    assert np.array_equal(total, sum(group.astype(np.float64) for group in groups))
