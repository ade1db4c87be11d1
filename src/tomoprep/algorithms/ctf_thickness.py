"""The specimen's thickness from the nodes of the Thon rings (as CTFFIND5, Elferich et al. 2024).

Model
    A slab ``t`` thick along its normal, tilted by ``θ``, spans ``t / cos θ`` of depth along the beam; its
    layers are imaged at defoci spread uniformly over ``Δf ± t / (2 cos θ)``. Amorphous layers add their power,
    so the spectrum holds the mean over that spread of ``sin² χ``: with ``χ = π λ Δf k² + …``,
    ``<sin² χ> = 1/2 - 1/2 cos(2 χ₀) · sin(π λ k² t_θ) / (π λ k² t_θ)``, ``t_θ = t / cos θ``. The rings fade
    to a first *node* at ``λ k² t_θ = 1`` and come back inverted beyond it. In NumPy's ``sinc`` this is the
    ring model's spread term ``sinc(2 λ w k²)`` (:func:`.ctf_spectrum.spread_envelope`) with the half-width
    ``w = t / (2 cos θ)``, times each strip's own spread from the gradient (two uniform spreads convolved).
Fit
    Each tilt's spectra are taken again on a band out to 2.1 pixels (the rings' nodes lie finer than the
    defocus fit's 5 Å), its defocus, astigmatism and hand held from the series fit (the defocus re-refined on
    the wider band). For a grid of ``t`` the tilt's score (the correlation of :mod:`.ctf_objective`) is taken
    with the best ring decay ``exp(-b k²)`` from a grid; the series' thickness maximises the summed scores of
    its tilts, each at ``t / cos θ`` (the scores are precomputed per ``k²`` bin, so a grid costs little).
    Its error is the jackknife over tilts.
Measurable?
    The decay alone fades the rings as well as a node does before it; what only a node gives is the rings
    *inverted* beyond it. The series' evidence is the mean correlation of each tilt's data with the fitted model
    beyond the model's first node (where it predicts inverted rings), over its standard error across the tilts.
    Below ``min_confidence``, or where fewer than three tilts' bands reach past the node, the thickness is not
    claimed; the log then gives the rings' end without a node (:func:`.ctf_tilt.fit_limit` on the node-free
    model) and the thickness below which every tilt's first node lies finer than it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.optimize

from tomoprep.algorithms.ctf_fit import FitSettings, TiltCtfFit, TiltSpectra, _depth_sinc, prepare_tilt
from tomoprep.algorithms.ctf_objective import RingObjective
from tomoprep.algorithms.ctf_spectrum import TILE_TAPER, Band, Optics, ctf_argument, tukey_window, window_fading
from tomoprep.algorithms.ctf_tilt import _Point, fit_limit, ring_bins, windowed_significance

#: Ring decays ``b`` (Å²) tried with every thickness.
DECAY_GRID_ANGSTROM2 = np.concatenate([[0.0], np.geomspace(4.0, 2000.0, 13)])
#: ``k²`` bins over which the envelopes are taken as constant.
_K2_BINS = 300
#: Thickness step (Å) of the first search over the whole range; the peak is then refined on the finer grid.
_COARSE_STEP_ANGSTROM = 50.0


@dataclass(frozen=True)
class ThicknessSettings:
    """Choices of the thickness fit: the thickness grid (Å, along the slab's normal), the band's fine end (Å,
    clipped at 2.1 pixels), the evidence needed to claim a thickness, the rings' significance that ends them
    (:func:`.ctf_tilt.windowed_significance`)."""

    max_thickness_angstrom: float = 6000.0
    thickness_step_angstrom: float = 10.0
    high_resolution_angstrom: float = 2.0
    min_confidence: float = 4.0
    fit_significance_z: float = 3.0


@dataclass(frozen=True)
class ThicknessEstimate:
    """The specimen's thickness from the rings' nodes.

    Attributes
    ----------
    thickness_angstrom
        Along the slab's normal, Å; None when not measurable (``reason`` says why).
    error_angstrom
        Jackknife standard error over the tilts, Å (``nan`` with fewer than 3 tilts).
    best_fit_angstrom
        The thickness that maximised the score, claimed or not, Å.
    confidence
        Mean correlation beyond the fitted first node over its standard error across tilts.
    rings_end_angstrom
        Finest end of the node-free rings over the tilts, Å.
    measurable_from_angstrom
        Thinner than this (Å), every tilt's first node lies finer than its rings end.
    first_node_angstrom
        First node of the best fit at the tilt nearest 0°, Å (spacing).
    n_tilts
        Tilts used.
    reason
        Why no thickness is claimed, in words; ``""`` when it is.
    """

    thickness_angstrom: float | None
    error_angstrom: float
    best_fit_angstrom: float
    confidence: float
    rings_end_angstrom: float
    measurable_from_angstrom: float
    first_node_angstrom: float
    n_tilts: int
    reason: str

    def describe(self) -> str:
        """One line for the log."""
        if self.thickness_angstrom is not None:
            return (f"specimen thickness from the CTF: {self.thickness_angstrom / 10:.0f} ± "
                    f"{self.error_angstrom / 10:.0f} nm ({self.n_tilts} tilts, evidence {self.confidence:.1f}, "
                    f"first node at {self.first_node_angstrom:.1f} Å)")  # fmt: skip
        return f"thickness not measurable from the CTF ({self.reason})"


@dataclass(frozen=True)
class WideSpectra:
    """One tilt's strip spectra on the wide band and the ``(s, n)`` fading of each strip's rings by the depths
    its tiles cover (the window-weighted footprint of every tile, not a uniform spread)."""

    spectra: TiltSpectra
    depth_fading: np.ndarray


def prepare_wide(image: np.ndarray, *, tilt_deg: float, axis_deg: float, optics: Optics, tile_px: int,
                 low_resolution_angstrom: float, settings: ThicknessSettings) -> WideSpectra:  # fmt: skip
    """One tilt's strip spectra on the band out to ``settings.high_resolution_angstrom`` (clipped at 2.1 px)."""
    band = (low_resolution_angstrom, settings.high_resolution_angstrom)
    spectra = prepare_tilt(image, tilt_deg=tilt_deg, axis_deg=axis_deg, optics=optics,
                           settings=FitSettings(tile_px=tile_px, resolution_range_angstrom=band))  # fmt: skip
    return WideSpectra(spectra, _depth_fading(spectra, np.shape(image), tilt_deg, axis_deg))


def _footprint(tile_px: int, axis_deg: float) -> np.ndarray:
    """``(2 tile_px + 1,)`` a tile's window power along ``p`` by whole pixels from its centre (sums to 1)."""
    taper = tukey_window(tile_px, TILE_TAPER)
    a = math.radians(axis_deg)
    offsets = np.arange(tile_px) - (tile_px - 1) / 2
    along = math.cos(a) * offsets[None, :] + math.sin(a) * offsets[:, None]
    profile = np.bincount(np.rint(along).astype(int).ravel() + tile_px, (np.outer(taper, taper) ** 2).ravel(),
                          minlength=2 * tile_px + 1)  # fmt: skip
    return profile / profile.sum()


def _depth_fading(spectra: TiltSpectra, shape_yx: tuple[int, ...], tilt_deg: float, axis_deg: float) -> np.ndarray:
    """``(s, n)``: the mean of ``cos(2π λ k² δ)`` over the defocus offsets ``δ`` of the pixels a strip's tiles
    cover, about the strip's own defocus (the strips as :func:`.ctf_spectrum.strip_spectra` makes them)."""
    tile, band, px = spectra.settings.tile_px, spectra.band, spectra.optics.pixel_spacing_angstrom
    ny, nx = shape_yx[-2:]
    step = max(tile // 4, 1)
    y0, x0 = np.meshgrid(np.arange(0, ny - tile + 1, step), np.arange(0, nx - tile + 1, step), indexing="ij")
    a = math.radians(axis_deg)
    across = (math.cos(a) * (x0.ravel() + (tile - 1) / 2 - nx // 2)
              + math.sin(a) * (y0.ravel() + (tile - 1) / 2 - ny // 2))  # fmt: skip
    labels = np.rint(across / (tile / 2)).astype(int)
    strips = np.unique(labels)
    if strips.size != spectra.strips.n_tiles.size:  # a strip of blank tiles left out: fall back to the uniform model
        return _depth_sinc(band, spectra)
    footprint = _footprint(tile, axis_deg)
    slope = math.tan(math.radians(tilt_deg)) * px  # Å of depth per pixel across the axis
    edges = np.linspace(band.k2.min(), band.k2.max(), _K2_BINS)
    fading = []
    for label in strips:
        centres = np.rint(across[labels == label]).astype(int)
        positions = np.arange(centres.min() - tile, centres.max() + tile + 1)
        weights = np.zeros(positions.size)
        for c in centres:
            weights[c - centres.min() : c - centres.min() + footprint.size] += footprint
        weights /= weights.sum()
        depth = slope * (positions - float(weights @ positions))
        wave = np.einsum("bu,u->b", np.cos(2.0 * math.pi * spectra.optics.wavelength_angstrom * edges[:, None]
                                           * depth[None, :]), weights)  # fmt: skip
        fading.append(np.interp(band.k2, edges, wave))
    return np.stack(fading)


def node_spacing_angstrom(thickness_angstrom: float, tilt_deg: float, wavelength_angstrom: float) -> float:
    """Spacing (Å) of the first node, ``λ k² t / cos θ = 1``, of a slab ``thickness_angstrom`` thick at
    ``tilt_deg``."""
    return math.sqrt(wavelength_angstrom * thickness_angstrom / math.cos(math.radians(tilt_deg)))


def _point(fit: TiltCtfFit, spread_angstrom: float = 0.0, decay_angstrom2: float = 0.0) -> _Point:
    return _Point(fit.defocus_angstrom, fit.astigmatism_xy_angstrom, math.radians(fit.phase_shift_deg),
                  spread_angstrom, decay_angstrom2)  # fmt: skip


def window_envelope(spectra: TiltSpectra, band: Band, defocus_angstrom: np.ndarray,
                    astigmatism_xy_angstrom: tuple[float, float]) -> np.ndarray:  # fmt: skip
    """``(s, n)`` fading of the rings by the tiles' window, at each strip's defocus (Å, ``(s,)``)
    (:func:`.ctf_spectrum.window_fading`). At 3 µm and 4.5 Å its lag is 260 Å, two thirds of a 256-px tile of
    1.5 Å: a fit blind to it finds the node too fine."""
    return window_fading(band, spectra.optics, spectra.settings.tile_px, defocus_angstrom, astigmatism_xy_angstrom)


def _static(wide: WideSpectra, fit: TiltCtfFit, defocus_angstrom: float) -> np.ndarray:
    """``(s, n)`` the fading held in the thickness fit: each strip's own depths and the tiles' window."""
    spectra = wide.spectra
    strips = defocus_angstrom + fit.hand * spectra.depth_angstrom
    return wide.depth_fading * window_envelope(spectra, spectra.band, strips, fit.astigmatism_xy_angstrom)


@dataclass(frozen=True)
class _BinnedTerms:
    """The score's sums for one tilt at fixed ring phases, per ``k²`` bin, for envelopes that depend on ``k²``."""

    k2: np.ndarray  # (b,) mean k² per bin
    cross: np.ndarray  # (b,) Σ w_s m_sn d_sn
    power: np.ndarray  # (b,) Σ w_s m_sn²
    basis: np.ndarray  # (s, b, d) Σ m_sn B_nd
    weights: np.ndarray  # (s,)
    data_norm: float

    def scores(self, envelopes: np.ndarray) -> np.ndarray:
        """The correlation for envelopes ``(g, b)``, ``(g,)``."""
        numerator = np.einsum("gb,b->g", envelopes, self.cross)
        coefficients = np.einsum("gb,sbd->gsd", envelopes, self.basis)
        model_norm = np.einsum("gb,gb,b->g", envelopes, envelopes, self.power)
        model_norm -= np.einsum("gsd,gsd,s->g", coefficients, coefficients, self.weights)
        return numerator / np.sqrt(np.maximum(model_norm, 1e-300) * self.data_norm)


def _binned_terms(wide: WideSpectra, fit: TiltCtfFit, defocus_angstrom: float) -> _BinnedTerms:
    spectra = wide.spectra
    band = spectra.band
    depth = fit.hand * spectra.depth_angstrom
    argument = ctf_argument(band, spectra.optics, depth + defocus_angstrom, fit.astigmatism_xy_angstrom,
                            math.radians(fit.phase_shift_deg))  # fmt: skip
    rings = -np.cos(2.0 * argument) * _static(wide, fit, defocus_angstrom)
    data = spectra.strips.log_residuals(band)
    weights = spectra.weights
    edges = np.linspace(band.k2.min(), band.k2.max(), _K2_BINS + 1)
    which = np.clip(np.searchsorted(edges, band.k2, side="right") - 1, 0, _K2_BINS - 1)
    counts = np.maximum(np.bincount(which, minlength=_K2_BINS), 1)
    k2 = np.bincount(which, band.k2, minlength=_K2_BINS) / counts
    cross = np.bincount(which, np.einsum("s,sn,sn->n", weights, rings, data), minlength=_K2_BINS)
    power = np.bincount(which, np.einsum("s,sn,sn->n", weights, rings, rings), minlength=_K2_BINS)
    degrees = range(band.basis.shape[1])
    basis = np.stack([np.stack([np.bincount(which, strip * band.basis[:, d], minlength=_K2_BINS) for d in degrees],
                               axis=1) for strip in rings])  # fmt: skip
    data_norm = float(np.einsum("s,sn,sn->", weights, data, data))
    return _BinnedTerms(k2, cross, power, basis, weights, data_norm)


def _envelopes(k2: np.ndarray, wavelength: float, spreads: np.ndarray, decays: np.ndarray) -> np.ndarray:
    """``(len(spreads) · len(decays), b)``: ``sinc(2 λ w k²) exp(-b k²)`` for every pair, spreads outer."""
    ice = np.sinc(2.0 * wavelength * spreads[:, None] * k2[None, :])
    decay = np.exp(-decays[:, None] * k2[None, :])
    return (ice[:, None, :] * decay[None, :, :]).reshape(-1, k2.size)


def tilt_profile(wide: WideSpectra, fit: TiltCtfFit, tilt_deg: float, thickness_grid_angstrom: np.ndarray,
                 defocus_angstrom: float | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """One tilt's best score over the decays for each thickness of the grid (Å, along the normal): ``(T,)``
    scores and ``(T,)`` decays (Å²)."""
    terms = _binned_terms(wide, fit, fit.defocus_angstrom if defocus_angstrom is None else defocus_angstrom)
    spreads = thickness_grid_angstrom / (2.0 * math.cos(math.radians(tilt_deg)))
    wavelength = wide.spectra.optics.wavelength_angstrom
    scores = terms.scores(_envelopes(terms.k2, wavelength, spreads, DECAY_GRID_ANGSTROM2))
    scores = scores.reshape(spreads.size, DECAY_GRID_ANGSTROM2.size)
    best = np.argmax(scores, axis=1)
    return scores[np.arange(spreads.size), best], DECAY_GRID_ANGSTROM2[best]


def refine_defocus(wide: WideSpectra, fit: TiltCtfFit, spread_angstrom: float, decay_angstrom2: float) -> float:
    """The centre defocus (Å) on the wide band at a spread and decay, within a quarter ring of ``fit``'s."""
    spectra = wide.spectra
    band = spectra.band
    objective = RingObjective.build(spectra, band, fit.hand, _static(wide, fit, fit.defocus_angstrom))
    point = _point(fit, spread_angstrom, decay_angstrom2)
    start = np.array([point.defocus_angstrom, *point.astigmatism_xy_angstrom, point.phase_shift_rad,
                      spread_angstrom, decay_angstrom2])  # fmt: skip
    step = 1.0 / (8.0 * spectra.optics.wavelength_angstrom * float(band.k2.max()))

    def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
        params = start.copy()
        params[0] += x[0] * step
        value, gradient = objective.score_and_gradient(params)
        return -value, np.array([-gradient[0] * step])

    result = scipy.optimize.minimize(negative, np.zeros(1), jac=True, method="L-BFGS-B", bounds=[(-2.0, 2.0)])
    return float(start[0] + result.x[0] * step)


def _peak(grid: np.ndarray, values: np.ndarray) -> float:
    """The maximum of sampled ``values`` ``(T,)``, refined by a parabola through its neighbours."""
    i = int(np.argmax(values))
    if 0 < i < grid.size - 1:
        left, centre, right = values[i - 1 : i + 2]
        curvature = left - 2.0 * centre + right
        if curvature < 0:
            return float(grid[i] + 0.5 * (left - right) / curvature * (grid[1] - grid[0]))
    return float(grid[i])


def _beyond_node(wide: WideSpectra, fit: TiltCtfFit, defocus_angstrom: float, spread_angstrom: float,
                 decay_angstrom2: float, thresholds: tuple[float, float]) -> tuple[float, float | None]:  # fmt: skip
    """The node-free rings' end (1/Å), and the correlation of data and fitted model beyond the model's first
    node, where its rings are inverted (None where the band holds too little beyond the node)."""
    spectra = wide.spectra
    shift = defocus_angstrom - fit.defocus_angstrom
    fit = dataclasses.replace(fit, defocus_u_angstrom=fit.defocus_u_angstrom + shift,
                              defocus_v_angstrom=fit.defocus_v_angstrom + shift)  # fmt: skip
    rings = ring_bins(spectra, fit.hand, _point(fit, 0.0, decay_angstrom2))
    end = fit_limit(np.array([r[1] for r in rings]), windowed_significance(rings), *thresholds)
    band, lam = spectra.band, spectra.optics.wavelength_angstrom
    beyond = 2.0 * lam * spread_angstrom * band.k2 > 1.0  # past the first node, sinc(2 λ w k²) = 0
    if spread_angstrom <= 0 or beyond.sum() < 50:
        return end, None
    point = _point(fit, spread_angstrom, decay_angstrom2)
    argument = ctf_argument(band, spectra.optics, fit.hand * spectra.depth_angstrom + defocus_angstrom,
                            point.astigmatism_xy_angstrom, point.phase_shift_rad)  # fmt: skip
    envelope = np.sinc(2.0 * lam * spread_angstrom * band.k2) * np.exp(-decay_angstrom2 * band.k2)
    model = band.project(-np.cos(2.0 * argument) * _static(wide, fit, defocus_angstrom) * envelope[None, :])
    model = model[:, beyond]
    data = spectra.strips.log_residuals(band)[:, beyond]
    w = spectra.weights
    numerator = float(np.einsum("s,sn,sn->", w, model, data))
    norm = float(np.einsum("s,sn,sn->", w, model, model)) * float(np.einsum("s,sn,sn->", w, data, data))
    return end, numerator / math.sqrt(max(norm, 1e-300))


def _jackknife(grid: np.ndarray, profiles: np.ndarray) -> float:
    """Jackknife standard error (Å) of the summed profiles' peak over the tilts (``profiles`` ``(n, T)``)."""
    n = profiles.shape[0]
    if n < 3:
        return math.nan
    total = profiles.sum(axis=0)
    peaks = np.array([_peak(grid, total - profiles[i]) for i in range(n)])
    return math.sqrt((n - 1) / n * float(np.sum((peaks - peaks.mean()) ** 2)))


def fit_thickness(
    spectra: Sequence[WideSpectra],
    fits: Sequence[TiltCtfFit],
    tilts_deg: Sequence[float],
    settings: ThicknessSettings | None = None,
) -> ThicknessEstimate:
    """The thickness of the slab (Å, along its normal) shared by a series' tilts (method in the module's notes).

    Parameters
    ----------
    spectra
        Each tilt's strip spectra on the wide band (:func:`prepare_wide`).
    fits
        Each tilt's CTF fit from the series (defocus, astigmatism, phase shift, hand held).
    tilts_deg
        ``(n,)`` the specimen's tilt of each, degrees (the path through the slab is ``t / cos θ``).
    settings
        Grid, band and evidence threshold.
    """
    settings = settings or ThicknessSettings()
    if not len(spectra) == len(fits) == len(tilts_deg) or not fits:
        raise ValueError(f"{len(spectra)} spectra, {len(fits)} fits and {len(tilts_deg)} tilts: one of each needed")
    coarse = np.arange(0.0, settings.max_thickness_angstrom + _COARSE_STEP_ANGSTROM / 2, _COARSE_STEP_ANGSTROM)
    coarse_profiles, defoci = [], []
    for sp, fit, tilt in zip(spectra, fits, tilts_deg, strict=True):
        scores, decay = tilt_profile(sp, fit, tilt, coarse)
        j = int(np.argmax(scores))
        defocus = refine_defocus(sp, fit, coarse[j] / (2.0 * math.cos(math.radians(tilt))), float(decay[j]))
        coarse_profiles.append(tilt_profile(sp, fit, tilt, coarse, defocus)[0])
        defoci.append(defocus)
    # The peak on a grid as fine as asked, around the coarse one (wide enough for the jackknife's peaks).
    centre = float(coarse[int(np.argmax(np.sum(coarse_profiles, axis=0)))])
    step = settings.thickness_step_angstrom
    grid = np.arange(max(centre - 4 * _COARSE_STEP_ANGSTROM, 0.0), centre + 4 * _COARSE_STEP_ANGSTROM + step / 2, step)
    fine = [tilt_profile(sp, fit, tilt, grid, defocus)
            for sp, fit, tilt, defocus in zip(spectra, fits, tilts_deg, defoci, strict=True)]  # fmt: skip
    stacked = np.stack([scores for scores, _ in fine])
    best = _peak(grid, stacked.sum(axis=0))
    index = int(np.argmin(np.abs(grid - best)))
    ends, beyond = [], []
    for sp, fit, tilt, defocus, (_, decay) in zip(spectra, fits, tilts_deg, defoci, fine, strict=True):
        spread = best / (2.0 * math.cos(math.radians(tilt)))
        # The series' good tilts, whose rings passed the test against noise: no higher start is needed.
        thresholds = settings.fit_significance_z, settings.fit_significance_z
        end, correlation = _beyond_node(sp, fit, defocus, spread, float(decay[index]), thresholds)
        ends.append(end)
        if correlation is not None:
            beyond.append(correlation)
    return _verdict(grid, stacked, best, np.array(ends), np.array(beyond), np.asarray(tilts_deg, dtype=float),
                    spectra[0].spectra.optics.wavelength_angstrom, settings)  # fmt: skip


def _verdict(grid: np.ndarray, profiles: np.ndarray, best: float, ends: np.ndarray, beyond: np.ndarray,
             tilts_deg: np.ndarray, wavelength: float, settings: ThicknessSettings) -> ThicknessEstimate:  # fmt: skip
    """The estimate, claimed only with evidence of inverted rings beyond the node-free rings' end."""
    seen = ends > 0
    cosines = np.cos(np.radians(tilts_deg))
    # Thinner than this, every tilt's first node lies finer than its rings end (λ k_end² t / cos θ < 1).
    measurable_from = float(np.min(cosines[seen] / (wavelength * ends[seen] ** 2))) if seen.any() else math.inf
    rings_end = 1.0 / float(ends[seen].max()) if seen.any() else math.inf
    flattest = int(np.argmin(np.abs(tilts_deg)))
    node = node_spacing_angstrom(best, float(tilts_deg[flattest]), wavelength) if best > 0 else 0.0
    if beyond.size >= 3:
        spread = float(np.std(beyond, ddof=1))
        confidence = float(beyond.mean()) / (spread / math.sqrt(beyond.size)) if spread > 0 else math.inf
    else:
        confidence = 0.0
    error = _jackknife(grid, profiles)
    reason = ""
    if best >= settings.max_thickness_angstrom - _COARSE_STEP_ANGSTROM:
        reason = f"the best fit lies at the end of the range searched, {settings.max_thickness_angstrom / 10:.0f} nm"
    elif beyond.size < 3 or confidence < settings.min_confidence:
        reason = (f"rings end at {rings_end:.1f} Å, first node finer than that for t<{measurable_from / 10:.0f} nm; "
                  f"best fit {best / 10:.0f} nm with its first node at {node:.1f} Å, evidence of inverted rings "
                  f"beyond it {confidence:.1f} (below {settings.min_confidence:g})")  # fmt: skip
    return ThicknessEstimate(None if reason else best, error, best, confidence, rings_end, measurable_from, node,
                             profiles.shape[0], reason)  # fmt: skip
