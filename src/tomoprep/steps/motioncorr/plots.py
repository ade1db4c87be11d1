"""Quality-control picture of a motion-corrected tilt series: trajectories and the tilt images by angle.

matplotlib is imported where the figure is drawn (see :mod:`tomoprep.steps.align.plots`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tomoprep.algorithms.thumbnail import thumbnail
from tomoprep.figures import one_at_a_time
from tomoprep.io.mrc import read_mrc
from tomoprep.model import TiltSeries
from tomoprep.steps.motioncorr.output import THUMBNAIL_PX


@one_at_a_time
def write_motion_plot(
    ts: TiltSeries, trajectories: dict[int, np.ndarray], thumbnails: dict[int, np.ndarray], path: Path
) -> Path:
    """PNG: per-movie trajectories (Å) on the left, aligned sums sorted by tilt angle on the right (thumbnails
    by acquisition index; a tilt without one is read from its file)."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    sums = sorted(((t.acquisition, t.motion) for t in ts.tilts if t.motion is not None),
                  key=lambda pair: pair[0].nominal_tilt_angle_deg)  # fmt: skip
    columns = max(1, int(np.ceil(np.sqrt(max(len(sums), 1)))))
    rows = max(1, int(np.ceil(len(sums) / columns)))
    figure = Figure(figsize=(4 + 1.6 * columns, max(4.0, 1.6 * rows)))
    grid = figure.add_gridspec(rows, columns + 3)
    axis = figure.add_subplot(grid[:, :3])
    colours = colormaps["viridis"](np.linspace(0, 1, max(len(trajectories), 1)))
    for colour, (index, trajectory) in zip(colours, sorted(trajectories.items()), strict=False):
        axis.plot(
            trajectory[:, 0] - trajectory[0, 0],
            trajectory[:, 1] - trajectory[0, 1],
            ".-",
            color=colour,
            lw=0.8,
            ms=2,
            label=str(index) if len(trajectories) <= 12 else None,
        )
    axis.set_xlabel("x (Å)")
    axis.set_ylabel("y (Å)")
    axis.set_aspect("equal", adjustable="datalim")
    axis.set_title(f"{ts.name}: trajectories (colour = acquisition order)", fontsize=9)
    for k, (acquisition, motion) in enumerate(sums):
        ax = figure.add_subplot(grid[k // columns, 3 + k % columns])
        small = thumbnails.get(acquisition.acquisition_index)
        if small is None:
            small = thumbnail(read_mrc(motion.micrograph_path), size_px=THUMBNAIL_PX)
        ax.imshow(small, cmap="gray")
        ax.set_title(f"{acquisition.nominal_tilt_angle_deg:+.1f}°", fontsize=7), ax.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    return path
