"""CTF of tilt series: hand decision, outliers, repair, and whole series from two independent generators.

Quick tests: the hand decision and the outlier rule on numbers; a small series with a dark and a blank tilt.
Slow tests (``-m slow``): series of 13 tilts from -60° to 60° (and one within ±10°) made by the generator in
``ctf_tilts.py`` (512², 2 Å/px) and by tomoprep's simulator (512², 3 Å/px, 1200-3000 Å of ice, particles),
3 e⁻/Å² per tilt. Measured figures are in docs/ctf.md.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from ctf_tilts import TiltTruth, generate_tilt

from tomoprep.algorithms.ctf_fit import FitSettings
from tomoprep.algorithms.ctf_series import (
    DARK,
    OUTLIER,
    SeriesSettings,
    decide_hand,
    fit_series,
    outliers,
)
from tomoprep.algorithms.ctf_spectrum import Optics

OPTICS = Optics(voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.07, pixel_spacing_angstrom=2.0)
#: The requirements: centre defocus RMS error per tilt over a series, astigmatism angle where U - V ≥ 0.05 µm.
DEFOCUS_RMS_TOLERANCE = 0.015
ANGLE_TOLERANCE_DEG = 10.0


def _angle_difference(a_deg: float, b_deg: float) -> float:
    return abs((a_deg - b_deg + 90.0) % 180.0 - 90.0)


def test_consistent_differences_decide_the_hand() -> None:
    tilts = np.array([-60.0, -45.0, -30.0, -20.0, 20.0, 30.0, 45.0, 60.0])
    rng = np.random.default_rng(0)
    differences = -0.01 * np.abs(np.tan(np.radians(tilts))) + 0.001 * rng.standard_normal(tilts.size)
    decision = decide_hand(differences, tilts, min_abs_tilt_deg=15.0, threshold=4.0)
    assert decision.hand == -1 and decision.confidence > 4.0 and decision.reason == ""
    noise = 0.002 * rng.standard_normal(tilts.size)
    undecided = decide_hand(noise, tilts, min_abs_tilt_deg=15.0, threshold=4.0)
    assert undecided.hand is None and "below" in undecided.reason
    shallow = decide_hand(differences, tilts / 4.0, min_abs_tilt_deg=15.0, threshold=4.0)
    assert shallow.hand is None and "steeper than 15°" in shallow.reason and shallow.confidence == 0.0


def test_an_outlier_in_acquisition_order_is_found() -> None:
    rng = np.random.default_rng(1)
    defocus = 30000.0 + 120.0 * rng.standard_normal(15)
    defocus[7] += 4000.0
    order = rng.permutation(15)
    flagged = outliers(defocus, order, sigmas=5.0, min_angstrom=1500.0)
    assert np.flatnonzero(flagged).tolist() == [7]
    # The first tilt in acquisition order next to the stray one is not flagged with it.
    first = int(np.argmin(order))
    defocus[first] = 30000.0
    defocus[7] = 30000.0
    second = int(np.argsort(order)[1])
    defocus[second] += 4000.0
    assert np.flatnonzero(outliers(defocus, order, sigmas=5.0, min_angstrom=1500.0)).tolist() == [second]
    assert not outliers(defocus[:4], order[:4], sigmas=5.0, min_angstrom=1500.0).any()


def test_a_dark_and_a_blank_tilt_are_flagged_and_repaired() -> None:
    """Small images (256², 128-px tiles): the other tilts finish, the failed ones get interpolated defocus."""
    tilts = [-9.0, -3.0, 3.0, 9.0]
    truths = [TiltTruth(25400.0 + 300 * i, 24600.0 + 300 * i, 40.0, t, 85.0, -1) for i, t in enumerate(tilts)]
    images = [generate_tilt(t, shape=(256, 256), seed=i) for i, t in enumerate(truths)]
    images[1] = images[1] * 0.05  # the beam blanked early: a fifth of the median and less
    images[2] = np.zeros_like(images[2])  # an empty section
    settings = SeriesSettings(tilt=FitSettings(tile_px=128))
    result = fit_series(images, tilts, axis_deg=85.0, optics=OPTICS, defocus_range_angstrom=(15000.0, 35000.0),
                        settings=settings)  # fmt: skip
    assert result.flags == ["", DARK, DARK, ""]
    for i in (0, 3):
        assert result.fits[i].defocus_angstrom == pytest.approx(truths[i].defocus_angstrom, rel=0.02)
    first, last = result.fits[0].defocus_angstrom, result.fits[3].defocus_angstrom
    for i in (1, 2):  # linear in acquisition order between the good ones
        assert result.fits[i].defocus_angstrom == pytest.approx(first + (last - first) * i / 3)
        assert math.isinf(result.fits[i].fit_resolution_angstrom) and result.fits[i].figure_of_merit == 0.0
        assert result.fits[i].astigmatism_xy_angstrom == pytest.approx(result.astigmatism_xy_angstrom)
    assert result.hand.hand is None and "steeper than 15°" in result.hand.reason


def _rms_error(fits, truths) -> float:
    """RMS over the tilts of the relative centre-defocus error."""
    errors = [(f.defocus_angstrom - t.defocus_angstrom) / t.defocus_angstrom for f, t in zip(fits, truths, strict=True)]
    return math.sqrt(float(np.mean(np.square(errors))))


def _generated_series(hand: int, axis_deg: float, max_tilt_deg: float, defocus: float, seed: int):
    rng = np.random.default_rng(seed)
    tilts = np.arange(-max_tilt_deg, max_tilt_deg + 1.0, 10.0 if max_tilt_deg > 20 else 5.0)
    truths, images = [], []
    for i, tilt in enumerate(tilts):
        centre = defocus + rng.normal(0.0, 150.0)
        truth = TiltTruth(centre + 400.0, centre - 400.0, 35.0, float(tilt), axis_deg, hand)
        truths.append(truth)
        images.append(generate_tilt(truth, seed=100 * seed + i))
    order = np.argsort(np.argsort(np.abs(tilts), kind="stable"), kind="stable")  # dose-symmetric-like
    return tilts, truths, images, order


@pytest.mark.slow
@pytest.mark.parametrize(
    ("hand", "axis_deg", "defocus", "seed"),
    [(-1, 85.0, 15000.0, 1), (1, -95.0, 45000.0, 2), (-1, 178.0, 60000.0, 3), (1, 3.0, 30000.0, 4)],
)
def test_generated_series_defocus_astigmatism_and_hand(hand, axis_deg, defocus, seed) -> None:
    tilts, truths, images, order = _generated_series(hand, axis_deg, 60.0, defocus, seed)
    result = fit_series(images, tilts, axis_deg=axis_deg, optics=OPTICS, acquisition_order=order,
                        defocus_range_angstrom=(defocus - 10000.0, defocus + 10000.0))  # fmt: skip
    assert _rms_error(result.fits, truths) <= DEFOCUS_RMS_TOLERANCE
    assert all(flag == "" for flag in result.flags)
    for fit in result.fits:
        assert _angle_difference(fit.astigmatism_angle_deg, 35.0) < ANGLE_TOLERANCE_DEG
    assert result.hand.hand in (None, hand)  # right wherever it is claimed


@pytest.mark.slow
def test_a_series_within_10_degrees_leaves_the_hand_undetermined() -> None:
    tilts, truths, images, order = _generated_series(1, 85.0, 10.0, 30000.0, 5)
    result = fit_series(images, tilts, axis_deg=85.0, optics=OPTICS, acquisition_order=order,
                        defocus_range_angstrom=(20000.0, 40000.0))  # fmt: skip
    assert result.hand.hand is None and result.hand.reason
    assert _rms_error(result.fits, truths) <= DEFOCUS_RMS_TOLERANCE
    # With every tilt let in, the small gradient still gives no confident answer.
    loose = decide_hand(result.hand.score_difference, result.hand.tilts_deg, min_abs_tilt_deg=0.0, threshold=4.0)
    assert loose.hand in (None, 1)


@pytest.mark.slow
def test_an_outlier_tilt_is_repaired_from_the_series() -> None:
    tilts, truths, images, order = _generated_series(-1, 85.0, 60.0, 30000.0, 6)
    wrong = 5
    truths[wrong] = TiltTruth(40400.0, 39600.0, 35.0, float(tilts[wrong]), 85.0, -1)
    images[wrong] = generate_tilt(truths[wrong], seed=600 + wrong)
    result = fit_series(images, tilts, axis_deg=85.0, optics=OPTICS, acquisition_order=order,
                        defocus_range_angstrom=(20000.0, 45000.0))  # fmt: skip
    assert result.flags[wrong] == OUTLIER
    assert [i for i, flag in enumerate(result.flags) if flag] == [wrong]
    assert result.fits[wrong].defocus_angstrom == pytest.approx(30000.0, rel=0.02)
    # 3 µm at 2 Å/px holds rings to 6-8 Å: the hand is claimed here (confidence 11 measured), and right.
    assert result.hand.hand == -1


@pytest.mark.slow
@pytest.mark.parametrize(
    ("hand", "axis_deg", "defocus_um", "seed"),
    [
        # 1.7 µm, 2300 Å of ice, 3 Å/px: few, broad rings faded by the thick ice, where a texture that repeated
        # from layer to layer (now drawn per layer) once left fringes that turned the astigmatism by 11°.
        (1, 85.0, (1.5, 2.0), 0),
        (-1, -95.0, (5.0, 6.0), 1),
    ],
)
def test_simulator_series_defocus_astigmatism_and_hand(tmp_path, hand, axis_deg, defocus_um, seed) -> None:
    # Imported here: the simulator (torch) takes seconds to import, which the quick tests need not pay.
    from tomoprep.io.mrc import read_mrc
    from tomoprep.simulate.params import SimulateParams
    from tomoprep.simulate.session import simulate_session

    params = SimulateParams(
        preset="demo", n_tilt_series=1, write_tilt_stack=True, frames_per_tilt=2, pixel_spacing_angstrom=3.0,
        n_tilts=13, tilt_step_deg=10.0, dose_per_tilt_e_per_angstrom2=3.0, defocus_min_um=defocus_um[0],
        defocus_max_um=defocus_um[1], astigmatism_angstrom=800.0, hand=hand, tilt_axis_angle_deg=axis_deg, seed=seed,
    )  # fmt: skip
    series = simulate_session(tmp_path / "session", params).tilt_series[0]
    stack = read_mrc(tmp_path / "session" / series.stack)  # type: ignore[operator]
    tilts = sorted(series.tilts, key=lambda t: t.stack_index)
    optics = Optics(series.voltage_kv, series.cs_mm, series.amplitude_contrast, series.pixel_spacing_angstrom)
    result = fit_series(list(stack), [t.true_tilt_deg for t in tilts], axis_deg=series.true_tilt_axis_deg,
                        optics=optics, defocus_range_angstrom=(5000.0, 80000.0),
                        acquisition_order=[t.acquisition_index for t in tilts])  # fmt: skip
    truths = [series.mid_plane_defocus_angstrom(t) for t in tilts]
    errors = [(f.defocus_angstrom - true) / true for f, true in zip(result.fits, truths, strict=True)]
    assert math.sqrt(float(np.mean(np.square(errors)))) <= DEFOCUS_RMS_TOLERANCE
    assert all(flag == "" for flag in result.flags)
    assert result.hand.hand in (None, hand)
    truth_angle = float(np.median([t.astigmatism_angle_deg for t in tilts]))
    assert _angle_difference(result.fits[0].astigmatism_angle_deg, truth_angle) < ANGLE_TOLERANCE_DEG
