"""How closely the data of a tilt series determine its tilt-axis angle, whatever method looks for it.

An axis ``δ`` off turns every aligned image about the beam by ``δ``; the images are then not the projections of
any one specimen at the true tilts, and a method that finds the axis looks for the angle at which they are. But
a specimen that fills a slab ``nz`` pixels deep and is wider than the field has many more unknowns per image row
(``nz`` times the width the steepest tilt sees) than the tilts give measurements (one per tilt and pixel): each
row of the aligned images is one slice's projections, and a free slice can take up most of the inconsistency a
wrong axis makes. How much it cannot take up is measured here directly: the least-squares specimen in the slab
(conjugate gradients on the exact projection operator of :mod:`.backprojection`, its adjoint from autograd) is
fitted to the images aligned at each axis tried, and the energy it leaves unexplained is compared.

With Gaussian noise of variance ``σ²`` per pixel, ``Δχ²(δ) = (E(δ) - E(0)) / σ²`` is twice the log-likelihood
ratio of the best specimen at the true axis against the best at ``δ`` off: where it stays below 1 the data
cannot tell the two apart, and no estimator that takes the specimen as unknown can have a spread under
``δ / sqrt(Δχ²(δ))`` (the Cramér-Rao bound with the specimen profiled out). A finite number of iterations
overstates ``E`` at both angles, and on the blob stacks measured the difference fell as the fit converged, so
the bound comes out too tight rather than too loose.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tomoprep.algorithms.backprojection import project_columns
from tomoprep.algorithms.tilt_geometry import resample, rotation_2d


@dataclass(frozen=True)
class SlabFit:
    """The least-squares specimen of a slab against aligned images.

    Attributes
    ----------
    residual_energy
        Weighted sum of squares the fitted specimen leaves unexplained (image units squared).
    data_energy
        Weighted sum of squares of the images themselves, each less its weighted mean.
    history
        ``(iteration, residual_energy / data_energy)`` along the fit.
    """

    residual_energy: float
    data_energy: float
    history: tuple[tuple[int, float], ...]


def slab_width_px(field: torch.Tensor, tilts_deg: Sequence[float], nz: int) -> int:
    """Width of the slices that hold everything any tilt sees inside ``field`` ``(ny, nx)``: its half-width in
    ``u`` over the cosine of the steepest tilt, plus the slab's lean there, on each side."""
    half_u = float((field[field.shape[0] // 2] > 0).sum()) / 2
    steepest = math.radians(min(max(abs(float(t)) for t in tilts_deg), 80.0))
    return 2 * math.ceil(half_u / math.cos(steepest) + 0.5 * nz * math.tan(steepest) + 4)


def _weighted_residual(columns: torch.Tensor, aligned: torch.Tensor, tilts_deg: Sequence[float],
                       weight: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """``sqrt(weight) * (projections - aligned)``, each tilt less its weighted mean (the images' level is not
    the specimen's)."""
    nu = aligned.shape[-1]
    difference = torch.stack([project_columns(columns, float(t), nu=nu) for t in tilts_deg]) - aligned
    mean = (difference * weight).sum(dim=(-2, -1), keepdim=True) / weight.sum()
    return (difference - mean) * weight.sqrt()


def _energy_and_gradient(columns: torch.Tensor, aligned: torch.Tensor, tilts_deg: Sequence[float],
                         weight: torch.Tensor) -> tuple[float, torch.Tensor]:  # fmt: skip
    variable = columns.detach().requires_grad_(True)
    energy = (_weighted_residual(variable, aligned, tilts_deg, weight) ** 2).sum()
    (gradient,) = torch.autograd.grad(energy, variable)
    return float(energy.detach()), gradient


def fit_slab(images: torch.Tensor, tilts_deg: Sequence[float], *, axis_deg: float, shifts_px: torch.Tensor,
             nz: int, field: torch.Tensor, rows: slice | None = None, iterations: int = 150,
             record_every: int = 25) -> SlabFit:  # fmt: skip
    """Fit the least-squares specimen of a slab ``nz`` deep to the images aligned at ``axis_deg``.

    Parameters
    ----------
    images
        ``(n, ny, nx)`` tilt images.
    tilts_deg
        ``(n,)`` tilt angles that level the slab, degrees.
    axis_deg
        Tilt-axis angle the images are aligned at, degrees.
    shifts_px
        ``(n, 2)`` shifts ``(x, y)``, pixels.
    nz
        Depth of the slab, pixels.
    field
        ``(ny, nx)`` weight on the aligned frame (:func:`.backprojection.shared_field_window`): where every tilt
        has data, the same for every axis compared.
    rows
        Rows of the aligned frame fitted (each row is its own slice: a band of rows gives the same answer per
        row at a fraction of the cost); all by default.
    iterations
        Conjugate-gradient iterations.
    record_every
        Iterations between entries of :attr:`SlabFit.history`.
    """
    n = images.shape[0]
    matrices = torch.stack([rotation_2d(float(axis_deg))] * n)
    aligned = resample(images.double(), matrices, shifts_px.double())
    rows = slice(None) if rows is None else rows
    aligned, weight = aligned[:, rows, :], field.double()[rows, :]
    tilts = [float(t) for t in tilts_deg]
    centred = aligned - (aligned * weight).sum(dim=(-2, -1), keepdim=True) / weight.sum()
    data_energy = float(((centred**2) * weight).sum())
    columns = torch.zeros((nz, slab_width_px(field, tilts, nz), aligned.shape[1]), dtype=torch.float64)
    energy, gradient = _energy_and_gradient(columns, aligned, tilts, weight)
    direction, squared = -gradient, float((gradient**2).sum())
    history = []
    for iteration in range(1, iterations + 1):
        # The energy is quadratic: the change of its gradient along a step is the Hessian times that step.
        _, stepped = _energy_and_gradient(columns + direction, aligned, tilts, weight)
        curvature = float((direction * (stepped - gradient)).sum())
        if curvature <= 0 or squared == 0:
            break
        columns = columns + (squared / curvature) * direction
        energy, gradient = _energy_and_gradient(columns, aligned, tilts, weight)
        previous, squared = squared, float((gradient**2).sum())
        direction = -gradient + (squared / previous) * direction
        if iteration % record_every == 0 or iteration == iterations:
            history.append((iteration, energy / data_energy))
    return SlabFit(residual_energy=energy, data_energy=data_energy, history=tuple(history))
