"""Thon rings: the mean defocus of an image region from the rotational average of its tiles' periodograms.

A region's power spectrum is the mean periodogram of the ``tile_px`` tiles that lie wholly in it (Tukey
window, each tile normalised to unit mean power in the fitted band, so every tile weighs the same). Its
rotational average ``P(k)`` is compared, as ``log P`` with a polynomial background projected out, with the
CTF's power ``sin²(χ + asin A)`` (as ``-cos 2(χ + asin A)``, projected the same way), where
``χ(k) = π λ Δf k² - π/2 Cs λ³ k⁴`` and ``Δf`` is positive for underfocus (RELION's sign). Astigmatism is
averaged out by the rotational average. The ice's depth and the gradient across a half spread the defocus:
a spread uniform over ``±w`` multiplies the rings by ``sinc(2 λ w k²)``, and ``w`` is fitted with the
defocus (grid, then Nelder–Mead). The correlation coefficient at the optimum is the fit's quality: 0.5 to
0.95 on the rings of one 3 e⁻/Å² tilt; white noise, the best of thousands of candidates on about 40 radial
bins, still reaches 0.4 to 0.65, so a quality means rings only well above that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.optimize

from tomoprep.algorithms.ctf_spectrum import tukey_window
from tomoprep.physics import electron_wavelength_angstrom

#: Side of the tiles whose periodograms are averaged, pixels; tiles start every quarter side.
TILE_PX = 128
#: Fraction of each tile side inside the Tukey window's cosine edges.
TILE_TAPER = 0.3
#: Fitted band (Å, low then high resolution); the high end is clipped at 2.1 pixels.
RESOLUTION_RANGE_ANGSTROM = (25.0, 8.0)
#: Degree of the polynomial in ``k`` taken as the background of ``log P(k)``.
BACKGROUND_DEGREE = 4
#: Defocus spreads (half-widths, Å) tried before the refinement: the ice's depth, ``thickness / (2 cos tilt)``,
#: and the gradient across the region fitted blur the rings.
_SPREAD_STEP_ANGSTROM = 500.0
SPREAD_GRID_ANGSTROM = np.arange(0.0, 5000.0 + _SPREAD_STEP_ANGSTROM / 2, _SPREAD_STEP_ANGSTROM)
#: Finest defocus grid step, Å; coarser grids keep the phase step at the band's edge below π/8.
_MIN_GRID_STEP_ANGSTROM = 20.0
#: The fit is only done on bands with at least this many radial bins.
_MIN_BINS = 3 * (BACKGROUND_DEGREE + 1)


def tile_origins(image_shape_yx: tuple[int, int], tile_px: int) -> np.ndarray:
    """``(n, 2)`` origins ``(y0, x0)`` of the tiles of an image, every quarter tile side."""
    ny, nx = image_shape_yx
    step = max(tile_px // 4, 1)
    y0, x0 = np.meshgrid(np.arange(0, ny - tile_px + 1, step), np.arange(0, nx - tile_px + 1, step), indexing="ij")
    return np.stack([y0.ravel(), x0.ravel()], axis=1)


def tile_power_spectrum(image: np.ndarray, origins: np.ndarray, *, tile_px: int, band: np.ndarray) -> np.ndarray:
    """Mean periodogram of tiles of ``image``, each scaled to unit mean inside ``band``.

    Parameters
    ----------
    image
        ``(ny, nx)`` image.
    origins
        ``(n, 2)`` tile origins ``(y0, x0)``, pixels.
    tile_px
        Tile side, pixels.
    band
        Boolean ``(tile_px, tile_px // 2 + 1)`` mask (``rfft2`` layout) of the frequencies to normalise over.

    Returns
    -------
    numpy.ndarray
        ``(tile_px, tile_px // 2 + 1)`` float64 power, ``rfft2`` layout.
    """
    taper = tukey_window(tile_px, TILE_TAPER)
    window = np.outer(taper, taper)
    tiles = np.stack([image[y : y + tile_px, x : x + tile_px] for y, x in origins]).astype(np.float64)
    tiles -= tiles.mean(axis=(1, 2), keepdims=True)
    power = np.abs(scipy.fft.rfft2(tiles * window, workers=-1)) ** 2
    power /= power[:, band].mean(axis=1)[:, None, None]
    return power.mean(axis=0)


@dataclass(frozen=True)
class RingFit:
    """One Thon-ring fit: ``defocus_angstrom`` (Å, positive = underfocus), the half-width ``spread_angstrom``
    (Å) of the uniform defocus spread that best explains the rings' fading, and the ``correlation`` coefficient
    (-1 to 1) of the background-free log power with the model there: the fit's quality."""

    defocus_angstrom: float
    spread_angstrom: float
    correlation: float


@dataclass(frozen=True)
class RingModel:
    """The rotational average and the CTF power model on one tile grid, restricted to the fitted band.

    Attributes
    ----------
    band
        ``(tile, tile // 2 + 1)`` boolean mask of the fitted frequencies (``rfft2`` layout).
    bins
        Radial bin (0 to ``n_bins - 1``) of every frequency in ``band``, in mask order.
    k2_unique
        ``(n_unique,)`` distinct ``k²`` in the band, 1/Å².
    projector
        ``(n_unique, n_bins)`` matrix taking a function of ``k²`` to its rotational average per bin, background
        removed.
    background
        ``(n_bins, degree + 1)`` orthonormal basis of the polynomial background.
    wavelength_angstrom, cs_angstrom, phase_rad
        ``λ``, ``Cs`` and ``asin A``.
    grid_step_angstrom
        Defocus grid step, Å.
    """

    band: np.ndarray
    bins: np.ndarray
    k2_unique: np.ndarray
    projector: np.ndarray
    background: np.ndarray
    wavelength_angstrom: float
    cs_angstrom: float
    phase_rad: float
    grid_step_angstrom: float

    @classmethod
    def build(
        cls,
        *,
        tile_px: int,
        pixel_spacing_angstrom: float,
        voltage_kv: float,
        cs_mm: float,
        amplitude_contrast: float,
        resolution_range_angstrom: tuple[float, float] = RESOLUTION_RANGE_ANGSTROM,
    ) -> RingModel:
        """The model for ``tile_px`` tiles at ``pixel_spacing_angstrom``, fitting ``resolution_range`` (Å)."""
        k_y = scipy.fft.fftfreq(tile_px, d=pixel_spacing_angstrom)[:, None]
        k_x = scipy.fft.rfftfreq(tile_px, d=pixel_spacing_angstrom)[None, :]
        k2 = k_x * k_x + k_y * k_y
        k_max = min(1.0 / resolution_range_angstrom[1], 1.0 / (2.1 * pixel_spacing_angstrom))
        band = (k2 >= resolution_range_angstrom[0] ** -2) & (k2 <= k_max**2)
        radial = np.rint(np.sqrt(k2[band]) * tile_px * pixel_spacing_angstrom).astype(int)
        labels, bins = np.unique(radial, return_inverse=True)
        if labels.size < _MIN_BINS:
            raise ValueError(f"{resolution_range_angstrom} Å holds {labels.size} radial bins of {tile_px}-pixel tiles")
        k2_unique, which = np.unique(k2[band], return_inverse=True)
        averaging = np.zeros((k2_unique.size, labels.size))
        np.add.at(averaging, (which, bins), 1.0)
        averaging /= averaging.sum(axis=0, keepdims=True)
        x = (labels - labels.mean()) / np.ptp(labels)
        basis, _ = np.linalg.qr(np.vander(x, BACKGROUND_DEGREE + 1, increasing=True))
        projector = averaging - (averaging @ basis) @ basis.T
        wavelength = electron_wavelength_angstrom(voltage_kv)
        return cls(
            band=band, bins=bins, k2_unique=k2_unique, projector=projector, background=basis,
            wavelength_angstrom=wavelength, cs_angstrom=cs_mm * 1e7, phase_rad=math.asin(amplitude_contrast),
            grid_step_angstrom=max(_MIN_GRID_STEP_ANGSTROM, 1.0 / (8.0 * wavelength * k_max**2)),
        )  # fmt: skip

    def _without_background(self, profiles: np.ndarray) -> np.ndarray:
        return profiles - (profiles @ self.background) @ self.background.T

    def profile(self, power: np.ndarray) -> np.ndarray:
        """``log`` of the rotational average of ``power`` (``rfft2`` layout) per bin, background removed."""
        average = np.bincount(self.bins, power[self.band]) / np.bincount(self.bins)
        return self._without_background(np.log(average))

    def rings(self, defocus_angstrom: np.ndarray) -> np.ndarray:
        """``-cos 2(χ + asin A)`` at each defocus (Å) and distinct ``k²``, ``(n, n_unique)``."""
        defocus = np.atleast_1d(np.asarray(defocus_angstrom, dtype=np.float64))[:, None]
        lam, k2 = self.wavelength_angstrom, self.k2_unique[None, :]
        chi = math.pi * lam * defocus * k2 - 0.5 * math.pi * self.cs_angstrom * lam**3 * k2 * k2
        return -np.cos(2.0 * (chi + self.phase_rad))

    def correlation(self, profile: np.ndarray, rings: np.ndarray, spread_angstrom: float) -> np.ndarray:
        """Correlation coefficients of a :meth:`profile` with :meth:`rings` blurred by a defocus spread, ``(n,)``.

        A defocus spread uniform over ``±spread_angstrom`` multiplies the rings by ``sinc(2 λ w k²)``.
        """
        envelope = np.sinc(2.0 * self.wavelength_angstrom * spread_angstrom * self.k2_unique)
        # einsum, not BLAS: these small products are slowed by BLAS threads on a busy machine.
        model = np.einsum("nu,ub->nb", rings * envelope, self.projector)
        norms = np.sqrt(np.einsum("nb,nb->n", model, model)) * max(float(np.linalg.norm(profile)), 1e-300)
        return np.einsum("nb,b->n", model, profile) / np.maximum(norms, 1e-300)

    def fit(self, power: np.ndarray, *, defocus_range_angstrom: tuple[float, float]) -> RingFit:
        """The defocus and spread whose CTF power best matches ``power`` (``rfft2`` layout)."""
        profile = self.profile(power)
        low, high = defocus_range_angstrom
        grid = np.arange(low, high + self.grid_step_angstrom, self.grid_step_angstrom)
        rings = self.rings(grid)
        scores = np.stack([self.correlation(profile, rings, float(w)) for w in SPREAD_GRID_ANGSTROM])
        spread_index, defocus_index = np.unravel_index(int(np.argmax(scores)), scores.shape)
        start = np.array([grid[defocus_index], SPREAD_GRID_ANGSTROM[spread_index]])
        simplex = start + np.array([[0.0, 0.0], [self.grid_step_angstrom, 0.0], [0.0, _SPREAD_STEP_ANGSTROM]])
        result = scipy.optimize.minimize(
            lambda v: -float(self.correlation(profile, self.rings(np.clip(v[:1], low, high)), abs(v[1]))[0]), start,
            method="Nelder-Mead", options={"initial_simplex": simplex, "xatol": 1.0, "fatol": 1e-7},
        )  # fmt: skip
        return RingFit(float(np.clip(result.x[0], low, high)), abs(float(result.x[1])), float(-result.fun))


def mean_defocus(
    image: np.ndarray,
    *,
    pixel_spacing_angstrom: float,
    voltage_kv: float,
    cs_mm: float,
    amplitude_contrast: float,
    defocus_range_angstrom: tuple[float, float] = (5000.0, 80000.0),
    tile_px: int = TILE_PX,
) -> tuple[float, float]:
    """Mean defocus of a whole image from its Thon rings (astigmatism averaged out).

    Parameters
    ----------
    image
        ``(ny, nx)`` image.
    pixel_spacing_angstrom
        Pixel spacing, Å.
    voltage_kv, cs_mm, amplitude_contrast
        Optics: kV, mm, fraction.
    defocus_range_angstrom
        Defocus searched, Å, positive = underfocus.
    tile_px
        Tile side, pixels.

    Returns
    -------
    defocus_angstrom
        Mean defocus, Å, positive = underfocus.
    quality
        Correlation coefficient of the rotational average with the fitted CTF power (see the module's notes).
    """
    model = RingModel.build(
        tile_px=tile_px, pixel_spacing_angstrom=pixel_spacing_angstrom, voltage_kv=voltage_kv, cs_mm=cs_mm,
        amplitude_contrast=amplitude_contrast,
    )  # fmt: skip
    origins = tile_origins(image.shape, tile_px)
    if origins.size == 0:
        raise ValueError(f"a {tile_px}-pixel tile does not fit in an image of shape {image.shape}")
    power = tile_power_spectrum(np.asarray(image), origins, tile_px=tile_px, band=model.band)
    fit = model.fit(power, defocus_range_angstrom=defocus_range_angstrom)
    return fit.defocus_angstrom, fit.correlation
