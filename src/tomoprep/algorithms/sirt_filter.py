"""Weighting filters that make weighted back projection (WBP) behave like a number of SIRT iterations.

Model
    With :func:`tomoprep.algorithms.backprojection.project` as ``P`` (line integrals, voxel units) and
    :func:`tomoprep.algorithms.backprojection.backproject` as ``B`` (mean over the ``n`` tilts), ``B P`` is, on the
    frequencies its tilts cover, the radial filter ``λ(k) = 1 / (Θ |k|)``: ``n`` Fourier lines ``Δθ`` apart cover
    the plane with density ``1 / (Δθ |k|)``, and ``Θ = n Δθ`` (radians; ``|k|`` in cycles/pixel) is the angular
    coverage. Exact WBP is therefore ``B`` after the row filter ``Θ |k|``.
SIRT
    Here SIRT is the simultaneous iteration ``x ← x + α B (b - P x)`` from ``x = 0`` with the step ``α = 1 / T``
    (``T`` the thickness of the reconstructed slab in pixels: dividing each residual by the length of its ray
    through the slab, as SIRT does, taken at zero tilt). After ``N`` iterations every frequency is recovered by the
    fraction ``1 - (1 - α λ)^N`` of the exact inverse (a geometric series of the same operator).
SIRT-like filter
    So ``N`` iterations are WBP with the row filter (Zeng 2012's Landweber-equivalent filter; IMOD's "SIRT-like
    filter" rests on the same idea, its own constants are not reproduced here)::

        w_N(k) = Θ |k| · [1 - (1 - min(1, k₀ / |k|))^N],   k₀ = α / Θ = 1 / (T Θ)

    where ``min(1, ·)`` stands for the finite slab: below ``k₀`` (structure as coarse as the slab is thick) one
    step already recovers the frequency, and ``α λ`` cannot exceed 1 there as the ``1 / |k|`` law would say. Far
    above ``k₀`` the filter is flat at ``N k₀ Θ = N / T``: like SIRT's early iterations, high frequencies are
    damped relative to WBP by ``N k₀ / |k|``, which keeps low-resolution contrast and suppresses noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from tomoprep.algorithms.backprojection import weighting_filter


def angular_coverage_rad(tilts_deg: Sequence[float]) -> float:
    """``Θ = n Δθ`` in radians for ``n`` tilts with mean spacing ``Δθ = (max - min) / (n - 1)`` (degrees given)."""
    angles = sorted(float(t) for t in tilts_deg)
    if len(angles) < 2 or angles[-1] == angles[0]:
        raise ValueError(f"a reconstruction needs at least two distinct tilt angles, got {angles}")
    return math.radians((angles[-1] - angles[0]) * len(angles) / (len(angles) - 1))


def sirt_like_filter(
    n_u: int,
    tilts_deg: Sequence[float],
    *,
    iterations: int | None,
    thickness_px: float,
    lowpass: float = 0.5,
    device: str = "cpu",
) -> torch.Tensor:
    """Row filter ``(n_u // 2 + 1,)`` on the rfft of an aligned image row, applied before
    :func:`tomoprep.algorithms.backprojection.backproject`: ``w_N`` of the module notes.

    Parameters
    ----------
    n_u
        Length of the (padded) rows that are filtered, pixels.
    tilts_deg
        ``(n,)`` tilt angles of the images back-projected, degrees (their coverage ``Θ`` scales the filter).
    iterations
        ``N``, the number of SIRT iterations mimicked (≥ 1); ``None`` gives exact WBP, ``Θ |k|``.
    thickness_px
        ``T``, thickness of the reconstructed slab, pixels (SIRT's step ``1 / T``).
    lowpass
        Cosine roll-off edge, cycles/pixel (0.5 = Nyquist), as in
        :func:`tomoprep.algorithms.backprojection.weighting_filter`, whose ramp (with its floor at the zero
        frequency, so the mean survives) this filter shapes.
    device
        Where the filter is made.

    Returns
    -------
    torch.Tensor
        ``(n_u // 2 + 1,)`` float32 weights.
    """
    if iterations is not None and iterations < 1:
        raise ValueError(f"a SIRT-like filter needs at least 1 iteration, got {iterations}")
    if thickness_px <= 0:
        raise ValueError(f"the slab thickness must be positive, got {thickness_px} px")
    coverage = angular_coverage_rad(tilts_deg)
    ramp = weighting_filter((1, n_u), kind="ramp", lowpass=lowpass, device=device) * coverage
    if iterations is None:
        return ramp
    k = torch.fft.rfftfreq(n_u, device=device)
    corner = 1.0 / (thickness_px * coverage)
    recovered_per_step = torch.clamp(corner / k.clamp_min(1e-12), max=1.0)
    return ramp * (1.0 - (1.0 - recovered_per_step) ** iterations)
