"""Quality-control picture of a tilt-series alignment: residuals, axis search, thickness profile, slices.

matplotlib is imported where a figure is drawn, not with this module: a command that draws nothing (``--help``,
``status``) does not pay for it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tomoprep.algorithms.thumbnail import stretch
from tomoprep.figures import one_at_a_time

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from tomoprep.algorithms.series_alignment import SeriesAlignment


def _thickness_panel(ax: Axes, result: SeriesAlignment, pixel_spacing_angstrom: float) -> None:
    """The content profile along z with the fitted box; where no thickness is reported, the box drawn faintly and
    the reason written on the panel."""
    from scipy.special import ndtr

    slab = result.slab
    fit = slab.fit
    z = (np.arange(slab.profile.size) - slab.profile.size // 2) * pixel_spacing_angstrom
    ax.plot(z, slab.profile, label="content")
    box = fit.floor + fit.height * (ndtr((z / pixel_spacing_angstrom - fit.z_low) / max(fit.blur, 0.3))
                                    - ndtr((z / pixel_spacing_angstrom - fit.z_high) / max(fit.blur, 0.3)))  # fmt: skip
    found = result.slab_found
    ax.plot(z, box, color="r" if found else "0.6", lw=1, ls="-" if found else "--", label="fitted box")
    for edge in (fit.z_low, fit.z_high):
        ax.axvline(edge * pixel_spacing_angstrom, color="r" if found else "0.6", lw=1, ls="-" if found else "--")
    ax.legend(fontsize=8, loc="upper right")
    if found:
        thickness = slab.thickness * pixel_spacing_angstrom
        title = f"thickness {thickness:.0f} ± {slab.thickness_error_fraction * thickness:.0f} Å"
    else:
        title = "thickness not found"
        # Room above the profile for the reason and the legend, so that neither hides any of it.
        low, high = float(np.min(slab.profile)), float(np.max(slab.profile))
        ax.set_ylim(low - 0.05 * (high - low), high + 0.6 * (high - low))
        ax.text(0.03, 0.97, textwrap.fill(result.thickness_reason, 38), transform=ax.transAxes, va="top",
                fontsize=8, bbox={"facecolor": "white", "edgecolor": "0.6", "alpha": 0.9})  # fmt: skip
    ax.set(xlabel="z (Å)", ylabel="content", title=title)


def plot_by_angle(axis: Axes, angles_deg: np.ndarray, values: np.ndarray, style: str, **kwargs: Any) -> None:
    """Points at their angle, joined in angle order: a series is not acquired in angle order (dose-symmetric
    schemes alternate sides), and a line in acquisition order zigzags across the plot."""
    order = np.argsort(np.asarray(angles_deg), kind="stable")
    axis.plot(np.asarray(angles_deg)[order], np.asarray(values)[order], style, **kwargs)


def alignment_figure(result: SeriesAlignment, *, title: str, pixel_spacing_angstrom: float,
                     local_rms_angstrom: np.ndarray | None = None) -> Figure:  # fmt: skip
    """Six panels: matching correction (and patch tracking's local shifts) per tilt, axis score curve, z profile,
    central slices."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 8.5))
    axes = fig.subplots(2, 3)
    tilts = np.asarray(result.tilts_deg)
    residuals = result.matching.residuals_px.numpy() * pixel_spacing_angstrom
    plot_by_angle(axes[0, 0], tilts, residuals, "o-", ms=3, label="projection-matching correction")
    if local_rms_angstrom is not None:
        plot_by_angle(axes[0, 0], tilts, local_rms_angstrom, "s-", ms=3, label="patch local shifts, RMS")
        axes[0, 0].legend(fontsize=8)
    axes[0, 0].set(xlabel="tilt (°)", ylabel="Å", title="corrections per tilt")
    if result.axis_search is not None:
        plot_by_angle(axes[0, 1], result.axis_search.angles_deg, result.axis_search.scores, "o-", ms=3)
        axes[0, 1].axvline(result.axis_deg, color="r", lw=1)
    axes[0, 1].set(xlabel="tilt-axis angle (°)", ylabel="score", title=f"tilt axis {result.axis_deg:.2f}°")
    _thickness_panel(axes[0, 2], result, pixel_spacing_angstrom)
    slices = result.slices.numpy()
    ny, nz, nx = slices.shape
    axes[1, 0].imshow(stretch(slices[:, nz // 2, :]), cmap="gray")
    axes[1, 0].set_title("central xy slice")
    axes[1, 1].imshow(stretch(slices[ny // 2]), cmap="gray", aspect="auto")
    axes[1, 1].set_title("central xz slice")
    axes[1, 2].imshow(stretch(slices[:, :, nx // 2].T), cmap="gray", aspect="auto")
    axes[1, 2].set_title("central yz slice")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@one_at_a_time
def write_alignment_plot(result: SeriesAlignment, *, title: str, pixel_spacing_angstrom: float, path: Path,
                         local_rms_angstrom: np.ndarray | None = None) -> Path:  # fmt: skip
    """Write :func:`alignment_figure` as a PNG at ``path``."""
    fig = alignment_figure(result, title=title, pixel_spacing_angstrom=pixel_spacing_angstrom,
                           local_rms_angstrom=local_rms_angstrom)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    return path
