"""The alignment picture draws per-tilt values against tilt angle, joined in angle order, whatever the order of
acquisition."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from tomoprep.algorithms.specimen_slab import SlabMeasurement, fit_box
from tomoprep.steps.align.plots import alignment_figure, write_alignment_plot
from tomoprep.steps.import_.dose import dose_symmetric_order


def _result(tilts_deg: np.ndarray, residuals_px: np.ndarray, axis_angles_deg: np.ndarray) -> SimpleNamespace:
    """What :func:`alignment_figure` reads of a :class:`SeriesAlignment`, with known values."""
    profile = np.exp(-0.5 * ((np.arange(64) - 32) / 6.0) ** 2)
    return SimpleNamespace(
        tilts_deg=tilts_deg,
        matching=SimpleNamespace(residuals_px=torch.tensor(residuals_px)),
        axis_search=SimpleNamespace(angles_deg=axis_angles_deg, scores=-((axis_angles_deg - 85.0) ** 2)),
        axis_deg=85.0,
        slab=SlabMeasurement(fit_box(profile), profile, 0.0, 0.0),
        slab_found=True,
        thickness_reason="",
        slices=torch.rand(16, 8, 16),
    )


def test_corrections_are_joined_in_tilt_angle_order_for_a_dose_symmetric_series(tmp_path: Path) -> None:
    angles = np.arange(-60.0, 61.0, 3.0)
    order = dose_symmetric_order(list(angles))  # acquisition order: 0, 3, -3, 6, -6 ...
    tilts = angles[order]
    residuals = np.abs(tilts) / 10.0  # a value that belongs to each tilt
    rms = 1.0 + np.abs(tilts) / 20.0
    axis_angles = np.array([85.0, 84.0, 86.0, 83.0, 87.0])  # searched outwards from the start
    figure = alignment_figure(_result(tilts, residuals, axis_angles), title="t", pixel_spacing_angstrom=2.0,
                              local_rms_angstrom=rms)  # fmt: skip
    corrections, local = figure.axes[0].get_lines()
    for line, expected in ((corrections, residuals * 2.0), (local, rms)):
        x, y = line.get_xdata(), line.get_ydata()
        assert np.all(np.diff(x) > 0), "the line must run through the tilts in angle order"
        np.testing.assert_allclose(y, expected[np.argsort(tilts)])  # each point keeps its own tilt's value
    search = figure.axes[1].get_lines()[0]
    assert np.all(np.diff(search.get_xdata()) > 0)
    path = write_alignment_plot(_result(tilts, residuals, axis_angles), title="t", pixel_spacing_angstrom=2.0,
                                path=tmp_path / "a" / "align.png")  # fmt: skip
    assert path.read_bytes()[:4] == b"\x89PNG"
