"""CTF fit of one tilt image with the specimen's defocus gradient (spectra and model: :mod:`.ctf_spectrum`).

Every strip of tiles is modelled with its own defocus, ``defocus_centre + hand · z'_strip`` (as CTFFIND5 and
AreTomo3 model a tilted specimen), so the fitted defocus is the one at the tilt's centre and the rings of the
strips far from the axis sharpen the fit instead of blurring it.

1. Coarse: rotational averages of the strips against the astigmatism-free model, over a defocus grid (phase step
   at the band's edge below π/8), a grid of defocus spreads (ice depth) and of ring decays ``exp(-b k²)``, with
   the phase shift on a grid when it is fitted.
2. Ring quality (:func:`.ctf_tilt.ring_quality`): the pixels are binned by CTF phase (``χ + asin A + φ``, each at
   its strip's defocus), data and model averaged per bin (an equiphase average), and each ring's bins
   correlated. The fit resolution is the outer edge of the last ring before the first whose running window of
   rings (at least 60 bins) correlates with the model below 3 standard deviations of noise (Fisher's z,
   :func:`.ctf_tilt.windowed_significance`; as CTFFIND reports "the spacing up to which CTF rings were fit
   successfully"), provided a window before it reached 5 (a model fitted to noise reaches 3–5 there); the
   single rings' correlations, clipped at 0, weight the model in the refinement (a matched filter: rings the
   data do not show do not count).
3. Refinement: the 2-D spectra within the fit resolution, defocus, astigmatism ``(a_x, a_y)`` (grid of
   magnitudes and directions, then L-BFGS on the score's analytic gradient, :mod:`.ctf_objective`), the phase
   shift when asked, spread and decay; once more where that moved the fit resolution. Both keep to the basin of
   the coarse fit (:func:`.ctf_tilt.basin`): on a narrow band a free astigmatism could trade against the defocus.

The figure of merit is the weighted correlation of data and model over the refined band (0 to 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tomoprep.algorithms.ctf_spectrum import (
    BACKGROUND_DEGREE,
    Band,
    Optics,
    StripSpectra,
    rings,
    spread_envelope,
    strip_spectra,
)

#: Half-widths (Å) of the uniform defocus spread tried in the coarse search: the ice's depth blurs the rings.
SPREAD_GRID_ANGSTROM = np.arange(0.0, 3001.0, 500.0)
#: Decays ``b`` (Å²) of the rings' amplitude, ``exp(-b k²)``, tried in the coarse search.
DECAY_GRID_ANGSTROM2 = (0.0, 100.0, 300.0, 1000.0)
_PHASE_GRID_RAD = np.linspace(0.0, math.pi, 12, endpoint=False)


@dataclass(frozen=True)
class FitSettings:
    """Choices of the per-tilt fit.

    Attributes
    ----------
    tile_px
        Tile side, pixels.
    resolution_range_angstrom
        Band fitted (Å, low then high resolution); the high end is clipped at 2.1 pixels.
    fit_phase_shift
        Fit a phase-plate shift (0–180°) as well.
    fit_significance_z
        Significance (noise standard deviations, :func:`.ctf_tilt.windowed_significance`) below which the rings no
        longer fit: the fit resolution.
    fit_start_significance_z
        Significance that one window of the rings before must reach for the fit to hold at all (above what a
        model fitted to pure noise reaches there).
    """

    tile_px: int = 256
    resolution_range_angstrom: tuple[float, float] = (30.0, 5.0)
    fit_phase_shift: bool = False
    fit_significance_z: float = 3.0
    fit_start_significance_z: float = 5.0


@dataclass(frozen=True)
class TiltCtfFit:
    """The CTF of one tilt at its centre (RELION's conventions: Å, positive = underfocus; angle from X to Y).

    Attributes
    ----------
    defocus_u_angstrom, defocus_v_angstrom
        Defocus along U and V, Å (``U ≥ V``).
    astigmatism_angle_deg
        Angle from image X to U, degrees, in ``(-90, 90]``.
    phase_shift_deg
        Phase-plate shift, degrees (0 unless fitted).
    fit_resolution_angstrom
        Finest spacing (Å) up to which the rings fit (``rlnCtfMaxResolution``).
    figure_of_merit
        Weighted correlation of data and model over the fitted band (``rlnCtfFigureOfMerit``).
    spread_angstrom
        Half-width of the defocus spread (ice depth) that best explains the rings' fading, Å.
    hand
        The gradient's sense used (``rlnTomoHand``; 0: no gradient).
    ring_decay_angstrom2
        ``b`` of the ``exp(-b k²)`` fading of the rings in the log power that the fit found, Å².
    coarse_score
        Correlation of the coarse search's best model with the strips' rotational averages: the evidence of rings,
        weighed against noise by :mod:`.ctf_significance` (``nan`` where not fitted).
    """

    defocus_u_angstrom: float
    defocus_v_angstrom: float
    astigmatism_angle_deg: float
    phase_shift_deg: float
    fit_resolution_angstrom: float
    figure_of_merit: float
    spread_angstrom: float
    hand: int
    ring_decay_angstrom2: float = 0.0
    coarse_score: float = math.nan

    @property
    def defocus_angstrom(self) -> float:
        """Mean of U and V, Å."""
        return 0.5 * (self.defocus_u_angstrom + self.defocus_v_angstrom)

    @property
    def astigmatism_angstrom(self) -> float:
        """``U - V``, Å (``rlnCtfAstigmatism``)."""
        return self.defocus_u_angstrom - self.defocus_v_angstrom

    @property
    def astigmatism_xy_angstrom(self) -> tuple[float, float]:
        """``(a_x, a_y)``: half the astigmatism along ``(cos 2·angle, sin 2·angle)``, Å."""
        half, angle = 0.5 * self.astigmatism_angstrom, math.radians(2 * self.astigmatism_angle_deg)
        return half * math.cos(angle), half * math.sin(angle)


@dataclass(frozen=True)
class TiltSpectra:
    """One tilt's strip spectra, ready to fit with either sense of the gradient.

    ``depth_angstrom`` ``(s,)`` is each strip's depth ``z' = -tan(tilt) · across`` (Å), ``depth_spread_angstrom``
    ``(s,)`` the half-width of the depths a strip's tiles cover.
    """

    optics: Optics
    band: Band
    strips: StripSpectra
    depth_angstrom: np.ndarray
    depth_spread_angstrom: np.ndarray
    settings: FitSettings

    @property
    def weights(self) -> np.ndarray:
        """``(s,)`` weight of each strip: its tile count (the inverse variance of its mean periodogram)."""
        return self.strips.n_tiles / self.strips.n_tiles.sum()


def prepare_tilt(
    image: np.ndarray, *, tilt_deg: float, axis_deg: float, optics: Optics, settings: FitSettings | None = None
) -> TiltSpectra:
    """The strip spectra of one tilt image (``(ny, nx)``) at ``tilt_deg`` about ``axis_deg`` (degrees)."""
    settings = settings or FitSettings()
    px = optics.pixel_spacing_angstrom
    low, high = settings.resolution_range_angstrom
    band = Band.build(settings.tile_px, px, (1.0 / low, min(1.0 / high, 1.0 / (2.1 * px))))
    strips = strip_spectra(
        np.asarray(image), axis_deg=axis_deg, tile_px=settings.tile_px, pixel_spacing_angstrom=px, band_mask=band.mask
    )
    slope = math.tan(math.radians(tilt_deg))
    return TiltSpectra(optics, band, strips, -slope * strips.across_angstrom,
                       abs(slope) * strips.half_width_angstrom, settings)  # fmt: skip


def _correlation(data: np.ndarray, model: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted correlation of ``data`` ``(s, n)`` with models ``(..., s, n)`` summed over strips, ``(...)``."""
    numerator = np.einsum("...sn,sn,s->...", model, data, weights)
    model_norm = np.einsum("...sn,...sn,s->...", model, model, weights)
    data_norm = float(np.einsum("sn,sn,s->", data, data, weights))
    return numerator / np.sqrt(np.maximum(model_norm * data_norm, 1e-300))


def _radial_profiles(spectra: TiltSpectra) -> tuple[Band, np.ndarray]:
    """Rotational averages of the strips' residuals: a 1-D band (bin ``k²``, background basis) and ``(s, bins)``."""
    band = spectra.band
    px, tile = spectra.optics.pixel_spacing_angstrom, spectra.settings.tile_px
    bins = np.rint(np.sqrt(band.k2) * tile * px).astype(int)
    labels, which = np.unique(bins, return_inverse=True)
    counts = np.bincount(which)
    residuals = spectra.strips.log_residuals(band)
    profiles = np.stack([np.bincount(which, r) / counts for r in residuals])
    k2 = np.bincount(which, band.k2) / counts
    x = (labels - labels.mean()) / max(float(np.ptp(labels)), 1.0)
    basis, _ = np.linalg.qr(np.vander(x, BACKGROUND_DEGREE + 1, increasing=True))
    zeros = np.zeros_like(k2)
    radial = Band(mask=band.mask, k2=k2, cos2=zeros, sin2=zeros, basis=basis)
    return radial, radial.project(profiles)


def _strip_envelopes(
    band: Band, spectra: TiltSpectra, spread_angstrom: float, decay_angstrom2: float,
    depth_sinc: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """``(s, n)`` fading of each strip's rings: ice spread, the strip's own depth spread, and ``exp(-b k²)``.

    ``depth_sinc`` is the strips' own part (:func:`_depth_sinc`) when it was computed already.

    The decay ``b`` (Å²) stands for what else fades the rings in the log power (the signal's fall against the
    noise); without it, the spread would be stretched to fake that fading, and its sign changes would invert
    the model's fine rings.
    """
    ice_and_decay = np.sinc(2.0 * spectra.optics.wavelength_angstrom * spread_angstrom * band.k2)
    ice_and_decay *= np.exp(-decay_angstrom2 * band.k2)
    return (_depth_sinc(band, spectra) if depth_sinc is None else depth_sinc) * ice_and_decay[None, :]


def _depth_sinc(band: Band, spectra: TiltSpectra) -> np.ndarray:
    """``(s, n)`` fading of each strip's rings by the depths its own tiles cover."""
    return spread_envelope(band, spectra.optics, spectra.depth_spread_angstrom)


def coarse_search(
    spectra: TiltSpectra, *, hand: int, defocus_range_angstrom: tuple[float, float]
) -> tuple[float, float, float, float, float]:
    """Astigmatism-free grid search on the strips' rotational averages.

    Returns
    -------
    tuple of float
        Defocus at the centre (Å), spread half-width (Å), ring decay (Å²), phase shift (rad), correlation.
    """
    radial, profiles = _radial_profiles(spectra)
    optics = spectra.optics
    low, high = defocus_range_angstrom
    step = max(10.0, 1.0 / (8.0 * optics.wavelength_angstrom * float(radial.k2.max())))
    grid = np.arange(low, high + step, step)
    phases = _PHASE_GRID_RAD if spectra.settings.fit_phase_shift else np.zeros(1)
    best = (-np.inf, low, 0.0, 0.0, 0.0)
    for phase in phases:
        per_strip = np.stack([rings(radial, optics, grid + hand * d, phase_shift_rad=float(phase))
                              for d in spectra.depth_angstrom], axis=1)  # fmt: skip  # (g, s, n)
        for spread in SPREAD_GRID_ANGSTROM:
            for decay in DECAY_GRID_ANGSTROM2:
                envelopes = _strip_envelopes(radial, spectra, float(spread), decay)
                scores = _correlation(profiles, radial.project(per_strip * envelopes[None]), spectra.weights)
                index = int(np.argmax(scores))
                if scores[index] > best[0]:
                    best = (float(scores[index]), float(grid[index]), float(spread), decay, float(phase))
    return best[1], best[2], best[3], best[4], best[0]
