"""Quality-control picture of a cleaning: the measures against tilt angle and the tilts, excluded ones marked.

matplotlib is imported where the figure is drawn (see :mod:`tomoprep.steps.align.plots`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tomoprep.algorithms.thumbnail import thumbnail
from tomoprep.figures import one_at_a_time
from tomoprep.model import TiltImage, TiltSeries

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from tomoprep.algorithms.tilt_quality import QualityThresholds, TiltQuality
    from tomoprep.steps.tilt_images import TiltStack

THUMBNAIL_PX = 128
EXCLUDED_COLOUR = "tab:red"


def _short_reason(tilt: TiltImage) -> str:
    """The reason of an excluded tilt without the ``auto:`` prefix, wrapped to fit under a thumbnail."""
    reason = "" if tilt.exclusion is None else tilt.exclusion.reason
    reason = reason.removeprefix("auto:").strip() or "excluded"
    return "\n".join(textwrap.wrap(reason, 34)[:3])


def _plot_measures(axes: Sequence[Axes], quality: TiltQuality, angles: np.ndarray, bad: np.ndarray,
                   thresholds: QualityThresholds) -> None:  # fmt: skip
    """Three panels against tilt angle: shift, darkness, sharpness; bad tilts in red, thresholds dashed."""
    colours = np.where(bad, EXCLUDED_COLOUR, "tab:blue")
    panels = [
        (quality.shift_fraction, thresholds.shift_fraction, "shift beyond parallax\n(fraction of field)", False),
        (quality.mean_ratio, thresholds.dark_ratio, "mean / expected (dots)\ndark area (crosses)", False),
        (quality.sharpness_ratio, thresholds.blur_ratio, "high-frequency signal /\nneighbours' trend", True),
    ]
    for axis, (values, threshold, label, log) in zip(axes, panels, strict=True):
        finite = np.isfinite(values)
        shown = np.clip(values, 1e-3, None) if log else values
        axis.scatter(angles[finite], shown[finite], c=colours[finite], s=12)
        axis.axhline(threshold, color="grey", ls="--", lw=0.8)
        axis.set_ylabel(label, fontsize=8)
        if log:
            axis.set_yscale("log")
    axes[1].scatter(angles, quality.dark_fraction, marker="x", c=colours, s=12)
    usual = quality.usual_dark_fraction
    axes[1].axhline(usual + thresholds.dark_area_fraction * (1 - usual), color="grey", ls=":", lw=0.8)
    axes[-1].set_xlabel("tilt angle (°)")


@one_at_a_time
def write_clean_plot(
    ts: TiltSeries,
    stack: TiltStack,
    quality: TiltQuality | None,
    measured: Sequence[int],
    path: Path,
    *,
    thresholds: QualityThresholds | None = None,
) -> Path:
    """PNG: the measures against tilt angle (left, when measured) and every tilt with an image (right).

    Parameters
    ----------
    ts
        The cleaned series (its exclusions are drawn).
    stack
        Images of the tilts with one, sorted by angle.
    quality
        Measures of the tilts ``measured`` (positions in ``stack``), or ``None`` when not measured.
    measured
        Positions in ``stack`` of the measured tilts.
    path
        Where to write.
    thresholds
        Drawn as dashed lines; default: the defaults.
    """
    from matplotlib.figure import Figure

    from tomoprep.algorithms.tilt_quality import QualityThresholds

    state = {t.acquisition.acquisition_index: t for t in ts.tilts}
    tilts = [state[t.acquisition.acquisition_index] for t in stack.tilts]
    columns = max(1, int(np.ceil(np.sqrt(len(tilts) * 1.3))))
    rows = int(np.ceil(len(tilts) / columns))
    left = 4 if quality is not None else 0
    figure = Figure(figsize=(left + 1.5 * columns, max(6.0, 1.9 * rows)))
    grid = figure.add_gridspec(max(rows, 3), columns + left)
    if quality is not None:
        angles = np.array([tilts[k].acquisition.nominal_tilt_angle_deg for k in measured])
        bad = np.array([tilts[k].excluded for k in measured], dtype=bool)
        axes = [figure.add_subplot(grid[(i * max(rows, 3)) // 3 : ((i + 1) * max(rows, 3)) // 3, :left])
                for i in range(3)]  # fmt: skip
        _plot_measures(axes, quality, angles, bad, thresholds or QualityThresholds())
        axes[0].set_title(f"{ts.name}: measures (red: excluded)", fontsize=9)
    for k, tilt in enumerate(tilts):
        axis = figure.add_subplot(grid[k // columns, left + k % columns])
        axis.imshow(thumbnail(stack.images[k].detach().cpu().numpy(), size_px=THUMBNAIL_PX), cmap="gray")
        axis.set_xticks([]), axis.set_yticks([])
        title = f"{tilt.acquisition.nominal_tilt_angle_deg:+.1f}° #{tilt.acquisition.acquisition_index}"
        axis.set_title(title, fontsize=7, color=EXCLUDED_COLOUR if tilt.excluded else "black")
        if tilt.excluded:
            for spine in axis.spines.values():
                spine.set_edgecolor(EXCLUDED_COLOUR)
                spine.set_linewidth(2.5)
            axis.set_xlabel(_short_reason(tilt), fontsize=5, color=EXCLUDED_COLOUR)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    return path
