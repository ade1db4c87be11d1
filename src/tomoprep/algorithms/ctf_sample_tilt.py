"""The specimen's tilt from the defocus across each tilt image: one tilt axis and one tilt offset per series.

Geometry (:mod:`.defocus_gradient`)
    A point ``r`` of the image (Å from pixel ``N // 2``) of a flat specimen tilted by ``θ`` about the axis at
    ``a`` is at defocus ``centre + hand · z'`` with ``z' = -tan θ (p · r)``, ``p = (cos a, sin a)``: the defocus
    gradient is ``g = -hand · tan θ · p``. A tilt series' specimen tilts are ``θᵢ = nominalᵢ + δ`` about one
    axis, so two numbers, ``a`` and ``δ``, give every tilt's gradient.
Measurement
    Each tilt image is cut into cells half a tile wide (tiles every quarter tile, each to the cell of its
    centre); the cells' defocus is a plane ``c + g · r``, and ``(c, g_x, g_y)`` maximise the ring model's
    correlation over all cells (:class:`_PlaneObjective`, the score of :mod:`.ctf_objective` with each cell a
    strip of its own; L-BFGS on its analytic gradient), the series fit's astigmatism, phase shift, spread and
    decay held, on the band up to the tilt's fit resolution, from the given geometry's gradient. Cells of
    separately fitted defocus were tried first: on 128-px tiles their defoci scattered by more than the gradient.
Fit
    ``(a, δ)`` by least squares of the measured gradients against ``-hand · tan(θᵢ + δ) · p(a)`` (Levenberg-
    Marquardt from the geometry given); their standard errors from the fit's covariance scaled by its residuals.
    CTFFIND5 reports the tilt of a single micrograph to about ±3°; a series pools its tilts. The field must be
    wide: across 770 Å (512² at 1.5 Å) the defocus changes by less than the fit's noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.optimize

from tomoprep.algorithms.ctf_fit import TiltCtfFit
from tomoprep.algorithms.ctf_spectrum import TILE_TAPER, Band, Optics, tukey_window


@dataclass(frozen=True)
class SampleTiltSettings:
    """The side of the tiles (px; cells are half a tile) and the least tilt used (degrees)."""

    tile_px: int = 256
    min_abs_tilt_deg: float = 10.0


@dataclass(frozen=True)
class SampleTilt:
    """The specimen tilt the defocus gradients show.

    Attributes
    ----------
    axis_deg, axis_error_deg
        Tilt-axis angle (``rlnTomoZRot``'s convention) and its standard error, degrees.
    offset_deg, offset_error_deg
        Offset added to every given tilt angle and its standard error, degrees.
    n_tilts
        Tilts whose gradient was measured.
    gradients
        ``(n, 2)`` measured defocus gradients ``(∂/∂x, ∂/∂y)``, Å of defocus per Å.
    """

    axis_deg: float
    axis_error_deg: float
    offset_deg: float
    offset_error_deg: float
    n_tilts: int
    gradients: np.ndarray

    def describe(self, axis_given_deg: float, given: str) -> str:
        """One line for the log, comparing with the geometry ``given`` (``"the alignment"``, ...)."""
        turn = (self.axis_deg - axis_given_deg + 180.0) % 360.0 - 180.0
        axis = f"axis {self.axis_deg:.1f}° ± {self.axis_error_deg:.1f}°"
        axis += f" ({turn:+.1f}° from {given}'s {axis_given_deg:.1f}°)"
        offset = f"tilt offset {self.offset_deg:+.1f}° ± {self.offset_error_deg:.1f}° on {given}'s tilts"
        return f"sample tilt from the CTF ({self.n_tilts} tilts): {axis}, {offset}; {given} is kept (a cross-check)"


def cell_periodograms(image: np.ndarray, *, tile_px: int, band_mask: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Mean tile periodogram of each cell of a grid of half-tile cells over ``image`` ``(ny, nx)``.

    Tiles (Tukey window, every quarter tile, each scaled to unit mean power over ``band_mask``) go to the cell
    holding their centre. Returns the ``(m, n)`` periodograms over ``band_mask`` of the cells with tiles, their
    tiles' mean centres ``(m, 2)`` as ``(x, y)`` pixels from pixel ``N // 2``, and their tile counts ``(m,)``.
    """
    ny, nx = image.shape
    step = max(tile_px // 4, 1)
    starts_y, starts_x = np.arange(0, ny - tile_px + 1, step), np.arange(0, nx - tile_px + 1, step)
    if starts_y.size == 0 or starts_x.size == 0:
        raise ValueError(f"a {tile_px}-pixel tile does not fit in an image of shape {image.shape}")
    taper = tukey_window(tile_px, TILE_TAPER)
    window = np.outer(taper, taper)
    centres_x = starts_x + (tile_px - 1) / 2 - nx // 2
    cells_x = np.rint(centres_x / (tile_px / 2)).astype(int)
    sums: dict[tuple[int, int], list] = {}
    for y0 in starts_y:
        tiles = np.stack([image[y0 : y0 + tile_px, x0 : x0 + tile_px] for x0 in starts_x]).astype(np.float64)
        tiles -= tiles.mean(axis=(1, 2), keepdims=True)
        power = (np.abs(scipy.fft.rfft2(tiles * window, workers=1)) ** 2)[:, band_mask]
        power /= np.maximum(power.mean(axis=1), 1e-300)[:, None]
        centre_y = y0 + (tile_px - 1) / 2 - ny // 2
        cell_y = int(np.rint(centre_y / (tile_px / 2)))
        for x, cell_x, tile_power in zip(centres_x, cells_x, power, strict=True):
            entry = sums.setdefault((cell_y, int(cell_x)), [0.0, 0.0, 0.0, 0])
            entry[0] = entry[0] + tile_power
            entry[1] += x
            entry[2] += centre_y
            entry[3] += 1
    cells = sorted(sums)
    counts = np.array([sums[c][3] for c in cells])
    power = np.stack([sums[c][0] / sums[c][3] for c in cells])
    centres = np.array([[sums[c][1] / sums[c][3], sums[c][2] / sums[c][3]] for c in cells])
    return power, centres, counts


@dataclass(frozen=True)
class _PlaneObjective:
    """The rings' correlation over a tilt's cells whose defocus is a plane ``c + g · r`` (Å), with its gradient
    in ``(c, g_x, g_y)``; the model and score as :mod:`.ctf_objective`'s, each cell a strip of its own."""

    band: Band
    data: np.ndarray  # (s, n) background-free log power
    envelope: np.ndarray  # (s, n) fading held: the cell's own depth spread, the ice spread, the decay
    weights: np.ndarray  # (s,)
    positions: np.ndarray  # (s, 2) Å from the image centre
    base_phase: np.ndarray  # (n,) the phase without the plane's defocus
    slope: np.ndarray  # (n,) ∂θ/∂defocus, rad/Å

    def score_and_gradient(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        defocus = params[0] + self.positions @ params[1:3]
        theta = self.base_phase[None, :] + self.slope[None, :] * defocus[:, None]
        model = -np.cos(2.0 * theta) * self.envelope
        coefficients = np.einsum("sn,nd->sd", model, self.band.basis)
        numerator = float(np.einsum("sn,sn,s->", model, self.data, self.weights))
        model_norm = float(np.einsum("sn,sn,s->", model, model, self.weights))
        model_norm = max(model_norm - float(np.einsum("sd,sd,s->", coefficients, coefficients, self.weights)), 1e-300)
        data_norm = float(np.einsum("sn,sn,s->", self.data, self.data, self.weights))
        scale = 1.0 / math.sqrt(model_norm * data_norm)
        projected = model - np.einsum("sd,nd->sn", coefficients, self.band.basis)
        residual = (self.data - (numerator / model_norm) * projected) * self.weights[:, None]
        per_cell = np.einsum("sn,sn,n->s", 2.0 * np.sin(2.0 * theta) * self.envelope, residual, self.slope) * scale
        return numerator * scale, np.array([per_cell.sum(), *(per_cell @ self.positions)])


def tilt_gradient(
    image: np.ndarray, fit: TiltCtfFit, *, tilt_deg: float, axis_deg: float, hand: int, optics: Optics,
    low_resolution_angstrom: float, settings: SampleTiltSettings,
) -> np.ndarray:  # fmt: skip
    """One tilt's defocus gradient ``(∂/∂x, ∂/∂y)`` (Å per Å): the plane of defocus over its cells that best
    fits their rings, from the gradient of the geometry given and ``fit``'s centre defocus."""
    px = optics.pixel_spacing_angstrom
    fine = max(fit.fit_resolution_angstrom if math.isfinite(fit.fit_resolution_angstrom) else 10.0, 2.1 * px)
    band = Band.build(settings.tile_px, px, (1.0 / low_resolution_angstrom, 1.0 / fine))
    power, centres_px, counts = cell_periodograms(np.asarray(image), tile_px=settings.tile_px, band_mask=band.mask)
    positions = centres_px * px
    lam = optics.wavelength_angstrom
    start = -hand * math.tan(math.radians(tilt_deg)) * np.array([math.cos(math.radians(axis_deg)),
                                                                 math.sin(math.radians(axis_deg))])  # fmt: skip
    # A cell's tiles cover depths over about its width plus a tile's window across the gradient.
    half_depth = 0.5 * float(np.hypot(*start)) * (0.5 + 0.7) * settings.tile_px * px
    held = np.sinc(2.0 * lam * half_depth * band.k2)
    held = held * np.sinc(2.0 * lam * fit.spread_angstrom * band.k2) * np.exp(-fit.ring_decay_angstrom2 * band.k2)
    slope = math.pi * lam * band.k2
    a_x, a_y = fit.astigmatism_xy_angstrom
    base = optics.aberration_phase_rad(band.k2, a_x * band.cos2 + a_y * band.sin2) + optics.amplitude_phase_rad
    objective = _PlaneObjective(band, band.project(np.log(np.maximum(power, 1e-30))),
                                np.broadcast_to(held, power.shape), counts / counts.sum(), positions,
                                base + math.radians(fit.phase_shift_deg), slope)  # fmt: skip
    step = 1.0 / (8.0 * lam * float(band.k2.max()))
    extent = max(float(np.abs(positions).max()), px)
    scale = np.array([step, step / extent, step / extent])
    origin = np.array([fit.defocus_angstrom, *start])

    def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = objective.score_and_gradient(origin + x * scale)
        return -value, -gradient * scale

    result = scipy.optimize.minimize(negative, np.zeros(3), jac=True, method="L-BFGS-B",
                                     options={"maxiter": 200, "ftol": 1e-10, "gtol": 1e-8})  # fmt: skip
    return (origin + result.x * scale)[1:]


def fit_sample_tilt(
    images: Sequence[np.ndarray],
    fits: Sequence[TiltCtfFit],
    tilts_deg: Sequence[float],
    *,
    axis_deg: float,
    hand: int,
    optics: Optics,
    low_resolution_angstrom: float = 30.0,
    settings: SampleTiltSettings | None = None,
) -> SampleTilt:
    """The series' tilt axis and tilt offset from its tilts' defocus gradients (method in the module's notes).

    Parameters
    ----------
    images
        ``n`` tilt images ``(ny, nx)``, centre pixel ``N // 2``.
    fits
        Each tilt's CTF fit (its defocus, astigmatism, spread and decay are held; its fit resolution bounds the
        band).
    tilts_deg
        ``(n,)`` tilt angles given (alignment's or nominal), degrees; the offset found is added to these.
    axis_deg
        Tilt-axis angle given, degrees: the start of the fit (the answer stays near it: the axis turned by 180°
        is the other hand).
    hand
        ``+1`` or ``-1`` (``rlnTomoHand`` for ``axis_deg``).
    optics
        Voltage, Cs, amplitude contrast, pixel spacing.
    low_resolution_angstrom
        Coarse end of the band, Å.
    settings
        Blocks, tiles, search and the least tilt used.
    """
    settings = settings or SampleTiltSettings()
    if hand not in (-1, 1):
        raise ValueError(f"hand must be +1 or -1, got {hand}")
    used = [i for i, t in enumerate(tilts_deg) if abs(float(t)) >= settings.min_abs_tilt_deg]
    if len(used) < 2:
        raise ValueError(f"{len(used)} tilts steeper than {settings.min_abs_tilt_deg:g}°: 2 needed for a sample tilt")
    tilts = np.radians([float(tilts_deg[i]) for i in used])
    # A second pass, every tilt's search started from the first pass's geometry, moved the answers by under 0.05°:
    # the searches do not stop short towards their start.
    gradients = np.array([
        tilt_gradient(images[i], fits[i], tilt_deg=float(tilts_deg[i]), axis_deg=axis_deg, hand=hand, optics=optics,
                      low_resolution_angstrom=low_resolution_angstrom, settings=settings)
        for i in used
    ])  # fmt: skip
    (axis, offset), errors = _fit_geometry(gradients, tilts, hand, (math.radians(axis_deg), 0.0))
    return SampleTilt((math.degrees(axis) + 180.0) % 360.0 - 180.0, math.degrees(errors[0]), math.degrees(offset),
                      math.degrees(errors[1]), len(used), gradients)  # fmt: skip


def _fit_geometry(gradients: np.ndarray, tilts_rad: np.ndarray, hand: int, start: tuple[float, float]
                  ) -> tuple[tuple[float, float], tuple[float, float]]:  # fmt: skip
    """``(axis, offset)`` (rad) whose gradients ``-hand · tan(θ + offset) · p(axis)`` fit ``gradients`` ``(n, 2)``
    best, and their standard errors (rad)."""

    def residuals(x: np.ndarray) -> np.ndarray:
        a, offset = x
        predicted = -hand * np.tan(tilts_rad + offset)[:, None] * np.array([math.cos(a), math.sin(a)])[None, :]
        return (gradients - predicted).ravel()

    result = scipy.optimize.least_squares(residuals, np.array(start), method="lm")
    dof = max(result.fun.size - 2, 1)
    covariance = np.linalg.pinv(result.jac.T @ result.jac) * (float(result.fun @ result.fun) / dof)
    return (float(result.x[0]), float(result.x[1])), (math.sqrt(covariance[0, 0]), math.sqrt(covariance[1, 1]))
