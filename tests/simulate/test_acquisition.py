"""Tilt schemes, the per-tilt truth of a series, and the simulated camera."""

from __future__ import annotations

import itertools
from datetime import datetime

import numpy as np
import pytest

from tomoprep.simulate.acquisition import (
    AXIS_WOBBLE_LIMIT_DEG,
    SeriesSettings,
    acquisition_order,
    make_detector,
    plan_series,
    scheme_angles_deg,
)

SETTINGS = SeriesSettings(
    n_tilts=41,
    tilt_step_deg=3.0,
    scheme="dose_symmetric",
    nominal_tilt_axis_deg=-95.0,
    tilt_offset_deg=1.5,
    dose_per_tilt_e_per_angstrom2=3.0,
    defocus_range_angstrom=(25000.0, 45000.0),
    astigmatism_angstrom=300.0,
    thickness_range_angstrom=(1200.0, 3000.0),
    pretilt_deg=0.0,
)
START = datetime(2024, 5, 14, 9, 30)


def test_scheme_angles_are_centred_on_zero() -> None:
    assert list(scheme_angles_deg(5, 10.0)) == [-20, -10, 0, 10, 20]
    assert list(scheme_angles_deg(4, 3.0)) == [-3, 0, 3, 6]  # an even count has one more positive tilt


def test_dose_symmetric_order_is_hagen_with_groups_of_two() -> None:
    angles = scheme_angles_deg(9, 3.0)
    order = [angles[i] for i in acquisition_order(angles, "dose_symmetric")]
    assert order == [0, 3, 6, -3, -6, 9, 12, -9, -12]


def test_dose_symmetric_order_continues_on_the_longer_side() -> None:
    angles = scheme_angles_deg(6, 10.0)  # -20 .. +30
    order = [angles[i] for i in acquisition_order(angles, "dose_symmetric")]
    assert order == [0, 10, 20, -10, -20, 30]


def test_bidirectional_order_goes_to_one_end_then_the_other() -> None:
    angles = scheme_angles_deg(7, 3.0)
    order = [angles[i] for i in acquisition_order(angles, "bidirectional")]
    assert order == [0, -3, -6, -9, 3, 6, 9]


def test_plan_truth_follows_the_acquisition() -> None:
    plan = plan_series("TS_01", SETTINGS, rng=np.random.default_rng(3), start_time=START)
    tilts = plan.tilts
    assert [t.acquisition_index for t in tilts] == list(range(41))
    assert [t.pre_exposure_e_per_angstrom2 for t in tilts] == [3.0 * k for k in range(41)]
    times = [t.date_time for t in tilts]
    assert times[0] == START and all(a < b for a, b in itertools.pairwise(times))
    for t in tilts:
        assert t.true_tilt_deg == pytest.approx(t.nominal_tilt_deg + 1.5, abs=1e-12)
        assert abs(t.nominal_tilt_deg - t.intended_tilt_deg) < 0.02
        assert abs(t.true_tilt_axis_deg + 95.0) <= AXIS_WOBBLE_LIMIT_DEG + 1e-9
        assert t.defocus_u_angstrom - t.defocus_v_angstrom == pytest.approx(300.0)
        assert 20000 < t.defocus_angstrom < 50000
    assert [t.intended_tilt_deg for t in tilts[:5]] == [0, 3, 6, -3, -6]
    # Stage tracking errors grow at high tilt: tens of Å, not thousands.
    shifts = np.array([[t.shift_x_angstrom, t.shift_y_angstrom] for t in tilts])
    assert 5 < np.abs(shifts).max() < 2000
    assert plan.target_defocus_angstrom % 2500 == 0 and 25000 <= plan.target_defocus_angstrom <= 45000
    assert 1200 <= plan.thickness_angstrom <= 3000


def test_stack_index_sorts_by_angle() -> None:
    plan = plan_series("TS_01", SETTINGS, rng=np.random.default_rng(0), start_time=START)
    by_stack = sorted(plan.tilts, key=lambda t: t.stack_index)
    assert [t.intended_tilt_deg for t in by_stack] == sorted(t.intended_tilt_deg for t in plan.tilts)


def test_plan_is_a_function_of_the_seed() -> None:
    first = plan_series("TS_01", SETTINGS, rng=np.random.default_rng(11), start_time=START)
    again = plan_series("TS_01", SETTINGS, rng=np.random.default_rng(11), start_time=START)
    other = plan_series("TS_01", SETTINGS, rng=np.random.default_rng(12), start_time=START)
    assert first == again and first != other


def test_detector_gain_corrects_its_sensitivity() -> None:
    detector = make_detector((96, 80), name="A", rng=np.random.default_rng(0))
    assert detector.shape_yx == (96, 80)
    dead = {tuple(p) for p in detector.dead_pixels_yx.tolist()}
    hot = {tuple(p) for p in detector.hot_pixels_yx.tolist()}
    assert dead and hot and not dead & hot
    live = detector.sensitivity > 0
    assert np.allclose((detector.gain * detector.sensitivity)[live], 1.0, atol=1e-6)
    assert all(detector.gain[p] == 0 for p in dead)
    assert 0.01 < float(detector.sensitivity[live].std()) < 0.06  # a few percent
    counts = np.full((96, 80), 10)
    corrected = detector.correct(counts, fill=-1.0)
    assert all(corrected[p] == -1.0 for p in dead | hot)
