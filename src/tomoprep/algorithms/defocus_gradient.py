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
    Each half's defocus comes from :mod:`tomoprep.algorithms.thon_rings`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tomoprep.algorithms.thon_rings import TILE_PX, RingModel, mean_defocus, tile_origins, tile_power_spectrum
from tomoprep.algorithms.tilt_geometry import projection_rotation
from tomoprep.physics import electron_wavelength_angstrom

__all__ = [
    "HandEvidence",
    "defocus_difference",
    "electron_wavelength_angstrom",
    "half_tiles",
    "hand_evidence",
    "hand_unmeasurable_reason",
    "mean_defocus",
    "predicted_difference",
]


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
    origins = tile_origins(image_shape_yx, tile_px)
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


def hand_unmeasurable_reason(
    image_shape_yx: tuple[int, int],
    tilts_deg: Sequence[float],
    *,
    axis_deg: float,
    pixel_spacing_angstrom: float,
    min_abs_tilt_deg: float = 15.0,
    tile_px: int = TILE_PX,
) -> str:
    """Why the defocus gradient cannot be measured on these images, in words; ``""`` when it can be.

    It cannot where no ``tile_px`` tile fits wholly on each side of the axis (a small stack, a quick binned
    look), where the pixel is too coarse for Thon rings in :data:`.thon_rings.RESOLUTION_RANGE_ANGSTROM`, or
    where no tilt is steep enough for a gradient. (Where the images show no Thon rings at all, as a stack made
    without a CTF, it can be measured, and the evidence comes out weak.)

    Parameters
    ----------
    image_shape_yx
        ``(ny, nx)`` of the images, pixels.
    tilts_deg
        ``(n,)`` tilt angles, degrees.
    axis_deg
        Tilt-axis angle, degrees counter-clockwise from the image Y axis.
    pixel_spacing_angstrom
        Pixel spacing of the images, Å.
    min_abs_tilt_deg, tile_px
        As for :func:`hand_evidence`.
    """
    ny, nx = image_shape_yx
    try:
        half_tiles(image_shape_yx, axis_deg=axis_deg, tile_px=tile_px)
    except ValueError:
        return f"no {tile_px}-px tile fits wholly on each side of a {axis_deg:.1f}° axis in {nx}×{ny}-px images"
    try:  # the band's radial bins depend on the tile and the pixel only, not on the optics
        RingModel.build(tile_px=tile_px, pixel_spacing_angstrom=pixel_spacing_angstrom, voltage_kv=300.0,
                        cs_mm=2.7, amplitude_contrast=0.1)  # fmt: skip
    except ValueError:
        finest = 2.1 * pixel_spacing_angstrom
        return f"{pixel_spacing_angstrom:.1f} Å pixels show no Thon rings finer than {finest:.0f} Å"
    if not any(abs(float(t)) >= min_abs_tilt_deg for t in tilts_deg):
        return f"no tilt is steeper than {min_abs_tilt_deg:g}°"
    return ""


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
