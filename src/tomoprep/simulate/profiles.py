"""Band-limited projections of the phantom's primitives (Gaussian balls, uniform spheres) as radial profiles.

A primitive of unit density projects to a radially symmetric phase whose 2D Fourier transform is known in closed
form; brought back by :func:`tomoprep.simulate.ctf.band_limited_profiles`, the profile is exact up to the band
limit of the pixel grid.
"""

from __future__ import annotations

import math

import numpy as np

from tomoprep.simulate.ctf import band_limited_profiles, hankel_frequencies


def projection_transforms(sigmas_angstrom: np.ndarray, radii_angstrom: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Radial 2D Fourier transforms of the projections of unit-density balls and spheres.

    Returns
    -------
    numpy.ndarray
        ``(n_sigmas + n_radii, nk)``, rad·Å² per rad/Å, at the frequencies ``k`` (1/Å, ``(nk,)``).
    """
    sigma = np.asarray(sigmas_angstrom, dtype=float)[:, None]
    balls = math.sqrt(2 * math.pi) * sigma * 2 * math.pi * sigma**2 * np.exp(-2 * (math.pi * sigma * k) ** 2)
    radius = np.asarray(radii_angstrom, dtype=float)[:, None]
    x = np.maximum(2 * math.pi * k * radius, 1e-3)
    # A projection's 2D transform is the 3D transform's central section (the sphere's form factor).
    shape = np.where(x > 1e-2, 3 * (np.sin(x) - x * np.cos(x)) / x**3, 1 - x**2 / 10)
    spheres = 4 / 3 * math.pi * radius**3 * shape
    return np.vstack([balls.reshape(-1, k.size), spheres.reshape(-1, k.size)])


def projection_profiles(
    ball_sigmas_angstrom: np.ndarray,
    sphere_radii_angstrom: np.ndarray,
    *,
    pixel_spacing_angstrom: float,
    r_max_angstrom: float,
    frequency_filter: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Band-limited projections of unit-density primitives, as radial profiles (exact up to the band limit).

    Parameters
    ----------
    ball_sigmas_angstrom, sphere_radii_angstrom
        ``(nb,)`` ball sigmas and ``(ns,)`` sphere radii, Å.
    pixel_spacing_angstrom
        Image pixel spacing, Å: sets the band limit.
    r_max_angstrom
        Largest radius needed, Å.
    frequency_filter
        Optional ``(nk,)`` radial filter (e.g. the exposure filter) on the grid of
        :func:`tomoprep.simulate.ctf.hankel_frequencies` for the same arguments.

    Returns
    -------
    r_angstrom
        ``(nr,)`` radii, Å, from 0 in steps of ``pixel_spacing / 8``.
    ball_profiles, sphere_profiles
        ``(nb, nr)`` and ``(ns, nr)`` projected phase per unit density (rad per rad/Å, i.e. Å), float32.
    """
    k = hankel_frequencies(pixel_spacing_angstrom=pixel_spacing_angstrom, r_max_angstrom=r_max_angstrom)
    transforms = projection_transforms(ball_sigmas_angstrom, sphere_radii_angstrom, k)
    if frequency_filter is not None:
        transforms *= frequency_filter
    r, profiles = band_limited_profiles(
        transforms, pixel_spacing_angstrom=pixel_spacing_angstrom, r_max_angstrom=r_max_angstrom
    )
    n_balls = len(ball_sigmas_angstrom)
    return r, profiles[:n_balls], profiles[n_balls:]
