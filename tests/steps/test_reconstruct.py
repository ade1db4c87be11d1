"""The reconstruct and deconvolve steps on simulated tilt stacks: geometry against the phantom (not mirrored),
depth, several binnings in one run, MRC headers, the set STAR read back, aligned stacks with their .tlt, the
nominal geometry of an unaligned series, CTF correction refused without a CTF, resuming an interrupted run, the
deconvolved copies; and (slow) an aligned series against its true geometry, the odd/even halves, more seeds.

Quick tests use the simulator's tiny preset (11 tilts of 256² at 4 Å/px, ±50°), imported as a stack, and bin 4
(16 Å voxels, the phantom volume's) or 8.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile
from tomogram_truth import chiral_window, correlation, phantom_on_grid, scores, shell_fsc, with_true_poses

from tomoprep.execution import resume_run, run_step
from tomoprep.io.imod import read_tilt_angles
from tomoprep.io.mrc import read_mrc
from tomoprep.model import TiltCtf
from tomoprep.project import init_project
from tomoprep.simulate.params import SimulateParams
from tomoprep.simulate.session import simulate_session
from tomoprep.steps import get_step
from tomoprep.steps.reconstruct.geometry import tomogram_thickness
from tomoprep.steps.reconstruct.params import DEFAULT_THICKNESS_ANGSTROM, ReconstructParams
from tomoprep.steps.tilt_series_set import load_tilt_series_set

IMPORT, RECONSTRUCT, DECONVOLVE = get_step("import"), get_step("reconstruct"), get_step("deconvolve")
#: The run of the quick tests: two binnings, a depth given, aligned stacks, and a CTF correction its input cannot
#: have (no CTF estimated).
RUN_PARAMS = {"binning": [4, 8], "thickness_angstrom": 1600.0, "aligned_stacks": True,
              "ctf_correction": "phase_flip", "device": "cpu"}  # fmt: skip
#: With the true geometry, the tiny series' bin-4 tomogram correlates with the phantom at 0.24 over the volume and
#: 0.29 at the chiral marker, 0.07 at the marker of its mirror image (each moved to match best; seed 1).
MIN_VOLUME_CORRELATION, MIN_CHIRAL_CORRELATION, MAX_MIRRORED_FRACTION = 0.15, 0.18, 0.5


def _simulate(folder: Path, seed: int) -> object:
    params = SimulateParams(preset="tiny", write_tilt_stack=True, frames_per_tilt=2, seed=seed)
    return simulate_session(folder, params).tilt_series[0]


@pytest.fixture(scope="module")
def tiny(tiny_stack_session):
    """A tiny simulated session (tilt stack and mdoc) and its series' truth (seed 1)."""
    return tiny_stack_session


@pytest.fixture(scope="module")
def imported(tiny, tmp_path_factory: pytest.TempPathFactory):
    """A project with the tiny stack imported twice, as TS_01 and TS_02 (two units to interrupt between)."""
    session, _ = tiny
    stacks = tmp_path_factory.mktemp("stacks")
    for name in ("TS_01", "TS_02"):
        for suffix in (".st", ".rawtlt", ".st.mdoc"):
            shutil.copy(session / "stacks" / f"TS_01{suffix}", stacks / f"{name}{suffix}")
    project = init_project(tmp_path_factory.mktemp("project") / "project")
    run = run_step(project, IMPORT, {"stack": str(stacks / "*.st")})
    assert run.status == "SUCCEEDED", run.error
    return project, project.run_dir(run)


@pytest.fixture(scope="module")
def reconstructed(imported):
    """The reconstruction of the imported series, stopped (Ctrl-C) as TS_02 began, half-written, then resumed."""
    import tomoprep.steps.reconstruct.series as series

    project, _ = imported
    work = series.reconstruct_series
    calls: list[str] = []

    def interrupted(ts, params, output_dir):
        calls.append(ts.name)
        if ts.name == "TS_02" and calls.count("TS_02") == 1:
            (output_dir / "half_written.mrc").write_bytes(b"MRC")
            raise KeyboardInterrupt
        return work(ts, params, output_dir)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(series, "reconstruct_series", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_step(project, RECONSTRUCT, RUN_PARAMS)
        (stopped,) = [r for r in project.list_runs() if r.step == "reconstruct"]
        first = project.run_dir(stopped) / "TS_01" / "tomograms" / "TS_01_bin4.mrc"
        written = first.stat().st_mtime_ns
        run = resume_run(project, stopped.id)
    assert run.status == "SUCCEEDED", run.error
    return project, run, calls, (first, written)


def test_resume_after_an_interruption_runs_only_the_unit_not_done(reconstructed) -> None:
    project, run, calls, (first, written) = reconstructed
    assert calls == ["TS_01", "TS_02", "TS_02"]
    assert first.stat().st_mtime_ns == written
    run_dir = project.run_dir(run)
    assert not (run_dir / "TS_02" / "half_written.mrc").exists()
    assert [ts.name for ts in load_tilt_series_set(run_dir)] == ["TS_01", "TS_02"]
    assert sorted(starfile.read(run_dir / "tilt_series.star")["tp_tomograms"]["rlnTomoName"]) == ["TS_01"] * 2 + [
        "TS_02"] * 2  # fmt: skip


def test_several_binnings_with_headers_names_and_depth(reconstructed) -> None:
    project, run, _, _ = reconstructed
    run_dir = project.run_dir(run)
    for ts in load_tilt_series_set(run_dir):
        assert [t.binning for t in ts.tomograms] == [4.0, 8.0] and ts.primary_tomogram.binning == 4.0
        for tomogram in ts.tomograms:
            b = int(tomogram.binning)
            assert tomogram.path == run_dir / ts.name / "tomograms" / f"{ts.name}_bin{b}.mrc"
            assert tomogram.voxel_spacing_angstrom == pytest.approx(4.0 * b)
            with mrcfile.open(tomogram.path, header_only=True) as mrc:
                header = mrc.header
                assert int(header.mode) == 2 and int(header.ispg) == 1
                assert float(mrc.voxel_size.x) == float(mrc.voxel_size.z) == pytest.approx(4.0 * b)
                assert (float(header.origin.x), float(header.origin.y), float(header.origin.z)) == (0, 0, 0)
                assert (int(header.nx), int(header.ny), int(header.nz)) == tomogram.size_xyz
            # The depth asked for, at each binning; x and y those of the binned images.
            assert tomogram.size_xyz == (256 // b, 256 // b, round(1600.0 / (4.0 * b)))
            assert tomogram.path.with_suffix(".png").stat().st_size > 10_000


def test_the_set_star_reads_back_the_tomograms_with_relions_fields(reconstructed, imported) -> None:
    project, run, _, _ = reconstructed
    run_dir = project.run_dir(run)
    blocks = starfile.read(run_dir / "tilt_series.star", always_dict=True)
    row = blocks["global"].iloc[0]
    ts = load_tilt_series_set(run_dir)[0]
    primary = ts.primary_tomogram
    # Written relative to the project folder, read back joined to it.
    assert not Path(row["rlnTomoReconstructedTomogram"]).is_absolute()
    assert project.root / row["rlnTomoReconstructedTomogram"] == primary.path and row["rlnTomoTomogramBinning"] == 4.0
    assert (row["rlnTomoSizeX"], row["rlnTomoSizeY"], row["rlnTomoSizeZ"]) == (256, 256, 400)
    assert len(blocks["tp_tomograms"]) == 4
    # Written again from what was read, the set is the same: the tomograms read back exactly.
    again = replace(ts)
    from tomoprep.steps.tilt_series_set import save_tilt_series

    copy_dir = run_dir.parent / "copy"
    save_tilt_series(again, copy_dir)
    assert load_tilt_series_set(copy_dir)[0].tomograms == ts.tomograms
    shutil.rmtree(copy_dir)
    # The run it was made from holds no tomograms.
    assert all(not t.tomograms for t in load_tilt_series_set(imported[1]))


def test_an_unaligned_series_uses_the_nominal_geometry_and_says_so(reconstructed) -> None:
    project, run, _, _ = reconstructed
    log = (project.run_dir(run) / "log.txt").read_text()
    assert "TS_01 is not aligned: reconstructed with the nominal geometry" in log
    summary = RECONSTRUCT.summarize(load_tilt_series_set(project.run_dir(run)))
    assert "not aligned, nominal geometry: TS_01, TS_02" in summary


def test_ctf_correction_without_a_ctf_is_refused_and_the_rest_runs(reconstructed) -> None:
    project, run, _, _ = reconstructed
    log = (project.run_dir(run) / "log.txt").read_text()
    assert "CTF-corrected tomograms refused: tilt series TS_01 has no CTF estimate: run tomoprep ctf first" in log
    assert all(t.ctf_correction == "none" for ts in load_tilt_series_set(project.run_dir(run)) for t in ts.tomograms)


def test_aligned_stacks_with_their_tlt(reconstructed) -> None:
    project, run, _, _ = reconstructed
    ts = load_tilt_series_set(project.run_dir(run))[0]
    stack = project.run_dir(run) / "TS_01" / "aligned_stacks" / "TS_01_bin8.mrc"
    with mrcfile.open(stack) as mrc:
        assert mrc.data.shape == (11, 32, 32) and float(mrc.voxel_size.x) == pytest.approx(32.0)
        assert int(mrc.header.ispg) == 0
    nominal = sorted(t.acquisition.nominal_tilt_angle_deg for t in ts.tilts)
    np.testing.assert_allclose(read_tilt_angles(stack.with_suffix(".tlt")), nominal, atol=0.006)


def test_deconvolve_step_writes_a_denoised_copy_of_each_tomogram(reconstructed) -> None:
    project, run, _, _ = reconstructed
    refused = run_step(project, DECONVOLVE, {})
    assert refused.status == "FAILED" and "run tomoprep ctf first, or give the defocus" in refused.error
    done = run_step(project, DECONVOLVE, {"defocus_angstrom": 30000.0, "deconv_strength": 1.0}, input_run=run.id)
    assert done.status == "SUCCEEDED", done.error
    for ts in load_tilt_series_set(project.run_dir(done)):
        for tomogram in ts.tomograms:
            assert tomogram.denoised_path == project.run_dir(done) / ts.name / "tomograms" / (
                f"{ts.name}_bin{int(tomogram.binning)}_deconv.mrc")  # fmt: skip
            original, denoised = read_mrc(tomogram.path), read_mrc(tomogram.denoised_path)
            assert denoised.shape == original.shape and 0.2 < correlation(original, denoised) < 0.99
    row = starfile.read(project.run_dir(done) / "tilt_series.star", always_dict=True)["global"].iloc[0]
    assert row["rlnTomoReconstructedTomogramDenoised"].endswith("TS_01_bin4_deconv.mrc")


def test_depth_from_the_measured_specimen_the_option_or_the_default(imported) -> None:
    (ts,) = load_tilt_series_set(imported[1])[:1]
    params = ReconstructParams()
    assert tomogram_thickness(ts, params)[0] == DEFAULT_THICKNESS_ANGSTROM
    measured = replace(ts, specimen_thickness_angstrom=1234.0)
    assert tomogram_thickness(measured, params)[0] == 1234.0 + params.thickness_margin_angstrom
    assert tomogram_thickness(measured, ReconstructParams(thickness_angstrom=900.0))[0] == 900.0
    assert ReconstructParams(binning=[4, 8, 4]).binning == [8, 4]
    with pytest.raises(ValueError, match="whole numbers from 1"):
        ReconstructParams(binning=[0])


def _true_geometry_scores(session: Path, truth, ts, output_dir: Path, **params) -> tuple[dict[str, float], object]:
    from tomoprep.steps.reconstruct.series import reconstruct_series

    result = reconstruct_series(with_true_poses(ts, truth), ReconstructParams(binning=[4], device="cpu", **params),
                                output_dir)  # fmt: skip
    (tomogram,) = result.tilt_series.tomograms
    volume = read_mrc(tomogram.path)
    phantom = phantom_on_grid(session, truth, volume.shape, tomogram.voxel_spacing_angstrom)
    return scores(volume, phantom, chiral_window(truth, volume.shape, tomogram.voxel_spacing_angstrom)), result


def _assert_matches_phantom_unmirrored(found: dict[str, float]) -> None:
    assert found["volume"] > MIN_VOLUME_CORRELATION, found
    assert found["chiral"] > MIN_CHIRAL_CORRELATION, found
    assert found["chiral_mirrored"] < MAX_MIRRORED_FRACTION * found["chiral"], found


def test_true_geometry_gives_the_phantom_not_its_mirror_image(tiny, imported, tmp_path: Path) -> None:
    session, truth = tiny
    ts = load_tilt_series_set(imported[1])[0]
    found, result = _true_geometry_scores(session, truth, ts, tmp_path)
    _assert_matches_phantom_unmirrored(found)
    assert found["move_voxels"] < 1.0, found
    assert any("aligned; depth" in note and "measured specimen" in note for note in result.notes)


def test_ctf_corrected_tomogram(tiny, imported, tmp_path: Path) -> None:
    pytest.importorskip("tomoprep.algorithms.ctf_correction")
    session, truth = tiny
    ts = load_tilt_series_set(imported[1])[0]
    tilts = []
    for tilt in ts.tilts:
        true = truth.tilt(tilt.acquisition.acquisition_index)
        ctf = TiltCtf(true.defocus_u_angstrom, true.defocus_v_angstrom, true.astigmatism_angle_deg)
        tilts.append(replace(tilt, ctf=ctf))
    with_ctf = replace(ts, tilts=tuple(tilts), hand=truth.hand)
    plain, _ = _true_geometry_scores(session, truth, with_ctf, tmp_path / "plain")
    for mode in ("phase_flip", "wiener"):
        found, result = _true_geometry_scores(session, truth, with_ctf, tmp_path / mode, ctf_correction=mode)
        assert result.tilt_series.tomograms[0].ctf_correction == mode
        assert any(f"CTF correction {mode} with the defocus hand {truth.hand:+d}" in n for n in result.notes)
        assert found["volume"] > 0.9 * plain["volume"], (mode, found, plain)


@pytest.mark.slow  # two more simulated sessions
@pytest.mark.parametrize("seed", [2, 3])
def test_true_geometry_gives_the_phantom_over_seeds(seed: int, tmp_path: Path) -> None:
    session = tmp_path / "session"
    truth = _simulate(session, seed)
    project = init_project(tmp_path / "project")
    run = run_step(project, IMPORT, {"stack": str(session / "stacks" / "TS_01.st")})
    found, _ = _true_geometry_scores(session, truth, load_tilt_series_set(project.run_dir(run))[0], tmp_path / "out")
    _assert_matches_phantom_unmirrored(found)


#: The requirement: a tomogram of the aligned series correlates with the phantom at least this fraction of what the
#: true geometry gives.
MIN_FRACTION_OF_TRUE_GEOMETRY = 0.8


@pytest.mark.slow  # simulates a realistic series and aligns it: minutes on two cores
def test_an_aligned_series_nears_its_true_geometry(tmp_path: Path) -> None:
    # The first case of tests/steps/test_align.py: a series the alignment recovers (tiny's 256² images are too
    # small for it); its phantom volume has 24 Å voxels, the tomogram's at bin 4.
    session = tmp_path / "session"
    params = SimulateParams(
        preset="demo", n_tilt_series=1, write_tilt_stack=True, frames_per_tilt=2, pixel_spacing_angstrom=6.0,
        n_complexes=200, tilt_axis_angle_deg=-95.0, hand=-1, pretilt_deg=8.0, thickness_min_angstrom=1200.0,
        thickness_max_angstrom=1200.0, seed=3,
    )  # fmt: skip
    truth = simulate_session(session, params).tilt_series[0]
    project = init_project(tmp_path / "project")
    imported = run_step(project, IMPORT, {"stack": str(session / "stacks" / "TS_01.st")})
    assert run_step(project, get_step("align"), {"working_size_px": 128}).status == "SUCCEEDED"
    run = run_step(project, RECONSTRUCT, {"binning": [4], "device": "cpu"})
    assert run.status == "SUCCEEDED", run.error
    (tomogram,) = load_tilt_series_set(project.run_dir(run))[0].tomograms
    volume = read_mrc(tomogram.path)
    # The alignment levels the 8° pretilted slab: its frame is turned by its tilt offset from the simulator's.
    poses = [(t.alignment, truth.tilt(t.acquisition.acquisition_index)) for t in load_tilt_series_set(
        project.run_dir(run))[0].tilts if t.alignment is not None]  # fmt: skip
    turn = float(np.median([pose.y_tilt_deg - true.true_tilt_deg for pose, true in poses]))
    voxel = tomogram.voxel_spacing_angstrom
    phantom = phantom_on_grid(session, truth, volume.shape, voxel, y_rotation_deg=turn)
    aligned = scores(volume, phantom, chiral_window(truth, volume.shape, voxel, y_rotation_deg=turn))
    ts = load_tilt_series_set(project.run_dir(imported))[0]
    true, _ = _true_geometry_scores(session, truth, ts, tmp_path / "true", thickness_angstrom=volume.shape[0] * 24.0)
    assert aligned["volume"] >= MIN_FRACTION_OF_TRUE_GEOMETRY * true["volume"], (aligned, true)
    assert aligned["chiral"] >= MIN_FRACTION_OF_TRUE_GEOMETRY * true["chiral"], (aligned, true)
    assert aligned["chiral_mirrored"] < MAX_MIRRORED_FRACTION * aligned["chiral"], aligned
    assert "nominal geometry" not in RECONSTRUCT.summarize(load_tilt_series_set(project.run_dir(run)))


@pytest.mark.slow  # motion correction of the tiny session's movies
def test_odd_even_halves_are_independent_and_average_to_the_tomogram(tiny, tmp_path: Path) -> None:
    session, _ = tiny
    project = init_project(tmp_path / "project")
    assert run_step(project, IMPORT, {"mdoc": str(session / "*.mdoc"), "movies": session / "frames"}).status == (
        "SUCCEEDED")  # fmt: skip
    assert run_step(project, get_step("motioncorr"), {"odd_even": True}).status == "SUCCEEDED"
    run = run_step(project, RECONSTRUCT, {"binning": [4], "thickness_angstrom": 1600.0, "device": "cpu"})
    assert run.status == "SUCCEEDED", run.error
    (tomogram,) = load_tilt_series_set(project.run_dir(run))[0].tomograms
    assert tomogram.half1_path.name == "TS_01_bin4_half1.mrc" and tomogram.half2_path.name == "TS_01_bin4_half2.mrc"
    full, half1, half2 = (read_mrc(p) for p in (tomogram.path, tomogram.half1_path, tomogram.half2_path))
    between = correlation(half1, half2)
    # Each half has its own shot noise: the halves agree as far as their signal goes (0.82 here, tiny's high dose
    # per voxel), and less the finer the detail, where the noise takes over (FSC 0.93 at the lowest shell, 0.40 at
    # Nyquist); two copies of one image would agree at every frequency.
    assert 0.05 < between < 0.9, between
    fsc = shell_fsc(half1, half2)
    assert fsc[-1] < 0.6 and fsc[-1] < fsc[0] - 0.3, fsc
    assert correlation(0.5 * (half1 + half2), full) > 0.95
    assert correlation(half1, full) > between and correlation(half2, full) > between
    row = starfile.read(project.run_dir(run) / "tilt_series.star", always_dict=True)["global"].iloc[0]
    assert row["rlnTomoReconstructedTomogramHalf1"].endswith("TS_01_bin4_half1.mrc")


def test_plan_skips_the_exposure_filter_without_doses_and_takes_the_ctf_hand(imported) -> None:
    from tomoprep.model import CtfHand
    from tomoprep.steps.reconstruct.geometry import defocus_hand
    from tomoprep.steps.reconstruct.series import plan_series

    ts = load_tilt_series_set(imported[1])[0]
    plan, notes = plan_series(ts, ReconstructParams())
    assert plan.dose_filter and "each tilt exposure-filtered for its pre-exposure and dose" in notes
    unknown = replace(ts, tilts=tuple(replace(t, acquisition=replace(t.acquisition, dose_e_per_angstrom2=None))
                                      for t in ts.tilts))  # fmt: skip
    plan, notes = plan_series(unknown, ReconstructParams())
    assert not plan.dose_filter and any("exposure filter skipped: the doses of TS_01 are not known" in n for n in notes)
    assert not plan_series(ts, ReconstructParams(dose_filter=False))[0].dose_filter
    assert defocus_hand(replace(ts, hand=-1)) == (-1, "hand -1 (the series'; the CTF estimation did not decide one)")
    assert defocus_hand(replace(ts, hand=-1, ctf_hand=CtfHand(None, 1.0)))[0] == -1
    assert defocus_hand(replace(ts, hand=-1, ctf_hand=CtfHand(1, 9.0))) == (1, "hand +1 (the CTF estimation's)")
