"""A picture of a tomogram: its central XY, XZ and YZ slices, to scale, with one grey scale for all three.

matplotlib is imported where the figure is drawn, not with this module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tomoprep.figures import one_at_a_time

#: Each slice is the mean of the voxels within this depth of the centre (Å; at least one voxel): a single voxel of
#: a fine tomogram is mostly noise.
SLICE_DEPTH_ANGSTROM = 30.0
#: Grey scale: these percentiles of the three slices' voxels map to black and white.
PERCENTILES = (0.5, 99.5)


def central_slices(volume_zyx: np.ndarray, *, voxel_spacing_angstrom: float) -> tuple[np.ndarray, np.ndarray,
                                                                                        np.ndarray, int]:  # fmt: skip
    """The central ``(y, x)``, ``(z, x)`` and ``(y, z)`` slices of a volume, each the mean over a thin slab through
    the centre voxel, and the number of voxels averaged."""
    depth = max(1, round(SLICE_DEPTH_ANGSTROM / voxel_spacing_angstrom))
    nz, ny, nx = volume_zyx.shape

    def band(n: int) -> slice:
        start = max(0, n // 2 - depth // 2)
        return slice(start, min(n, start + depth))

    xy = volume_zyx[band(nz)].mean(axis=0)
    xz = volume_zyx[:, band(ny)].mean(axis=1)
    yz = volume_zyx[:, :, band(nx)].mean(axis=2).T
    return xy, xz, yz, depth


@one_at_a_time
def write_slices_png(path: Path, volume_zyx: np.ndarray, *, voxel_spacing_angstrom: float, title: str) -> Path:
    """Draw the central slices of ``volume_zyx`` into ``path`` (PNG): XY top left, YZ on its right (z across), XZ
    below it (z down), axes in Å from the volume's centre, dense matter dark as in the images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xy, xz, yz, depth = central_slices(volume_zyx, voxel_spacing_angstrom=voxel_spacing_angstrom)
    low, high = np.percentile(np.concatenate([xy.ravel(), xz.ravel(), yz.ravel()]), PERCENTILES)
    nz, ny, nx = volume_zyx.shape
    v = voxel_spacing_angstrom

    def extent(n_across: int, n_down: int) -> tuple[float, float, float, float]:
        # Voxel centres at (i - n // 2) · v; row 0 at the bottom, so y and z point up (as 3dmod shows slices).
        return ((-0.5 - n_across // 2) * v, (n_across - 0.5 - n_across // 2) * v,
                (-0.5 - n_down // 2) * v, (n_down - 0.5 - n_down // 2) * v)  # fmt: skip

    width_ratio, height_ratio = [nx, max(nz, nx // 8)], [ny, max(nz, ny // 8)]
    scale = 7.0 / sum(width_ratio)
    figure = plt.figure(figsize=(7.6, sum(height_ratio) * scale + 1.4), layout="constrained")
    grid = figure.add_gridspec(2, 2, width_ratios=width_ratio, height_ratios=height_ratio)
    panels = [
        (grid[0, 0], xy, extent(nx, ny), "x (Å)", "y (Å)", "XY"),
        (grid[0, 1], yz, extent(nz, ny), "z (Å)", "", "YZ"),
        (grid[1, 0], xz, extent(nx, nz), "x (Å)", "z (Å)", "XZ"),
    ]
    for cell, image, box, xlabel, ylabel, name in panels:
        axis = figure.add_subplot(cell)
        axis.imshow(image, cmap="gray", vmin=low, vmax=high, extent=box, origin="lower", interpolation="nearest")
        axis.set_aspect("equal")
        axis.set(xlabel=xlabel, ylabel=ylabel)
        axis.set_title(name, fontsize=9, loc="left")
        axis.tick_params(labelsize=7)
    note = figure.add_subplot(grid[1, 1])
    note.axis("off")
    note.text(0, 1, f"central slices\n(mean of {depth} voxel{'s' if depth > 1 else ''})\n"
              f"grey: {PERCENTILES[0]}-{PERCENTILES[1]} %", va="top", fontsize=8)  # fmt: skip
    figure.suptitle(title, fontsize=10)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
