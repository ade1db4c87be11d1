"""Tile power spectra of a tilt image, grouped by depth, and the CTF power model they are compared with.

Spectra
    The image is cut into overlapping ``tile_px`` tiles (every quarter side, Tukey-windowed). Each tile's
    periodogram is scaled to unit mean in the fitted band (so bright and dim regions weigh alike) and the tiles are
    averaged in *strips*: groups of tiles whose centres lie at about the same distance ``s`` (Å) across the tilt
    axis, hence at the same depth ``z' = -tan(tilt) · s`` for a flat specimen (RELION's geometry, see
    :mod:`tomoprep.algorithms.defocus_gradient`). A strip's defocus is ``defocus_centre + hand · z'``.
Background
    ``log`` of each strip's power, with a polynomial in ``|k|`` (degree :data:`BACKGROUND_DEGREE`) and that of
    degree :data:`ANISOTROPIC_DEGREE` times ``cos 2θ`` and ``sin 2θ`` projected out: the background is a nuisance
    fitted jointly with the rings, not subtracted beforehand, so the rings' own low-order content does not bias
    the fit (the same projection is applied to the model). The anisotropic terms take up a background that is
    stronger along one direction (the specimen's texture, a gradient of ice or of contrast across the field):
    left in, a few low rings faded fast could only fit it with a large astigmatism, and the mean defocus went
    with it.
Model
    ``-cos 2(χ + asin A + φ)`` with ``χ = π λ Δf(θ) k² - π/2 Cs λ³ k⁴``, ``Δf(θ) = Δf + a_x cos 2θ + a_y sin 2θ``
    (``θ`` from image X towards image Y: RELION's ``rlnDefocusAngle`` convention of
    :mod:`tomoprep.simulate.ctf`), ``φ`` the phase-plate shift. A uniform defocus spread of half-width ``w``
    (ice depth, the depth range across a strip) multiplies the rings by ``sinc(2 λ w k²)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft

from tomoprep.physics import electron_wavelength_angstrom

#: Degree of the polynomial in ``|k|`` taken as the background of ``log P``.
BACKGROUND_DEGREE = 5
#: Degree of the polynomials in ``|k|`` that multiply ``cos 2θ`` and ``sin 2θ`` in the background.
ANISOTROPIC_DEGREE = 2
#: Fraction of each tile side inside the Tukey window's cosine edges.
TILE_TAPER = 0.3
#: Effective width of a Tukey-windowed tile, as a fraction of its side (for its depth spread).
_WINDOW_WIDTH_FRACTION = 0.7
#: Tiles whose pixels vary less than this (relative to the image's median tile) are blank: padding, a dark edge.
_BLANK_TILE_RELATIVE_STD = 1e-3


@dataclass(frozen=True)
class Optics:
    """Fixed optics: ``voltage_kv`` (kV), ``cs_mm`` (mm), ``amplitude_contrast`` (fraction), pixel (Å)."""

    voltage_kv: float
    cs_mm: float
    amplitude_contrast: float
    pixel_spacing_angstrom: float

    def __post_init__(self) -> None:
        values = {"voltage_kv": self.voltage_kv, "cs_mm": self.cs_mm, "amplitude_contrast": self.amplitude_contrast,
                  "pixel_spacing_angstrom": self.pixel_spacing_angstrom}  # fmt: skip
        if not all(math.isfinite(v) for v in values.values()):
            raise ValueError(f"optics must be finite numbers, got {values}")
        if self.voltage_kv <= 0 or self.pixel_spacing_angstrom <= 0 or self.cs_mm < 0:
            raise ValueError(f"voltage and pixel spacing must be positive and Cs not negative, got {values}")
        if not 0 <= self.amplitude_contrast < 1:
            raise ValueError(f"amplitude contrast is a fraction in [0, 1), got {self.amplitude_contrast}")

    @property
    def wavelength_angstrom(self) -> float:
        return electron_wavelength_angstrom(self.voltage_kv)

    @property
    def amplitude_phase_rad(self) -> float:
        """``asin A``, rad."""
        return math.asin(self.amplitude_contrast)

    def aberration_phase_rad(self, k2: Any, defocus_angstrom: Any) -> Any:
        """``χ = π λ Δf k² − π/2 Cs λ³ k⁴`` (rad) at squared frequencies ``k2`` (1/Å²) and defocus ``Δf`` (Å,
        positive = underfocus); NumPy arrays or torch tensors, broadcast."""
        lam = self.wavelength_angstrom
        return math.pi * lam * defocus_angstrom * k2 - 0.5 * math.pi * self.cs_mm * 1e7 * lam**3 * k2 * k2


@dataclass(frozen=True)
class Band:
    """The fitted frequencies of one tile size: pixel lists in ``rfft2`` layout and the background basis.

    Attributes
    ----------
    mask
        ``(tile_px, tile_px // 2 + 1)`` boolean: the fitted frequencies.
    k2
        ``(n,)`` ``k²`` of the frequencies in ``mask`` (mask order), 1/Å².
    cos2, sin2
        ``(n,)`` ``cos 2θ`` and ``sin 2θ`` of their direction ``θ`` (from image X towards image Y).
    basis
        ``(n, BACKGROUND_DEGREE + 2 ANISOTROPIC_DEGREE + 3)`` orthonormal basis of the background: polynomials in
        ``|k|``, and in ``|k|`` times ``cos 2θ`` and ``sin 2θ``.
    """

    mask: np.ndarray
    k2: np.ndarray
    cos2: np.ndarray
    sin2: np.ndarray
    basis: np.ndarray

    @classmethod
    def build(cls, tile_px: int, pixel_spacing_angstrom: float, k_range_per_angstrom: tuple[float, float]) -> Band:
        """The band ``k_low ≤ |k| ≤ k_high`` (1/Å) of ``tile_px`` tiles."""
        k_y = scipy.fft.fftfreq(tile_px, d=pixel_spacing_angstrom)[:, None]
        k_x = scipy.fft.rfftfreq(tile_px, d=pixel_spacing_angstrom)[None, :]
        k2_full = k_x * k_x + k_y * k_y
        low, high = k_range_per_angstrom
        mask = (k2_full >= low * low) & (k2_full <= high * high)
        if mask.sum() < 20 * (BACKGROUND_DEGREE + 1):
            raise ValueError(f"{1 / low:.1f}-{1 / high:.1f} Å holds too few frequencies of {tile_px}-pixel tiles")
        k2 = k2_full[mask]
        kx, ky = np.broadcast_to(k_x, mask.shape)[mask], np.broadcast_to(k_y, mask.shape)[mask]
        radius = np.sqrt(k2)
        x = (radius - 0.5 * (low + high)) / (0.5 * (high - low))
        cos2, sin2 = (kx * kx - ky * ky) / k2, 2 * kx * ky / k2
        along = np.vander(x, ANISOTROPIC_DEGREE + 1, increasing=True)
        terms = [np.vander(x, BACKGROUND_DEGREE + 1, increasing=True), along * cos2[:, None], along * sin2[:, None]]
        basis, _ = np.linalg.qr(np.concatenate(terms, axis=1))
        return cls(mask=mask, k2=k2, cos2=cos2, sin2=sin2, basis=basis)

    def project(self, values: np.ndarray) -> np.ndarray:
        """``values`` ``(..., n)`` with the background basis projected out."""
        # einsum, not BLAS: the same sums in the same order whatever the thread count.
        coefficients = np.einsum("...n,nd->...d", values, self.basis)
        return values - np.einsum("...d,nd->...n", coefficients, self.basis)


def ctf_argument(
    band: Band,
    optics: Optics,
    defocus_angstrom: np.ndarray,
    astigmatism_xy_angstrom: tuple[float, float] = (0.0, 0.0),
    phase_shift_rad: float = 0.0,
) -> np.ndarray:
    """``χ + asin A + φ`` (rad) at each defocus (Å, ``(s,)``) over the band, ``(s, n)``.

    ``astigmatism_xy_angstrom`` is ``(a_x, a_y)``: ``Δf(θ) = Δf + a_x cos 2θ + a_y sin 2θ``.
    """
    defocus = np.atleast_1d(np.asarray(defocus_angstrom, dtype=np.float64))[:, None]
    a_x, a_y = astigmatism_xy_angstrom
    directional = defocus + (a_x * band.cos2 + a_y * band.sin2)[None, :]
    return optics.aberration_phase_rad(band.k2, directional) + (optics.amplitude_phase_rad + phase_shift_rad)


def rings(
    band: Band,
    optics: Optics,
    defocus_angstrom: np.ndarray,
    astigmatism_xy_angstrom: tuple[float, float] = (0.0, 0.0),
    phase_shift_rad: float = 0.0,
) -> np.ndarray:
    """``-cos 2(χ + asin A + φ)``: the CTF power's oscillation (see :func:`ctf_argument`), ``(s, n)``."""
    return -np.cos(2.0 * ctf_argument(band, optics, defocus_angstrom, astigmatism_xy_angstrom, phase_shift_rad))


def spread_envelope(band: Band, optics: Optics, spread_angstrom: np.ndarray) -> np.ndarray:
    """``sinc(2 λ w k²)`` for half-widths ``w`` (Å, ``(s,)``), ``(s, n)``: a uniform defocus spread's fading."""
    spread = np.atleast_1d(np.asarray(spread_angstrom, dtype=np.float64))[:, None]
    return np.sinc(2.0 * optics.wavelength_angstrom * spread * band.k2[None, :])


def _window_autocorrelation(tile_px: int) -> np.ndarray:
    """``(tile_px,)`` the tile taper's normalised autocorrelation at lags of 0 to ``tile_px - 1`` pixels."""
    taper = tukey_window(tile_px, TILE_TAPER)
    return np.correlate(taper, taper, mode="full")[tile_px - 1 :] / float(taper @ taper)


def _ring_lag_px(optics: Optics, k: np.ndarray, defocus_angstrom: np.ndarray) -> np.ndarray:
    """``|∇(2χ)| / 2π`` in pixels: the lag at which the window's autocorrelation fades rings at ``|k|`` (1/Å)."""
    lam = optics.wavelength_angstrom
    lag_angstrom = np.abs(2.0 * lam * defocus_angstrom * k - 2.0 * optics.cs_mm * 1e7 * lam**3 * k**3)
    return lag_angstrom / optics.pixel_spacing_angstrom


def window_fading(
    band: Band, optics: Optics, tile_px: int, defocus_angstrom: np.ndarray,
    astigmatism_xy_angstrom: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:  # fmt: skip
    """``(s, n)`` fading of the rings by the tiles' window, at each defocus (Å, ``(s,)``).

    A tile's periodogram is the spectrum convolved with the window's power spectrum; on rings ``cos 2χ`` whose
    phase runs at ``∇(2χ) = 2π r`` (``r = 2 λ Δf k - 2 Cs λ³ k² k``, Å: twice the defocus delocalisation) that
    convolution multiplies them by the window's autocorrelation at the lag ``r`` (separable, as the window is:
    ``r cos θ`` along X times ``r sin θ`` along Y). At 6 µm and 6 Å the lag is 400 Å, half a 256-px tile of
    3 Å: dense rings fade as a thick specimen's would.
    """
    autocorrelation = _window_autocorrelation(tile_px)
    lags = np.arange(tile_px)
    a_x, a_y = astigmatism_xy_angstrom
    defocus = np.atleast_1d(np.asarray(defocus_angstrom, dtype=np.float64))[:, None]
    lag_px = _ring_lag_px(optics, np.sqrt(band.k2)[None, :], defocus + (a_x * band.cos2 + a_y * band.sin2)[None, :])
    along_x, along_y = np.sqrt(0.5 * (1.0 + band.cos2)), np.sqrt(0.5 * (1.0 - band.cos2))
    fading_x = np.interp(lag_px * along_x, lags, autocorrelation, right=0.0)
    return fading_x * np.interp(lag_px * along_y, lags, autocorrelation, right=0.0)


@dataclass(frozen=True)
class StripSpectra:
    """Mean tile power of one tilt image per strip across the tilt axis, on the full tile grid.

    Attributes
    ----------
    power
        ``(s, tile_px, tile_px // 2 + 1)`` mean normalised periodogram per strip (``rfft2`` layout).
    across_angstrom
        ``(s,)`` mean distance of the strip's tile centres across the axis, Å (``p · r``, ``p = (cos a, sin a)``).
    half_width_angstrom
        ``(s,)`` half-width (Å) of the distances across the axis that a strip's tiles cover.
    n_tiles
        ``(s,)`` tiles averaged per strip.
    """

    power: np.ndarray
    across_angstrom: np.ndarray
    half_width_angstrom: np.ndarray
    n_tiles: np.ndarray

    def log_residuals(self, band: Band) -> np.ndarray:
        """``log`` power over ``band`` with the background projected out, ``(s, n)``."""
        return band.project(np.log(np.maximum(self.power[:, band.mask], 1e-30)))


def tukey_window(size_px: int, taper_fraction: float) -> np.ndarray:
    """``(size_px,)`` Tukey window: flat, with cosine edges over ``taper_fraction`` of the side (both together).

    Written out rather than taken from ``scipy.signal``, whose import costs about a second.
    """
    if size_px < 2 or taper_fraction <= 0:
        return np.ones(size_px)
    x = np.arange(size_px) / (size_px - 1)
    edge = np.minimum(x, 1.0 - x)
    half_taper = 0.5 * min(taper_fraction, 1.0)
    return np.where(edge < half_taper, 0.5 * (1.0 - np.cos(math.pi * edge / half_taper)), 1.0)


def _tile_grid(shape_yx: tuple[int, int], tile_px: int) -> np.ndarray:
    ny, nx = shape_yx
    step = max(tile_px // 4, 1)
    y0, x0 = np.meshgrid(np.arange(0, ny - tile_px + 1, step), np.arange(0, nx - tile_px + 1, step), indexing="ij")
    return np.stack([y0.ravel(), x0.ravel()], axis=1)


def strip_spectra(
    image: np.ndarray, *, axis_deg: float, tile_px: int, pixel_spacing_angstrom: float, band_mask: np.ndarray
) -> StripSpectra:
    """Tile periodograms of ``image`` averaged in strips parallel to the tilt axis.

    Parameters
    ----------
    image
        ``(ny, nx)`` tilt image, centre pixel ``N // 2``.
    axis_deg
        Tilt-axis angle (``rlnTomoZRot``), degrees counter-clockwise from the image Y axis.
    tile_px
        Tile side, pixels; strips are half a tile wide.
    pixel_spacing_angstrom
        Pixel spacing, Å.
    band_mask
        ``(tile_px, tile_px // 2 + 1)`` boolean: the frequencies each tile is normalised over.

    Returns
    -------
    StripSpectra
        Strips with at least one tile; blank tiles (no variation) are left out.

    Raises
    ------
    ValueError
        When no tile fits, or every tile is blank.
    """
    origins = _tile_grid(image.shape, tile_px)
    if origins.size == 0:
        raise ValueError(f"a {tile_px}-pixel tile does not fit in an image of shape {image.shape}")
    taper = tukey_window(tile_px, TILE_TAPER)
    window = np.outer(taper, taper)
    powers, stds = [], []
    for start in range(0, len(origins), 32):  # chunks keep the float64 temporaries small
        tiles = np.stack([image[y : y + tile_px, x : x + tile_px] for y, x in origins[start : start + 32]])
        tiles = tiles.astype(np.float64)
        tiles -= tiles.mean(axis=(1, 2), keepdims=True)
        stds.append(tiles.std(axis=(1, 2)))
        power = np.abs(scipy.fft.rfft2(tiles * window, workers=1)) ** 2
        power /= np.maximum(power[:, band_mask].mean(axis=1), 1e-300)[:, None, None]
        powers.append(power)
    std = np.concatenate(stds)
    valid = std > _BLANK_TILE_RELATIVE_STD * max(float(np.median(std)), 1e-300)
    if not valid.any():
        raise ValueError("every tile of the image is blank (no variation)")
    a = math.radians(axis_deg)
    centre_x = origins[:, 1] + (tile_px - 1) / 2 - image.shape[1] // 2
    centre_y = origins[:, 0] + (tile_px - 1) / 2 - image.shape[0] // 2
    across_px = math.cos(a) * centre_x + math.sin(a) * centre_y
    strip_px = tile_px / 2
    labels = np.rint(across_px / strip_px).astype(int)
    power_all = np.concatenate(powers)
    groups = [np.flatnonzero((labels == label) & valid) for label in np.unique(labels[valid])]
    px = pixel_spacing_angstrom
    return StripSpectra(
        power=np.stack([power_all[g].mean(axis=0) for g in groups]),
        across_angstrom=np.array([across_px[g].mean() * px for g in groups]),
        half_width_angstrom=np.array(
            [0.5 * (np.ptp(across_px[g]) + _WINDOW_WIDTH_FRACTION * tile_px) * px for g in groups]
        ),
        n_tiles=np.array([g.size for g in groups]),
    )
