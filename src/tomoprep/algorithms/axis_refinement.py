"""The tilt-axis angle refined by cross-prediction: how well the tilts near 0° and the steep tilts predict each other.

With an axis ``δ`` off, each aligned image shows the specimen turned by ``-δ`` about the beam; the turn, seen
from the specimen, is about its own ``z`` by ``-δ cos t`` and about its ``x`` by ``δ sin t``, so it differs from
tilt to tilt, and a feature at ``x`` drifts along the axis by about ``δ (cos t - c̄) x`` through the series.
Matching each tilt against the reprojection of all the others (:func:`.projection_matching.leave_one_out`)
hardly sees that drift: the reprojection at tilt ``t`` is made mostly of its neighbours, which carry the same
turn, so that score is flat around the true axis and its top wanders by tenths of a degree. Here the tilts are
split into the half nearest the middle of the range and the steep half; each tilt is scored against the
reprojection of a reconstruction of the *other* half only, whose turn differs from its own, and the mean
correlation peaks about four times as sharply on blob stacks.

The angle is the vertex of a parabola fitted by least squares to the scores of 7 angles around the current one,
so the answer moves continuously with the data (no best-of-a-grid pick whose winner can flip); where the vertex
lies outside the sampled angles, the angles move there and the fit is repeated.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from tomoprep.algorithms.backprojection import (
    align_to_shared_field,
    backproject_columns,
    filter_rows,
    project_columns,
    shared_field_window,
    weighting_filter,
)
from tomoprep.algorithms.projection_matching import (
    MATCHING_LOWPASS,
    band_correlation,
    matching_window,
    reconstruction_width,
)
from tomoprep.algorithms.tilt_axis import AxisSearch


def split_tilts(tilts_deg: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the half of the tilts nearest the middle of the range and of the other, steeper half."""
    tilts = np.asarray(tilts_deg, dtype=np.float64)
    middle = 0.5 * (tilts.min() + tilts.max())
    order = np.argsort(np.abs(tilts - middle), kind="stable")
    half = len(order) // 2
    return np.sort(order[:half]), np.sort(order[half:])


def cross_prediction_score(images: torch.Tensor, tilts_deg: Sequence[float], *, axis_deg: float,
                           shifts_px: torch.Tensor, nz: int, field: torch.Tensor) -> float:  # fmt: skip
    """Mean correlation of every tilt with the reprojection, at its tilt, of the other half's reconstruction.

    Parameters
    ----------
    images
        ``(n, ny, nx)`` tilt images at the working binning.
    tilts_deg
        ``(n,)`` tilt angles, degrees.
    axis_deg
        Tilt-axis angle tried, degrees.
    shifts_px
        ``(n, 2)`` shifts ``(x, y)``, pixels.
    nz
        Depth of the reconstructions (the slab's), pixels.
    field
        ``(ny, nx)`` weight on the aligned frame (:func:`.backprojection.shared_field_window`), the same for
        every axis compared.
    """
    tilts = [float(t) for t in tilts_deg]
    aligned = align_to_shared_field(images, axis_deg=axis_deg, shifts_px=shifts_px, field=field)
    _, ny, nx = aligned.shape
    width = reconstruction_width(nx, nz, tilts)
    near, steep = split_tilts(tilts)
    scores = []
    for scored, others in ((near, steep), (steep, near)):
        weight = weighting_filter((ny, nx), kind="sirt", lowpass=MATCHING_LOWPASS, n_tilts=len(others))
        columns = backproject_columns(filter_rows(aligned[others], weight), [tilts[j] for j in others], nz=nz,
                                      nx=width)  # fmt: skip
        for i in scored:
            reference = project_columns(columns, tilts[i], nu=nx)
            scores.append(band_correlation(reference, aligned[i], matching_window((ny, nx), tilts[i])))
    return float(np.mean(scores))


def _vertex(angles: np.ndarray, scores: np.ndarray, centre: float) -> tuple[float, bool]:
    """Vertex of the least-squares parabola through ``(angles, scores)`` and whether it is a maximum."""
    a, b, _ = np.polyfit(angles - centre, scores, 2)
    if a >= 0:
        return float(angles[int(np.argmax(scores))]), False
    return centre - b / (2 * a), True


def refine_axis(images: torch.Tensor, tilts_deg: Sequence[float], *, axis_deg: float, shifts_px: torch.Tensor,
                nz: int, half_range_deg: float = 0.75, step_deg: float = 0.25, max_rounds: int = 3,
                ) -> AxisSearch:  # fmt: skip
    """The axis angle at which the two halves of the series predict each other best (:func:`cross_prediction_score`).

    Parameters
    ----------
    images, tilts_deg, shifts_px, nz
        As for :func:`cross_prediction_score`.
    axis_deg
        Starting angle, degrees.
    half_range_deg, step_deg
        Angles ``centre ± half_range`` every ``step`` are scored and a parabola fitted to them.
    max_rounds
        Times the angles may move to a vertex outside them (by at most ``half_range`` each time).

    Returns
    -------
    AxisSearch
        Every angle scored, its score, and the vertex (kept within the angles scored).
    """
    offsets = step_deg * np.arange(-round(half_range_deg / step_deg), round(half_range_deg / step_deg) + 1)
    reach = half_range_deg * (max_rounds + 1)
    field = shared_field_window((images.shape[-2], images.shape[-1]), axis_deg=axis_deg, shifts_px=shifts_px,
                                axis_margin_deg=reach)  # fmt: skip
    scored: dict[float, float] = {}
    centre, best = axis_deg, axis_deg
    for _ in range(max_rounds):
        angles = np.round(centre + offsets, 6)
        for angle in angles:
            if float(angle) not in scored:
                scored[float(angle)] = cross_prediction_score(images, tilts_deg, axis_deg=float(angle),
                                                              shifts_px=shifts_px, nz=nz, field=field)  # fmt: skip
        values = np.array([scored[float(a)] for a in angles])
        vertex, is_maximum = _vertex(angles, values, centre)
        best = float(np.clip(vertex, angles[0], angles[-1]))
        if is_maximum and abs(vertex - centre) <= half_range_deg - 0.5 * step_deg:
            break
        centre = float(np.clip(vertex, centre - half_range_deg, centre + half_range_deg))
    angles = np.array(sorted(scored))
    return AxisSearch(angles, np.array([scored[a] for a in angles]), best)
