"""Parallax of a thick specimen across the tilt axis, and the slab's thickness from the series' brightness.

Cosine stretching makes two tilt images match for a flat specimen at the height of the tilt axis. Content at
depth ``z`` (Å from that height) lands, from tilt ``q`` to tilt ``p``, ``z sin(p - q) / cos q`` further across
the axis (in ``p``'s frame) than the stretch puts it, and nowhere else along it: a correlation that locks on one
depth of a slab is displaced across the axis by up to half the slab's thickness times that factor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from tomoprep.algorithms.brightness import beer_lambert_fit

#: Inelastic mean free path of electrons in ice (Å) by which the series' Beer-Lambert slope gives its thickness:
#: the long end of what energy-filtered 300 kV imaging shows (about 3000-4000 Å), so the slab is not taken thinner
#: than it is. Where the images are normalised, :data:`DEFAULT_THICKNESS_ANGSTROM` stands in.
MEAN_FREE_PATH_ANGSTROM = 4000.0
DEFAULT_THICKNESS_ANGSTROM = 3000.0


def _cosine(tilt_deg: float) -> float:
    return max(math.cos(math.radians(tilt_deg)), 1e-3)


def parallax_px(half_thickness_px: float, tilt_deg: float, reference_tilt_deg: float) -> float:
    """Largest displacement across the axis (pixels, in the frame of ``tilt_deg``) that content at most
    ``half_thickness_px`` from the tilt axis's height makes beyond the stretch from ``reference_tilt_deg``."""
    return half_thickness_px * abs(math.sin(math.radians(tilt_deg - reference_tilt_deg))) / _cosine(reference_tilt_deg)


def beyond_parallax(displacement_px: torch.Tensor, reach_px: float, *, axis_deg: float) -> float:
    """Length (pixels) of a displacement ``(x, y)`` less ``reach_px`` of its component across the tilt axis.

    Depth moves content only across the axis (along ``(cos a, sin a)`` for an axis ``a`` degrees counter-clockwise
    from image Y), so that component may be parallax up to ``reach_px``; the component along the axis is all
    displacement.
    """
    across_direction = torch.tensor([math.cos(math.radians(axis_deg)), math.sin(math.radians(axis_deg))],
                                    dtype=displacement_px.dtype)  # fmt: skip
    across = float(displacement_px @ across_direction)
    along = float((displacement_px - across * across_direction).norm())
    return math.hypot(along, max(abs(across) - reach_px, 0.0))


def slab_thickness_angstrom(
    means: np.ndarray, tilts_deg: np.ndarray, doses_e_per_angstrom2: Sequence[float] | None = None
) -> float | None:
    """The slab's thickness (Å) from its Beer-Lambert slope, ``log(mean / dose) = a - b / cos(tilt - offset)``:
    ``b`` is the thickness over the mean free path (:data:`MEAN_FREE_PATH_ANGSTROM`). ``None`` where no slope
    could be fitted (too few tilts, or the mean does not fall with the path).

    Parameters
    ----------
    means
        ``(n,)`` image means in counts (positive).
    tilts_deg
        ``(n,)`` tilt angles (degrees).
    doses_e_per_angstrom2
        ``(n,)`` doses (e⁻/Å²); ``None``: equal.
    """
    doses = np.ones_like(means) if doses_e_per_angstrom2 is None else np.asarray(doses_e_per_angstrom2, float)
    log_means = np.log(np.clip(means, 1e-12, None) / np.where(doses > 0, doses, 1.0))
    _, slope, _ = beer_lambert_fit(np.asarray(tilts_deg, float), log_means)
    return slope * MEAN_FREE_PATH_ANGSTROM if slope > 0 else None
