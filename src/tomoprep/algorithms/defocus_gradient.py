"""The defocus gradient across the tilt axis, and from it the defocus hand (RELION's ``rlnTomoHand``).

Geometry (RELION 5, :mod:`tomoprep.algorithms.tilt_geometry`)
    A specimen point ``X`` (Å from the specimen centre) lands in the image at ``(R X)[:2] + shift`` with
    ``R = Rz(axis) Ry(tilt)``; its depth is ``z' = (R X)[2]`` and its defocus ``defocus_centre + hand · z'`` (Å,
    positive = underfocus). For a flat specimen through the centre, the image point ``r`` (Å from the image
    centre, ``(x, y)``) has depth ``z' = -(R[0,2] x + R[1,2] y) / R[2,2] = -tan(tilt) (p · r)`` with
    ``p = (cos axis, sin axis)`` the direction across the tilt axis (the axis points along ``(-sin, cos)``).
    A shift or a specimen off the centre adds the same depth everywhere, so differences do not see it.
Halves
    The ``+p`` half holds the pixels with ``p · r > 0``, ``r`` from the centre pixel ``N // 2``; images are
    ``(y, x)`` arrays. The measured difference is ``defocus(+p half) - defocus(-p half)``; the geometry predicts
    ``-2 · hand · h · tan(tilt)`` for halves whose mean positions are ``±h p`` (:func:`predicted_difference`).
Hand and axis
    Projections cannot tell the axis ``a`` from ``a + 180°``: that is the same data from a mirrored specimen.
    The gradient can, given the hand; given the axis it measures the hand. Turning the axis by 180° swaps the
    halves, so **the hand measured with axis ``a + 180°`` is the opposite of the one measured with ``a``**.
Thon rings
    Each half's power spectrum is the mean periodogram of the ``tile_px`` tiles that lie wholly in it (Tukey
    window, each tile normalised to unit mean power in the fitted band, so every tile weighs the same). Its
    rotational average ``P(k)`` is compared, as ``log P`` with a polynomial background projected out, with the
    CTF's power ``sin²(χ + asin A)`` (as ``-cos 2(χ + asin A)``, projected the same way), where
    ``χ(k) = π λ Δf k² - π/2 Cs λ³ k⁴`` and ``Δf`` is positive for underfocus (RELION's sign). Astigmatism is
    averaged out by the rotational average. The ice's depth and the gradient across a half spread the defocus:
    a spread uniform over ``±w`` multiplies the rings by ``sinc(2 λ w k²)``, and ``w`` is fitted with the
    defocus (grid, then Nelder–Mead). The correlation coefficient at the optimum is the fit's quality: 0.5 to
    0.95 on the rings of one 3 e⁻/Å² tilt, near 0 where there are none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.optimize
import scipy.signal

from tomoprep.algorithms.tilt_geometry import projection_rotation

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


def electron_wavelength_angstrom(voltage_kv: float) -> float:
    """Relativistic electron wavelength, Å (0.01969 Å at 300 kV)."""
    volts = voltage_kv * 1e3
    return 12.264259 / math.sqrt(volts * (1.0 + 0.97845e-6 * volts))


def _tile_origins(image_shape_yx: tuple[int, int], tile_px: int) -> np.ndarray:
    """``(n, 2)`` origins ``(y0, x0)`` of the tiles of an image, every quarter tile side."""
    ny, nx = image_shape_yx
    step = max(tile_px // 4, 1)
    y0, x0 = np.meshgrid(np.arange(0, ny - tile_px + 1, step), np.arange(0, nx - tile_px + 1, step), indexing="ij")
    return np.stack([y0.ravel(), x0.ravel()], axis=1)


def half_tiles(
    image_shape_yx: tuple[int, int], *, axis_deg: float, tile_px: int = TILE_PX
) -> tuple[np.ndarray, np.ndarray, float]:
    """The tiles wholly on either side of the tilt axis.

    Parameters
    ----------
    image_shape_yx
        ``(ny, nx)`` of the image.
    axis_deg
        Tilt-axis angle, degrees counter-clockwise from the image Y axis.
    tile_px
        Tile side, pixels; tiles start every ``tile_px // 4`` pixels.

    Returns
    -------
    plus, minus
        ``(n, 2)`` int origins ``(y0, x0)`` of the tiles in the ``+p`` and ``-p`` halves.
    half_offset_px
        Mean ``|p · c|`` of the tile centres ``c`` (pixels from the centre pixel): the halves' mean positions
        are ``±half_offset_px · p``.
    """
    ny, nx = image_shape_yx
    origins = _tile_origins(image_shape_yx, tile_px)
    centre_x = origins[:, 1] + (tile_px - 1) / 2 - nx // 2
    centre_y = origins[:, 0] + (tile_px - 1) / 2 - ny // 2
    a = math.radians(axis_deg)
    across = math.cos(a) * centre_x + math.sin(a) * centre_y
    # A tile's corners lie within tile/2 (|cos a| + |sin a|) of its centre along p.
    margin = tile_px / 2 * (abs(math.cos(a)) + abs(math.sin(a)))
    plus, minus = across >= margin, across <= -margin
    if not plus.any() or not minus.any():
        raise ValueError(f"no {tile_px}-pixel tile fits wholly on each side of a {axis_deg}° axis in {image_shape_yx}")
    offset = float(np.concatenate([across[plus], -across[minus]]).mean())
    return origins[plus], origins[minus], offset


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
    taper = scipy.signal.windows.tukey(tile_px, TILE_TAPER)
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
    origins = _tile_origins(image.shape, tile_px)
    if origins.size == 0:
        raise ValueError(f"a {tile_px}-pixel tile does not fit in an image of shape {image.shape}")
    power = tile_power_spectrum(np.asarray(image), origins, tile_px=tile_px, band=model.band)
    fit = model.fit(power, defocus_range_angstrom=defocus_range_angstrom)
    return fit.defocus_angstrom, fit.correlation


def defocus_difference(
    image: np.ndarray,
    *,
    axis_deg: float,
    pixel_spacing_angstrom: float,
    voltage_kv: float,
    cs_mm: float,
    amplitude_contrast: float,
    defocus_range_angstrom: tuple[float, float] = (5000.0, 80000.0),
    tile_px: int = TILE_PX,
) -> tuple[float, float]:
    """Mean defocus of the image half on the ``+p`` side of the tilt axis minus that of the ``-p`` half.

    Parameters
    ----------
    image
        ``(ny, nx)`` tilt image (``image[y, x]``), centre pixel ``N // 2``.
    axis_deg
        Tilt-axis angle, degrees counter-clockwise from the image Y axis; ``p = (cos axis, sin axis)`` in
        ``(x, y)`` is the direction across it, and the ``+p`` half the pixels with ``p · r > 0``.
    pixel_spacing_angstrom
        Pixel spacing, Å.
    voltage_kv, cs_mm, amplitude_contrast
        Optics: kV, mm, fraction.
    defocus_range_angstrom
        Defocus searched for each half, Å, positive = underfocus.
    tile_px
        Tile side, pixels: only tiles wholly inside a half count (:func:`half_tiles`).

    Returns
    -------
    difference_angstrom
        ``defocus(+p half) - defocus(-p half)``, Å (positive: the ``+p`` half is further underfocus).
        Compare with :func:`predicted_difference` for ``half_offset_angstrom`` from :func:`half_tiles`.
    quality
        The smaller of the two halves' correlation coefficients (see :func:`mean_defocus`).
    """
    model = RingModel.build(
        tile_px=tile_px, pixel_spacing_angstrom=pixel_spacing_angstrom, voltage_kv=voltage_kv, cs_mm=cs_mm,
        amplitude_contrast=amplitude_contrast,
    )  # fmt: skip
    image = np.asarray(image)
    plus, minus, _ = half_tiles(image.shape, axis_deg=axis_deg, tile_px=tile_px)
    fits = [
        model.fit(
            tile_power_spectrum(image, origins, tile_px=tile_px, band=model.band),
            defocus_range_angstrom=defocus_range_angstrom,
        )
        for origins in (plus, minus)
    ]
    return fits[0].defocus_angstrom - fits[1].defocus_angstrom, min(fits[0].correlation, fits[1].correlation)


def predicted_difference(*, tilt_deg: float, axis_deg: float, hand: int, half_offset_angstrom: float) -> float:
    """The defocus difference (Å) RELION's geometry gives between the points ``+h p`` and ``-h p``.

    Parameters
    ----------
    tilt_deg
        Tilt angle (``rlnTomoYTilt``), degrees.
    axis_deg
        Tilt-axis angle (``rlnTomoZRot``), degrees; ``p = (cos axis, sin axis)``.
    hand
        ``+1`` or ``-1`` (``rlnTomoHand``).
    half_offset_angstrom
        ``h``, Å: the distance of each half's mean position from the image centre along ``p``.

    Returns
    -------
    float
        ``hand · (z'(+h p) - z'(-h p))`` with ``z'(r) = -(R[0,2] x + R[1,2] y) / R[2,2]`` the depth of a flat
        specimen through the centre, ``R = Rz(axis) Ry(tilt)``: ``-2 · hand · h · tan(tilt)`` (Å).
    """
    if hand not in (-1, 1):
        raise ValueError(f"hand must be +1 or -1, got {hand}")
    rotation = projection_rotation(y_tilt_deg=tilt_deg, z_rot_deg=axis_deg).numpy()
    a = math.radians(axis_deg)
    across = half_offset_angstrom * np.array([math.cos(a), math.sin(a)])
    depth_plus = -float(rotation[0, 2] * across[0] + rotation[1, 2] * across[1]) / float(rotation[2, 2])
    return hand * 2.0 * depth_plus


@dataclass(frozen=True)
class HandEvidence:
    """Measured defocus differences across the tilt axis against the geometry's prediction for hand ``+1``.

    ``measured ≈ slope · predicted``: a slope near ``+1`` says hand ``+1`` for this axis, near ``-1`` hand
    ``-1``. The same images with the axis turned by 180° give the opposite slope, hence the opposite hand.

    Attributes
    ----------
    axis_deg
        Tilt-axis angle assumed, degrees.
    tilts_deg
        ``(n,)`` tilts used (``|tilt| ≥ min_abs_tilt_deg``), degrees.
    measured_difference_angstrom
        ``(n,)`` :func:`defocus_difference` per tilt, Å.
    predicted_difference_angstrom
        ``(n,)`` :func:`predicted_difference` for hand ``+1``, Å.
    quality
        ``(n,)`` fit quality per tilt (the worse half's correlation coefficient).
    half_offset_angstrom
        Distance of each half's mean position from the image centre, Å.
    slope
        Least-squares ``measured / predicted`` (a line through the origin).
    slope_standard_error
        Its standard error from the residuals (``inf`` with fewer than two tilts).
    agreeing_fraction
        Fraction of tilts whose measured difference has the sign of ``sign(slope) · predicted``.
    """

    axis_deg: float
    tilts_deg: np.ndarray
    measured_difference_angstrom: np.ndarray
    predicted_difference_angstrom: np.ndarray
    quality: np.ndarray
    half_offset_angstrom: float
    slope: float
    slope_standard_error: float
    agreeing_fraction: float

    @property
    def hand(self) -> int:
        """The hand (``rlnTomoHand``, ±1) the measurements say for ``axis_deg``: the sign of the slope."""
        return 1 if self.slope >= 0 else -1

    @property
    def confidence(self) -> float:
        """``|slope| / slope_standard_error``: how many standard errors the slope lies from 0."""
        if self.slope_standard_error == 0:
            return math.inf if self.slope else 0.0
        return abs(self.slope) / self.slope_standard_error

    def consistent_with(self, hand: int) -> bool:
        """Whether ``hand`` (±1) is the hand the measurements say for ``axis_deg``."""
        return hand == self.hand


def hand_evidence(
    images: np.ndarray | Sequence[np.ndarray],
    tilts_deg: Sequence[float],
    *,
    axis_deg: float,
    pixel_spacing_angstrom: float,
    voltage_kv: float,
    cs_mm: float,
    amplitude_contrast: float,
    min_abs_tilt_deg: float = 15.0,
    defocus_range_angstrom: tuple[float, float] = (5000.0, 80000.0),
    tile_px: int = TILE_PX,
) -> HandEvidence:
    """The defocus hand a tilt series shows for an assumed tilt axis.

    Parameters
    ----------
    images
        ``(n, ny, nx)`` tilt images (or ``n`` images of one shape). They need not be aligned: a shift adds the
        same depth to both halves.
    tilts_deg
        ``(n,)`` tilt angles (``rlnTomoYTilt``), degrees. Angles of the opposite sign (Warp's default) give the
        opposite hand, as the other axis does.
    axis_deg
        Tilt-axis angle (``rlnTomoZRot``), degrees counter-clockwise from the image Y axis. The answer is for
        this axis: with ``axis_deg + 180`` the same images give the opposite hand.
    pixel_spacing_angstrom
        Pixel spacing, Å.
    voltage_kv, cs_mm, amplitude_contrast
        Optics: kV, mm, fraction.
    min_abs_tilt_deg
        Tilts closer to 0 than this (degrees) are skipped: their gradient is small against the fit's error.
    defocus_range_angstrom
        Defocus searched for each half, Å.
    tile_px
        Tile side, pixels.

    Returns
    -------
    HandEvidence
        Per tilt the measured and predicted differences; the slope, its error and the hand.
    """
    if len(images) != len(tilts_deg):
        raise ValueError(f"{len(images)} images for {len(tilts_deg)} tilt angles")
    used = [i for i, tilt in enumerate(tilts_deg) if abs(float(tilt)) >= min_abs_tilt_deg]
    if not used:
        raise ValueError(f"no tilt has |tilt| ≥ {min_abs_tilt_deg}° among {list(tilts_deg)}")
    _, _, offset_px = half_tiles(np.shape(images[0])[-2:], axis_deg=axis_deg, tile_px=tile_px)
    offset = offset_px * pixel_spacing_angstrom
    measured, predicted, quality = [], [], []
    for i in used:
        difference, fit_quality = defocus_difference(
            np.asarray(images[i]), axis_deg=axis_deg, pixel_spacing_angstrom=pixel_spacing_angstrom,
            voltage_kv=voltage_kv, cs_mm=cs_mm, amplitude_contrast=amplitude_contrast,
            defocus_range_angstrom=defocus_range_angstrom, tile_px=tile_px,
        )  # fmt: skip
        measured.append(difference)
        quality.append(fit_quality)
        predicted.append(
            predicted_difference(tilt_deg=float(tilts_deg[i]), axis_deg=axis_deg, hand=1, half_offset_angstrom=offset)
        )
    y, x = np.array(measured), np.array(predicted)
    slope = float(x @ y / (x @ x))
    residual = y - slope * x
    error = math.sqrt(float(residual @ residual) / (x.size - 1) / float(x @ x)) if x.size > 1 else math.inf
    return HandEvidence(
        axis_deg=axis_deg, tilts_deg=np.array([float(tilts_deg[i]) for i in used]),
        measured_difference_angstrom=y, predicted_difference_angstrom=x, quality=np.array(quality),
        half_offset_angstrom=offset, slope=slope, slope_standard_error=error,
        agreeing_fraction=float(np.mean(np.sign(y) == np.sign(slope) * np.sign(x))),
    )  # fmt: skip
