"""The CTF step on imported stacks: records, STAR labels, spectra and plot; estimates read from ctfplotter files;
bad input (no voltage, a blank tilt); and (slow) the defocus of simulated series against the simulator's truth.

Quick tests use the simulator's tiny preset (11 tilts of 256² at 4 Å/px, ±50°) with 128-px tiles.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import replace
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile

from tomoprep.errors import InputError
from tomoprep.execution import run_step
from tomoprep.io.ctf_files import read_ctfplotter
from tomoprep.project import init_project
from tomoprep.simulate.params import SimulateParams
from tomoprep.simulate.session import simulate_session
from tomoprep.simulate.truth import SeriesTruth
from tomoprep.steps import get_step
from tomoprep.steps.ctf.params import CtfParams
from tomoprep.steps.tilt_series_set import load_tilt_series_set

IMPORT, CTF = get_step("import"), get_step("ctf")
QUICK = {"tile_px": 128}
CTF_LABELS = ("rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle", "rlnCtfAstigmatism", "rlnPhaseShift",
              "rlnCtfMaxResolution", "rlnCtfFigureOfMerit", "rlnCtfImage")  # fmt: skip
#: The requirement: centre defocus RMS error per tilt over a series.
DEFOCUS_RMS_TOLERANCE = 0.015


@pytest.fixture(scope="module")
def tiny(tiny_stack_session) -> tuple[Path, SeriesTruth]:
    """A tiny simulated session with a tilt stack (and its mdoc): its folder and the series' truth."""
    return tiny_stack_session


def _imported(root: Path, stack: Path):
    project = init_project(root / "project")
    run = run_step(project, IMPORT, {"stack": str(stack)})
    assert run.status == "SUCCEEDED", run.error
    return project, project.run_dir(run)


@pytest.fixture(scope="module")
def estimated(tiny, tmp_path_factory: pytest.TempPathFactory):
    session, truth = tiny
    project, imported = _imported(tmp_path_factory.mktemp("estimated"), session / "stacks" / "TS_01.st")
    run = run_step(project, CTF, QUICK)
    assert run.status == "SUCCEEDED", run.error
    return imported, project.run_dir(run), truth


def test_every_tilt_gets_its_ctf_in_the_star_with_spectra_and_a_plot(estimated) -> None:
    _, run_dir, truth = estimated
    (series,) = load_tilt_series_set(run_dir)
    table = starfile.read(run_dir / "tilt_series" / "TS_01.star")
    assert all(label in table.columns for label in CTF_LABELS)
    assert "tpCtfHand" in starfile.read(run_dir / "tilt_series.star").columns
    spectra_path = run_dir / "TS_01" / "TS_01_ctf_spectra.mrc"
    with mrcfile.open(spectra_path) as spectra:
        assert spectra.data.shape == (series.n_tilts, 128, 128)
    for tilt in series.tilts:
        ctf = tilt.ctf
        assert ctf is not None and ctf.flag == ""
        assert ctf.power_spectrum_path is not None and ctf.power_spectrum_path.resolve() == spectra_path.resolve()
        assert ctf.defocus_u_angstrom >= ctf.defocus_v_angstrom
        true = truth.tilt(tilt.acquisition.acquisition_index)
        # Coarse pixels (4 Å) and small images: a loose check that the right ring is fitted, not the accuracy.
        assert ctf.defocus_angstrom == pytest.approx(0.5 * (true.defocus_u_angstrom + true.defocus_v_angstrom),
                                                     rel=0.03)  # fmt: skip
    images = table["rlnCtfImage"].tolist()
    assert sorted(int(name.split("@")[0]) for name in images) == list(range(1, series.n_tilts + 1))
    assert (run_dir / "TS_01" / "TS_01_ctf.png").stat().st_size > 10_000
    assert series.ctf_hand is not None


def test_a_run_without_ctf_reads_back_without_it(estimated) -> None:
    imported_dir, _, _ = estimated
    (imported,) = load_tilt_series_set(imported_dir)
    assert all(t.ctf is None for t in imported.tilts) and imported.ctf_hand is None


def test_estimates_from_a_ctfplotter_file(tiny, real_data: Path, tmp_path: Path) -> None:
    session, _ = tiny
    project, _ = _imported(tmp_path, session / "stacks" / "TS_01.st")
    source = real_data / "tomobabel-cets-imod" / "TS_03_only_astigmatism.defocus"
    shutil.copy(source, tmp_path / "TS_01.defocus")
    run = run_step(project, CTF, {"from_files": str(tmp_path / "*.defocus")})
    assert run.status == "SUCCEEDED", run.error
    (series,) = load_tilt_series_set(project.run_dir(run))
    by_view = {e.index: e for e in read_ctfplotter(source).estimates}
    for tilt in series.tilts:
        estimate = by_view[tilt.acquisition.section_index]
        ctf = tilt.ctf
        assert ctf is not None
        assert sorted((ctf.defocus_u_angstrom, ctf.defocus_v_angstrom)) == pytest.approx(
            sorted((estimate.defocus_u_angstrom, estimate.defocus_v_angstrom))
        )
    assert (project.run_dir(run) / "TS_01" / "TS_01_ctf.png").is_file()


@pytest.mark.slow
def test_thickness_and_sample_tilt_are_cross_checks_written_beside_the_geometry(tiny, tmp_path: Path) -> None:
    """The tiny session's 4 Å pixels end the band at 8.4 Å, before the first node of its 120-300 nm of ice: the
    log says so, the STAR holds ``nan``; the sample tilt is reported, and the series' own geometry is kept."""
    session, _ = tiny
    project, imported_dir = _imported(tmp_path, session / "stacks" / "TS_01.st")
    run = run_step(project, CTF, {**QUICK, "fit_thickness": True, "refine_sample_tilt": True})
    assert run.status == "SUCCEEDED", run.error
    run_dir = project.run_dir(run)
    log = (run_dir / "log.txt").read_text()
    assert "thickness not measurable from the CTF (rings end at" in log
    assert "sample tilt from the CTF" in log and "the nominal geometry is kept" in log
    row = starfile.read(run_dir / "tilt_series.star").iloc[0]
    assert math.isnan(row["tpCtfThicknessAngst"]) and math.isfinite(row["tpCtfTiltAxisAngle"])
    (series,) = load_tilt_series_set(run_dir)
    (before,) = load_tilt_series_set(imported_dir)
    assert series.ctf_sample is not None and series.ctf_sample.thickness_angstrom is None
    assert series.ctf_sample.tilt_axis_deg == pytest.approx(row["tpCtfTiltAxisAngle"])
    assert series.nominal_tilt_axis_angle_deg == before.nominal_tilt_axis_angle_deg
    assert [t.acquisition for t in series.tilts] == [t.acquisition for t in before.tilts]


def test_missing_voltage_names_the_import_option(estimated, tmp_path: Path) -> None:
    from tomoprep.steps.ctf.series import estimate_series

    imported_dir, _, _ = estimated
    (imported,) = load_tilt_series_set(imported_dir)
    broken = replace(imported, optics=replace(imported.optics, voltage_kv=math.nan))
    with pytest.raises(InputError, match="--voltage-kv") as error:
        estimate_series(broken, CtfParams(**QUICK), tmp_path)
    assert "voltage" in str(error.value) and "--cs-mm" not in str(error.value)


@pytest.mark.slow
def test_a_blank_tilt_is_flagged_and_a_blank_series_fails_alone(tmp_path: Path) -> None:
    """Two series: one with a blank section, one blank throughout. The first finishes with that tilt flagged
    and repaired; the second fails with an error naming its stack; the run keeps the first."""
    session = tmp_path / "session"
    simulate_session(session, SimulateParams(preset="tiny", n_tilt_series=2, write_tilt_stack=True,
                                             frames_per_tilt=2, seed=1))  # fmt: skip
    blank = 3
    with mrcfile.open(session / "stacks" / "TS_01.st", mode="r+") as stack:
        stack.data[blank] = 0.0
    with mrcfile.open(session / "stacks" / "TS_02.st", mode="r+") as stack:
        stack.data[:] = 0.0
    project, _ = _imported(tmp_path, session / "stacks" / "*.st")
    run = run_step(project, CTF, QUICK)
    assert run.units["TS_01"].status == "SUCCEEDED"
    assert run.units["TS_02"].status == "FAILED"
    assert "TS_02.st" in (run.units["TS_02"].error or "") and "Thon rings" in (run.units["TS_02"].error or "")
    (series,) = load_tilt_series_set(project.run_dir(run))
    flags = {t.acquisition.section_index: t.ctf.flag for t in series.tilts if t.ctf is not None}
    assert flags.pop(blank) == "dark"
    assert set(flags.values()) == {""} and len(flags) == series.n_tilts - 1
    angle = next(t.acquisition.nominal_tilt_angle_deg for t in series.tilts if t.acquisition.section_index == blank)
    assert f"1 tilt repaired from the series: {angle:+.0f}° (dark)" in (project.run_dir(run) / "log.txt").read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("hand", "axis_deg", "defocus_um", "seed"),
    [(1, 85.0, (2.0, 3.0), 2), (-1, -95.0, (4.5, 5.5), 3)],
)
def test_simulated_series_defocus_within_1_5_percent_and_hand(tmp_path, hand, axis_deg, defocus_um, seed) -> None:
    """13 tilts of 512² at 3 Å/px, ±60°, 3 e⁻/Å² per tilt, imported as a stack with its mdoc (nominal axis)."""
    params = SimulateParams(
        preset="demo", n_tilt_series=1, write_tilt_stack=True, frames_per_tilt=2, pixel_spacing_angstrom=3.0,
        n_tilts=13, tilt_step_deg=10.0, dose_per_tilt_e_per_angstrom2=3.0, defocus_min_um=defocus_um[0],
        defocus_max_um=defocus_um[1], astigmatism_angstrom=600.0, hand=hand, tilt_axis_angle_deg=axis_deg, seed=seed,
    )  # fmt: skip
    truth = simulate_session(tmp_path / "session", params).tilt_series[0]
    project, _ = _imported(tmp_path, tmp_path / "session" / "stacks" / "TS_01.st")
    run = run_step(project, CTF, {})
    assert run.status == "SUCCEEDED", run.error
    (series,) = load_tilt_series_set(project.run_dir(run))
    errors = []
    for tilt in series.tilts:
        true = truth.mid_plane_defocus_angstrom(truth.tilt(tilt.acquisition.acquisition_index))
        errors.append((tilt.ctf.defocus_angstrom - true) / true)  # type: ignore[union-attr]
    assert math.sqrt(float(np.mean(np.square(errors)))) <= DEFOCUS_RMS_TOLERANCE
    assert series.ctf_hand is not None and series.ctf_hand.hand in (None, hand)


def _series(hand: int, *, aligned: bool):
    from tomoprep.model import Optics, TiltAcquisition, TiltAlignment, TiltImage, TiltSeries

    tilts = tuple(
        TiltImage(
            TiltAcquisition(i, i, angle, 3.0 * i, 3.0, nominal_defocus_angstrom=30000.0),
            alignment=TiltAlignment(y_tilt_deg=angle + 1.5, z_rot_deg=-96.0 + 0.1 * i) if aligned else None,
        )
        for i, angle in enumerate((0.0, 20.0, -20.0))
    )
    return TiltSeries("TS_01", 2.0, Optics(), tilts, nominal_tilt_axis_angle_deg=85.0, hand=hand)  # type: ignore[arg-type]


def test_the_fit_takes_the_alignments_axis_and_tilts_else_the_nominal_ones() -> None:
    from tomoprep.steps.ctf.series import geometry

    aligned = _series(-1, aligned=True)
    axis, tilts, source = geometry(aligned, aligned.tilts)
    assert axis == pytest.approx(-95.9) and tilts.tolist() == [1.5, 21.5, -18.5] and "alignment" in source
    # A tilt included again after the alignment has no pose: the others' axis, its nominal tilt + their offset.
    partly = replace(aligned, tilts=(replace(aligned.tilts[0], alignment=None), *aligned.tilts[1:]))
    axis, tilts, source = geometry(partly, partly.tilts)
    assert axis == pytest.approx(-95.85) and tilts.tolist() == [1.5, 21.5, -18.5] and "1 tilts without" in source
    nominal = _series(-1, aligned=False)
    axis, tilts, source = geometry(nominal, nominal.tilts)
    assert axis == 85.0 and tilts.tolist() == [0.0, 20.0, -20.0] and "nominal" in source


def test_a_confident_hand_that_disagrees_with_the_alignment_is_a_warning_naming_both() -> None:
    from tomoprep.model import CtfHand
    from tomoprep.steps.ctf.series import reconcile_hand

    series, note = reconcile_hand(_series(-1, aligned=True), CtfHand(1, 9.0), aligned=True)
    assert note.startswith("WARNING:") and "+1" in note and "-1" in note and "180°" in note
    assert series.hand == 1 and series.ctf_hand == CtfHand(1, 9.0)
    series, note = reconcile_hand(_series(-1, aligned=True), CtfHand(None, 2.0), aligned=True)
    assert series.hand == -1 and "undetermined" in note and not note.startswith("WARNING:")
    series, note = reconcile_hand(_series(1, aligned=True), CtfHand(1, 9.0), aligned=True)
    assert series.hand == 1 and not note.startswith("WARNING:")


def test_defocus_is_searched_around_the_nominal_or_in_the_range_given() -> None:
    from tomoprep.steps.ctf.series import defocus_ranges

    tilts = _series(-1, aligned=False).tilts
    assert defocus_ranges(tilts, CtfParams()) == [(10000.0, 50000.0)] * 3
    given = CtfParams(min_defocus_um=1.0, max_defocus_um=6.0)
    assert defocus_ranges(tilts, given) == [(10000.0, 60000.0)] * 3
    with pytest.raises(ValueError, match="both"):
        CtfParams(min_defocus_um=1.0)


def test_the_ctf_thickness_is_compared_with_the_alignments_in_the_log() -> None:
    from tomoprep.algorithms.ctf_thickness import ThicknessEstimate
    from tomoprep.steps.ctf.sample import thickness_note

    measured = ThicknessEstimate(1980.0, 30.0, 1980.0, 9.0, 6.1, 1500.0, 6.2, 7, "")
    aligned = replace(_series(-1, aligned=True), specimen_thickness_angstrom=1850.0)
    line = thickness_note(measured, aligned)
    assert line.startswith("specimen thickness from the CTF: 198 ± 3 nm (7 tilts")
    assert line.endswith("the alignment's slab is 185 nm (CTF +13 nm, 4.3 standard errors)")
    assert "alignment" not in thickness_note(measured, _series(-1, aligned=False))
    unmeasurable = replace(measured, thickness_angstrom=None, reason="rings end at 6.3 Å, first node finer ...")
    assert thickness_note(unmeasurable, aligned) == (
        "thickness not measurable from the CTF (rings end at 6.3 Å, first node finer ...)"
    )
