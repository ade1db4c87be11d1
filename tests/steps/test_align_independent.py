"""Alignment of tilt stacks from the second generator (:mod:`tomoprep.simulate.blob_stack`: Gaussian blobs in a
soft slab, projected analytically, no CTF, Gaussian noise), imported as a user would with ``import --stack``.

Small stacks align and say that their defocus hand is undetermined; on stacks of several kinds (axes in every
quadrant, nominal axes 1.7-2° off on either side, stage offsets to ±15° with pretilts, thin and thick slabs,
256² at 10 Å and 512² at 5 Å) the geometry is recovered within the tolerances below; and the result does not
depend on the number of threads.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import starfile
import torch

from tomoprep.algorithms.series_alignment import AlignmentOptions, align_series
from tomoprep.algorithms.tilt_geometry import projection_rotation
from tomoprep.execution import run_step
from tomoprep.io.axis_scores import read_axis_scores
from tomoprep.project import init_project
from tomoprep.simulate.blob_stack import BlobStackSpec, BlobStackTruth, make_blob_stack, write_blob_stack
from tomoprep.steps import get_step
from tomoprep.steps.tilt_series_set import load_tilt_series_set

IMPORT, ALIGN = get_step("import"), get_step("align")
#: Tolerances: shift RMS at the working binning (px), axis (°), tilt offset against stage offset + pretilt (°),
#: thickness (fraction).
SHIFT_RMS_PX, AXIS_DEG, OFFSET_DEG, THICKNESS_FRACTION = 0.5, 0.1, 0.3, 0.10


def _import_and_align(root: Path, spec: BlobStackSpec, align_params: dict, **import_params) -> tuple:
    """Write the stack, import it with its nominal axis, align it: ``(truth, series, project, run)``."""
    truth = write_blob_stack(root / "stacks", spec)
    project = init_project(root / "project")
    imported = run_step(project, IMPORT, {"stack": str(root / "stacks" / "*.mrc"),
                                          "tilt_axis_angle_deg": truth.nominal_tilt_axis_deg,
                                          "dose_per_tilt_e_per_angstrom2": 3.0, **import_params})  # fmt: skip
    assert imported.status == "SUCCEEDED", imported.error
    run = run_step(project, ALIGN, align_params)
    assert run.status == "SUCCEEDED", run.error
    (series,) = load_tilt_series_set(project.run_dir(run))
    return truth, series, project, run


@pytest.mark.parametrize("imported_hand", [-1, pytest.param(1, marks=pytest.mark.slow)])
def test_a_small_stack_aligns_and_says_its_hand_is_undetermined(tmp_path: Path, imported_hand: int) -> None:
    """A 96² stack of 9 tilts (no 128-px tile fits on either side of the axis for the defocus gradient) aligns; the
    log says why the hand is undetermined, and the imported hand is written; the tilt offset comes from the tilts'
    means."""
    spec = BlobStackSpec(size_px=96, tilt_step_deg=15.0, thickness_px=16, seed=1)
    _, series, project, run = _import_and_align(tmp_path, spec, {"matching_iterations": 1}, tomo_hand=imported_hand)
    log = (project.run_dir(run) / "log.txt").read_text()
    assert "defocus hand undetermined: no 128-px tile fits wholly on each side" in log
    assert f"hand {imported_hand:+d} (imported)" in log
    # Its images are a level less the projected density: their means fall with the path through the slab.
    assert "tilt offset from the fall of the tilts' mean intensity" in log
    assert series.hand == imported_hand
    table = starfile.read(project.run_dir(run) / "tilt_series.star")
    assert int(table["rlnTomoHand"].iloc[0]) == imported_hand
    assert all(t.alignment is not None for t in series.tilts)
    _assert_matching_and_axis_scores_recorded(series, project.run_dir(run) / series.name)


def _assert_matching_and_axis_scores_recorded(series, folder: Path) -> None:
    """Each tilt's last matching score (a correlation) and correction, and the axis searches' curves beside the
    step's picture, the cross-prediction's choice being the axis the tilts carry."""
    scores = np.array([t.alignment.match_score for t in series.tilts])
    corrections = np.array([t.alignment.match_correction_angstrom for t in series.tilts])
    assert np.all(np.abs(scores) <= 1.0) and np.median(scores) > 0.5  # the blobs' reprojections match
    assert np.all(np.isfinite(corrections)) and np.all(corrections >= 0)
    assert series.axis_scores_path == folder / f"{series.name}_axis_scores.star"
    assert (folder / f"{series.name}_align.png").is_file()
    common, cross = read_axis_scores(series.axis_scores_path)
    assert (common.method, cross.method) == ("common_lines", "cross_prediction")
    assert cross.chosen_deg == pytest.approx(series.tilts[0].alignment.z_rot_deg, abs=1e-5)
    assert cross.angles_deg[0] <= cross.chosen_deg <= cross.angles_deg[-1] and len(cross.scores) >= 7


def _working_factor(spec: BlobStackSpec, working_size_px: int = 256, min_spacing_angstrom: float = 8.0) -> int:
    """The step's whole binning factor for this stack (longer side ≤ 256 px, pixel ≥ 8 Å)."""
    by_spacing = min_spacing_angstrom / spec.pixel_spacing_angstrom
    return max(1, math.ceil(max(spec.size_px / working_size_px, by_spacing) - 1e-6))


def shift_rms_px(truth: BlobStackTruth, shifts_px: np.ndarray, factor: float) -> float:
    """RMS over tilts of estimate − truth ``(n, 2)`` in working pixels, after removing the 3-D translation of the
    specimen centre that fits best (shifts are defined only up to it); tilts in stack order."""
    design = np.concatenate([projection_rotation(y_tilt_deg=t, z_rot_deg=truth.tilt_axis_deg).numpy()[:2]
                             for t in truth.tilts_deg])  # fmt: skip
    difference = (np.asarray(shifts_px, dtype=np.float64) - np.asarray(truth.shifts_px) / factor).reshape(-1)
    translation, *_ = np.linalg.lstsq(design, difference, rcond=None)
    residual = (difference - design @ translation).reshape(-1, 2)
    return float(np.sqrt((residual**2).sum(axis=1).mean()))


def axis_error_deg(truth: BlobStackTruth, axis_deg: float) -> float:
    """Estimated minus true axis, folded into ±90° (projections cannot tell ``a`` from ``a + 180°``)."""
    difference = (axis_deg - truth.tilt_axis_deg + 90.0) % 180.0 - 90.0
    return float(difference)


#: Stacks of several kinds: a and b are those of the report that found the alignment tuned to the session
#: simulator (256² at 10 Å); then a thin and a thick slab with stage offset and pretilt, in the other quadrants.
CASES = {
    "a_axis-95_480A": BlobStackSpec(seed=1),
    "b_axis84_offset-6_640A": BlobStackSpec(seed=2, tilt_axis_deg=84.3, nominal_axis_error_deg=1.7,
                                            stage_offset_deg=-6.0, thickness_px=64),
    "thin_axis30_offset12_pretilt-4_200A": BlobStackSpec(seed=3, tilt_axis_deg=30.0, nominal_axis_error_deg=-1.8,
                                                         stage_offset_deg=12.0, pretilt_deg=-4.0, thickness_px=20),
    "thick_axis-140_offset-15_pretilt5_1000A": BlobStackSpec(seed=4, tilt_axis_deg=-140.0,
                                                             nominal_axis_error_deg=1.9, stage_offset_deg=-15.0,
                                                             pretilt_deg=5.0, thickness_px=100),
}  # fmt: skip


#: Goals not yet met, with the figures measured (the tolerances stay the goal; a pass here fails the test, so
#: the entry must then go). The axis: cross-prediction's score peaks 0.0-0.5° from the truth, by an amount that
#: depends on the content, even without noise and with the true shifts (docs/align.md); at these stacks' noise
#: their data determine the axis only to about half a degree (a specimen in the slab takes up most of what a wrong
#: axis makes inconsistent: benchmarks/axis_determinacy.py), so 0.1° rests on what a method assumes of the
#: specimen. The thin slab: its blocks'
#: boxes, fitted with their blur measured apart from them, have a median within 4 % of the truth but scatter by more
#: than the 5 % standard error a reported thickness must have, so none is reported.
KNOWN_GAPS = {
    ("test_tilt_axis", "a_axis-95_480A"): "axis 0.14° off",
    ("test_tilt_axis", "thick_axis-140_offset-15_pretilt5_1000A"): "axis 0.32° off (measured earlier)",
    ("test_tilt_axis", "thin_axis30_offset12_pretilt-4_200A"): "axis 0.13° off (measured earlier)",
    (
        "test_thickness_and_an_undetermined_hand_without_thon_rings",
        "thin_axis30_offset12_pretilt-4_200A",
    ): "no thickness reported (its 9 blocks disagree: standard error 7 %; layer 193 Å)",
}


@pytest.fixture(scope="module", params=sorted(CASES))
def aligned(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    root = tmp_path_factory.mktemp(request.param)
    spec = CASES[request.param]
    truth, series, project, run = _import_and_align(root, spec, {})
    by_section = sorted(series.tilts, key=lambda t: t.acquisition.section_index)
    spacing = spec.pixel_spacing_angstrom * _working_factor(spec)
    shifts = np.array([[t.alignment.shift_x_angstrom, t.alignment.shift_y_angstrom] for t in by_section]) / spacing
    return spec, truth, series, shifts, project, run


@pytest.mark.slow
def test_shifts_within_half_a_working_pixel(aligned) -> None:
    spec, truth, _, shifts, _, _ = aligned
    assert shift_rms_px(truth, shifts, _working_factor(spec)) <= SHIFT_RMS_PX


@pytest.mark.slow
def test_tilt_axis(aligned) -> None:
    _, truth, series, _, _, _ = aligned
    assert abs(axis_error_deg(truth, series.tilts[0].alignment.z_rot_deg)) <= AXIS_DEG


@pytest.mark.slow
def test_tilt_offset_makes_the_slab_flat(aligned) -> None:
    _, truth, series, _, _, _ = aligned
    offsets = [t.alignment.y_tilt_deg - t.acquisition.nominal_tilt_angle_deg for t in series.tilts]
    assert np.ptp(offsets) < 1e-6
    assert abs(offsets[0] - truth.flat_tilt_offset_deg) <= OFFSET_DEG


@pytest.mark.slow
def test_thickness_and_an_undetermined_hand_without_thon_rings(aligned) -> None:
    _, truth, series, _, project, run = aligned
    assert series.specimen_thickness_angstrom is not None
    assert abs(series.specimen_thickness_angstrom / truth.thickness_angstrom - 1) <= THICKNESS_FRACTION
    log = (project.run_dir(run) / "log.txt").read_text()
    assert "hand undetermined" in log
    assert series.hand == -1


@pytest.mark.slow
def test_the_alignment_does_not_depend_on_the_number_of_threads() -> None:
    """One alignment with 1 and with 2 threads: the same geometry to a small fraction of the tolerances."""
    stack, truth = make_blob_stack(replace(CASES["a_axis-95_480A"], size_px=192, seed=11))
    options = AlignmentOptions(max_thickness_px=600, pixel_spacing_angstrom=truth.pixel_spacing_angstrom)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(align_series(torch.from_numpy(stack), truth.nominal_tilts_deg,
                                        axis_deg=truth.nominal_tilt_axis_deg, options=options))  # fmt: skip
    finally:
        torch.set_num_threads(before)
    one, two = results
    assert abs(one.axis_deg - two.axis_deg) <= 0.1 * AXIS_DEG
    assert abs(one.tilt_offset_deg - two.tilt_offset_deg) <= 0.1 * OFFSET_DEG
    assert np.sqrt(((one.shifts_px - two.shifts_px) ** 2).sum(axis=1).mean()) <= 0.1 * SHIFT_RMS_PX
    assert abs(one.slab.thickness / two.slab.thickness - 1) <= 0.1 * THICKNESS_FRACTION
