"""Common lines: the tilt-axis angle planted in a projected specimen is found to a few degrees, from far away."""

from __future__ import annotations

import numpy as np
import pytest

from tomoprep.algorithms.series_alignment import COMMON_LINE_TRUST_DEG
from tomoprep.algorithms.tilt_axis import common_line_score, search_axis, why_common_lines_fail

TILTS_DEG = [float(t) for t in np.arange(-60.0, 60.1, 6.0)]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_common_lines_find_an_axis_planted_tens_of_degrees_from_the_start(seed, blob_series):
    rng = np.random.default_rng(seed)
    axis = float(rng.uniform(-180, 180))
    start = axis + float(rng.choice([-1, 1]) * rng.uniform(20, 40))
    images, shifts = blob_series(axis, TILTS_DEG, seed)
    search = search_axis(images, TILTS_DEG, shifts_px=shifts, centre_deg=start, half_range_deg=48, step_deg=4)
    assert search.scores.shape == search.angles_deg.shape == (25,)
    error = (search.best_deg - axis + 90) % 180 - 90  # a and a + 180° are the same axis to common lines
    # The score is flat-topped: over seeds 0-9 the vertex was 2.3° RMS off the truth, 6.0° at most (seed 3).
    # Three of those standard deviations are within reach of the cross-prediction that refines it (±3° moving
    # twice, :func:`tomoprep.algorithms.series_alignment._axis_and_slab`).
    assert abs(error) < 7.0


def test_common_lines_cannot_tell_an_axis_from_its_opposite_but_peak_there(blob_series):
    axis = 30.0
    images, shifts = blob_series(axis, TILTS_DEG, seed=7)
    at = {offset: common_line_score(images, TILTS_DEG, axis_deg=axis + offset, shifts_px=shifts)
          for offset in (-20.0, 0.0, 20.0, 180.0)}  # fmt: skip
    assert at[180.0] == pytest.approx(at[0.0], abs=1e-3)
    assert at[0.0] > max(at[-20.0], at[20.0])


def test_common_lines_are_not_believed_on_a_narrow_tilt_range(blob_series):
    """Within ±30° every tilt sees nearly the same projection: whatever angle scores best, it is not trusted."""
    tilts = [float(t) for t in np.arange(-30.0, 30.1, 10.0)]
    images, shifts = blob_series(85.0, tilts, seed=2, noise_to_signal=1.0)
    search = search_axis(images, tilts, shifts_px=shifts, centre_deg=85.0, half_range_deg=90, step_deg=2)
    reason = why_common_lines_fail(search, tilts, 85.0)
    assert reason is not None and "±45°" in reason


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 3])
def test_common_lines_are_believed_where_they_clearly_beat_an_axis_far_off(seed, blob_series):
    axis = 85.0
    images, shifts = blob_series(axis, TILTS_DEG, seed, noise_to_signal=1.0)
    search = search_axis(images, TILTS_DEG, shifts_px=shifts, centre_deg=axis + 30, half_range_deg=90, step_deg=2)
    assert why_common_lines_fail(search, TILTS_DEG, axis + 30) is None
    # With the imported angle right, the alignment never leaves it for common lines: their best is either near
    # enough to be searched around, or not clearly better.
    search = search_axis(images, TILTS_DEG, shifts_px=shifts, centre_deg=axis, half_range_deg=90, step_deg=2)
    near = abs(search.best_deg - axis) <= COMMON_LINE_TRUST_DEG
    assert near or why_common_lines_fail(search, TILTS_DEG, axis) is not None
