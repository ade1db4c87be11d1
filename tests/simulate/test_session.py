"""Whole simulated sessions: files a microscope could have written, imported by tomoprep, equal to their truth."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile
from pydantic import ValidationError

from tomoprep.errors import InputError
from tomoprep.execution import run_step
from tomoprep.io.gain import apply_gain, read_gain
from tomoprep.io.movies import read_movie, read_movie_header
from tomoprep.io.mrc import read_mrc
from tomoprep.project import init_project
from tomoprep.simulate.params import SimulateParams
from tomoprep.simulate.session import simulate_session, write_gain_file
from tomoprep.simulate.truth import Truth, read_truth
from tomoprep.steps.import_ import STEP
from tomoprep.steps.tilt_series_set import load_tilt_series_set

SMALL = {"preset": "tiny", "detector_size_px": 96, "n_tilts": 5, "frames_per_tilt": 3}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Truth]:
    """The tiny preset as ``tomoprep simulate`` writes it."""
    out = tmp_path_factory.mktemp("tiny") / "session"
    return out, simulate_session(out, SimulateParams(preset="tiny", seed=4))


@pytest.fixture
def project(tmp_path: Path):
    with init_project(tmp_path / "project") as proj:
        yield proj


def _import(project, params: dict) -> list:
    run = run_step(project, STEP, params)
    assert run.status == "SUCCEEDED", [(u.name, u.error) for u in run.units.values()]
    return load_tilt_series_set(project.run_dir(run))


def test_tiny_session_files(tiny: tuple[Path, Truth]) -> None:
    out, truth = tiny
    assert sorted(p.name for p in out.iterdir()) == [
        "TS_01.mrc.mdoc", "contact_sheet_TS_01.png", "frames", "gain_A.mrc", "truth", "truth.json",
    ]  # fmt: skip
    series = truth.series("TS_01")
    assert len(series.tilts) == 11 and series.detector_shape_yx == [256, 256]
    assert read_truth(out / "truth.json") == truth
    # Lists of numbers take one line each: a phantom's ten thousand crowders keep the file small.
    crowders = series.phantom["crowders"]["centres_angstrom"]
    assert len(crowders) > 1000 and json.dumps(crowders[0]) in (out / "truth.json").read_text()
    for tilt in series.tilts:
        header = read_movie_header(out / tilt.movie)
        assert header.n_frames == tilt.n_frames == 6 and header.shape_yx == (256, 256)
    png = (out / series.contact_sheet).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    volume = read_mrc(out / series.phantom_volume)
    assert volume.ndim == 3 and volume.max() > 0 and volume.nbytes < 20e6


def test_import_of_tiny_session_equals_truth(tiny: tuple[Path, Truth], project) -> None:
    out, truth = tiny
    (ts,) = _import(project, {"mdoc": str(out / "*.mdoc"), "movies": out / "frames"})
    series = truth.series(ts.name)
    assert ts.n_tilts == len(series.tilts)
    assert ts.original_pixel_spacing_angstrom == series.pixel_spacing_angstrom
    assert ts.optics.voltage_kv == series.voltage_kv
    by_order = sorted(ts.tilts, key=lambda t: t.acquisition.acquisition_index)
    assert ts.nominal_tilt_axis_angle_deg == pytest.approx(series.nominal_tilt_axis_deg)
    for tilt, expected in zip(by_order, series.tilts, strict=True):
        imported = tilt.acquisition
        assert imported.movie_path is not None and imported.movie_path.name == Path(expected.movie).name
        assert imported.frame_count == expected.n_frames
        assert imported.pre_exposure_e_per_angstrom2 == pytest.approx(expected.pre_exposure_e_per_angstrom2)
        assert imported.dose_e_per_angstrom2 == pytest.approx(expected.dose_e_per_angstrom2)
        assert imported.nominal_tilt_angle_deg == pytest.approx(expected.nominal_tilt_deg, abs=1e-5)
        assert imported.nominal_defocus_angstrom == pytest.approx(series.target_defocus_angstrom)
        assert imported.gain is not None and imported.gain.path.name == truth.gain(expected.gain).file


def test_frame_sum_mean_is_dose_times_ice_transmission(tiny: tuple[Path, Truth]) -> None:
    out, truth = tiny
    series = truth.series("TS_01")
    gain = truth.gain(series.gain)
    for tilt in (series.tilt(0), max(series.tilts, key=lambda t: abs(t.true_tilt_deg))):
        corrected = apply_gain(read_movie(out / tilt.movie), read_gain(out / gain.file)).sum(axis=0)
        good = np.ones(corrected.shape, dtype=bool)
        for y, x in gain.hot_pixels_yx + gain.dead_pixels_yx:
            good[y, x] = False
        path = series.thickness_angstrom / math.cos(math.radians(tilt.true_tilt_deg))
        expected = tilt.dose_e_per_angstrom2 * series.pixel_spacing_angstrom**2 * math.exp(-path / 3500.0)
        # Exact for a flat image (test_frames); here the specimen's amplitude contrast (A = 0.07 of a mean
        # projected phase of a few tenths of a radian) darkens the mean by a few percent.
        assert corrected[good].mean() == pytest.approx(expected, rel=0.06)


def test_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        simulate_session(tmp_path, SimulateParams(**SMALL))


@pytest.mark.slow  # two sessions simulated and compared file by file
def test_same_seed_same_session(tmp_path: Path) -> None:
    params = SimulateParams(**{**SMALL, "n_tilts": 2, "detector_size_px": 64})
    first = simulate_session(tmp_path / "a", params)
    again = simulate_session(tmp_path / "b", params)
    other = simulate_session(tmp_path / "c", params.model_copy(update={"seed": 1}))
    assert first == again and first != other
    for tilt in first.tilt_series[0].tilts:
        assert (tmp_path / "a" / tilt.movie).read_bytes() == (tmp_path / "b" / tilt.movie).read_bytes()


def test_two_gain_references_split_the_session(tmp_path: Path, project) -> None:
    out = tmp_path / "session"
    params = SimulateParams(**{**SMALL, "n_tilts": 3}, n_tilt_series=2, two_gain_references=True)
    truth = simulate_session(out, params)
    assert [g.file for g in truth.gains] == ["gain_A.mrc", "gain_B.mrc"]
    imported = {ts.name: ts for ts in _import(project, {"mdoc": str(out / "*.mdoc"), "movies": out / "frames"})}
    for series in truth.tilt_series:
        ts = imported[series.name]
        assert {t.acquisition.gain.path.name for t in ts.tilts if t.acquisition.gain} == {truth.gain(series.gain).file}
        assert {t.acquisition.frame_count for t in ts.tilts} == {t.n_frames for t in series.tilts}
    assert [s.gain for s in truth.tilt_series] == ["A", "B"]
    assert truth.tilt_series[0].tilts[0].n_frames == 3 and truth.tilt_series[1].tilts[0].n_frames == 4


def test_tilt_stack_import_equals_truth(tmp_path: Path, project) -> None:
    out = tmp_path / "session"
    truth = simulate_session(out, SimulateParams(**SMALL, write_tilt_stack=True, tilt_axis_angle_deg=-95.0))
    series = truth.series("TS_01")
    assert series.stack == "stacks/TS_01.st" and (out / "stacks" / "TS_01.rawtlt").is_file()
    (ts,) = _import(project, {"stack": str(out / "stacks" / "*.st")})
    assert ts.tilt_series_pixel_spacing_angstrom == series.pixel_spacing_angstrom
    assert ts.nominal_tilt_axis_angle_deg == pytest.approx(-95.0)
    for tilt in series.tilts:
        (imported,) = [t.acquisition for t in ts.tilts if t.acquisition.section_index == tilt.stack_index]
        assert imported.acquisition_index == tilt.acquisition_index
        # Angles from the .rawtlt, which IMOD writes to 0.01°.
        assert imported.nominal_tilt_angle_deg == pytest.approx(tilt.nominal_tilt_deg, abs=0.0051)
        assert imported.pre_exposure_e_per_angstrom2 == pytest.approx(tilt.pre_exposure_e_per_angstrom2)
    stack = read_mrc(out / series.stack)
    assert stack.shape == (5, 96, 96) and stack.mean() > 0
    # Only the rawtlt and a dose, as for a stack from elsewhere.
    (ts,) = _import(project, {"stack": str(out / "stacks" / "TS_01.st"), "tilt_angles": out / "stacks" / "TS_01.rawtlt",
                              "dose_per_tilt_e_per_angstrom2": 3.0, "tilt_axis_angle_deg": -95.0})  # fmt: skip
    by_section = sorted((t.acquisition for t in ts.tilts), key=lambda a: a.section_index)
    assert [a.nominal_tilt_angle_deg for a in by_section] == pytest.approx(
        sorted(t.nominal_tilt_deg for t in series.tilts), abs=0.0051
    )


def test_tomo5_eer_session_imports_the_true_axis(tmp_path: Path, project) -> None:
    out = tmp_path / "session"
    params = SimulateParams(**{**SMALL, "frames_per_tilt": 40}, movie_format="eer", mdoc_flavour="tomo5",
                            tilt_axis_angle_deg=-95.0, pixel_spacing_angstrom=5.0)  # fmt: skip
    truth = simulate_session(out, params)
    assert "TiltAxisAngle = 5.00" in (out / "TS_01.mrc.mdoc").read_text()  # Tomo5's own -A-90
    (ts,) = _import(project, {"mdoc": str(out / "*.mdoc"), "movies": out / "frames", "gain": out / "gain_A.gain"})
    series = truth.series("TS_01")
    assert ts.nominal_tilt_axis_angle_deg == pytest.approx(-95.0)
    assert abs(series.true_tilt_axis_deg + 95.0) < 0.3
    assert {t.acquisition.frame_count for t in ts.tilts} == {40}
    header = read_movie_header(out / series.tilts[0].movie)
    assert header.format == "eer" and header.pixel_spacing_angstrom == pytest.approx(5.0)


def test_bidirectional_session_with_local_motion(tmp_path: Path) -> None:
    params = SimulateParams(**{**SMALL, "n_tilts": 4}, tilt_scheme="bidirectional", local_motion_angstrom=4.0)
    truth = simulate_session(tmp_path / "session", params)
    tilts = truth.series("TS_01").tilts
    assert [t.intended_tilt_deg for t in tilts] == [0.0, -10.0, 10.0, 20.0]
    for tilt in tilts:
        assert tilt.local_motion is not None and tilt.local_motion.profile[0] == 0.0
        assert len(tilt.local_motion.profile) == len(tilt.trajectory_angstrom) == tilt.n_frames == 3


@pytest.mark.parametrize("suffix", [".mrc", ".gain", ".tif"])
@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
@pytest.mark.parametrize("flip", ["none", "x", "y"])
def test_gain_file_reads_back_with_its_orientation(tmp_path: Path, suffix: str, rotation: int, flip: str) -> None:
    gain = np.random.default_rng(0).uniform(0.9, 1.1, size=(12, 7)).astype(np.float32)
    path = tmp_path / f"gain{suffix}"
    write_gain_file(path, gain, rotation_deg=rotation, flip=flip, pixel_spacing_angstrom=1.0)  # type: ignore[arg-type]
    assert np.array_equal(read_gain(path, rotation_deg=rotation, flip=flip), gain)  # type: ignore[arg-type]


def test_oriented_gain_matches_the_movies(tmp_path: Path) -> None:
    """A rotated, flipped gain of a non-square camera: its dead pixels (0) are where the movies never count."""
    out = tmp_path / "session"
    params = SimulateParams(**{**SMALL, "n_tilts": 1}, detector_height_px=80, gain_rotation_deg=90, gain_flip="y")
    truth = simulate_session(out, params)
    gain_truth = truth.gain("A")
    gain = read_gain(out / gain_truth.file, rotation_deg=90, flip="y")
    assert gain.shape == (80, 96)
    assert sorted(map(list, np.argwhere(gain == 0).tolist())) == sorted(gain_truth.dead_pixels_yx)
    frames = read_movie(out / truth.tilt_series[0].tilts[0].movie)
    assert frames.shape[1:] == (80, 96) and np.all(frames[:, gain == 0] == 0)


def test_presets_resolve() -> None:
    tiny = SimulateParams().resolve()
    assert (tiny.n_tilt_series, tiny.n_tilts, tiny.tilt_step_deg, tiny.detector_shape_yx) == (1, 11, 10.0, (256, 256))
    full = SimulateParams(preset="full").resolve()
    assert full.movie_format == "eer" and full.frames_per_tilt == 300 and full.detector_shape_yx == (4096, 4096)
    assert 1.5 <= full.pixel_spacing_angstrom <= 1.9 and full.n_tilts == 41
    eer_tiny = SimulateParams(movie_format="eer").resolve()
    assert eer_tiny.frames_per_tilt >= 3.0 * 16 / 0.05  # few pixels with two events in one raw frame
    assert SimulateParams(two_gain_references=True).resolve().frames_per_tilt_b == 7
    with pytest.raises(ValidationError):
        SimulateParams(defocus_min_um=5.0, defocus_max_um=3.0)
    with pytest.raises(ValidationError):
        SimulateParams(movie_format="dm4")  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("relion_convert_to_tiff") is None, reason="RELION is not installed")
def test_relion_reads_a_simulated_4k_eer(tmp_path: Path) -> None:
    """RELION 3.1 (which reads only 4096² EER) renders a simulated tilt's EER movie as tomoprep and tifffile do.

    RELION writes its TIFF with rows reversed (undone by ``[:, ::-1]``).
    """
    out = tmp_path / "session"
    params = SimulateParams(preset="tiny", n_tilts=1, movie_format="eer", detector_size_px=4096, frames_per_tilt=20,
                            pixel_spacing_angstrom=1.7, dose_per_tilt_e_per_angstrom2=0.5, defocus_min_um=1.0,
                            defocus_max_um=1.5)  # fmt: skip
    truth = simulate_session(out, params)
    movie = out / truth.tilt_series[0].tilts[0].movie
    command = ["relion_convert_to_tiff", "--i", movie.name, "--o", "relion/", "--eer_grouping", "5"]
    subprocess.run(command, check=True, capture_output=True, cwd=movie.parent)
    relion = tifffile.imread(movie.parent / "relion" / movie.with_suffix(".tif").name)[:, ::-1]
    ours = read_movie(movie, eer_group_frames=5)
    assert relion.shape == ours.shape == (4, 4096, 4096)
    assert np.array_equal(relion, ours)
    tilt = truth.tilt_series[0].tilts[0]
    assert tilt.fraction_frames == [2] * 10
    assert [int(g.sum()) for g in read_movie(movie, eer_group_frames=2)] == tilt.fraction_counts
    with tifffile.TiffFile(movie) as tif:
        first_group = sum(tif.pages[i].asarray().astype(np.int32) for i in range(5))
    assert np.array_equal(first_group, ours[0])
