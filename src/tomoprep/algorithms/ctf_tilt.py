"""The per-tilt CTF fit: coarse search, ring quality, 2-D refinement (method: :mod:`.ctf_fit`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.optimize

from tomoprep.algorithms.ctf_fit import (
    FitSettings,
    TiltCtfFit,
    TiltSpectra,
    _depth_sinc,
    _strip_envelopes,
    coarse_search,
    prepare_tilt,
)
from tomoprep.algorithms.ctf_objective import RingObjective
from tomoprep.algorithms.ctf_spectrum import Band, Optics, ctf_argument

_ASTIGMATISM_GRID_ANGSTROM = (150.0, 300.0, 500.0, 800.0)
_ASTIGMATISM_DIRECTIONS = 8
_MIN_RING_PIXELS = 40
#: Equal-phase bins per ring in :func:`ring_quality`.
_BINS_PER_RING = 12
#: Degrees of freedom (equal-phase bins) a window of rings holds at least in :func:`windowed_significance`.
_WINDOW_MIN_SAMPLES = 60
#: First zero of ``J0``: astigmatism ``a`` (half of U - V) averages round rings at ``|k|`` by ``J0(2π λ a k²)``, so
#: rings seen in the astigmatism-free average out to ``k`` bound ``λ |a| k²`` below this over ``2π``.
_J0_FIRST_ZERO = 2.404826


@dataclass(frozen=True)
class Basin:
    """Where the 2-D refinement may go from the 1-D (coarse) fit: the centre defocus within
    ``defocus_angstrom`` (low, high; Å) and the astigmatism's half ``|(a_x, a_y)|`` below
    ``max_astigmatism_angstrom`` (Å; inf: unbounded)."""

    defocus_angstrom: tuple[float, float]
    max_astigmatism_angstrom: float = math.inf


def basin(
    spectra: TiltSpectra, coarse_defocus_angstrom: float, rings_k: float, defocus_range_angstrom: tuple[float, float]
) -> Basin:
    """The 1-D fit's basin: what its rings on the full band and out to ``rings_k`` (1/Å) leave possible.

    The coarse search scored round rings over the whole band, at steps of π/8 at its edge: a centre defocus half
    a ring (at that edge) or more from its best would have scored as another ring's, so the refinement keeps within
    that of it (and within ``defocus_range_angstrom``). Rings that the astigmatism-free model finds to ``rings_k``
    (the first refinement band's edge: where they hold, at least the band's first third) mean an astigmatism whose
    ``J0`` fading had not yet erased them there: ``2π λ |a| k² < 2.405``.
    """
    lam = spectra.optics.wavelength_angstrom
    half_ring = 1.0 / (2.0 * lam * float(spectra.band.k2.max()))
    low, high = defocus_range_angstrom
    bounds = (max(low, coarse_defocus_angstrom - half_ring), min(high, coarse_defocus_angstrom + half_ring))
    if bounds[0] > bounds[1]:  # a coarse defocus at the range's edge
        bounds = (low, high)
    return Basin(bounds, _J0_FIRST_ZERO / (2.0 * math.pi * lam * rings_k * rings_k))


def _squash(v: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """``v`` ``(2,)`` mapped into the open disk of ``radius`` (``v · radius tanh(|v|/radius) / |v|``), and the
    map's ``(2, 2)`` Jacobian: the search runs on the whole plane and the astigmatism stays in the disk."""
    if not math.isfinite(radius):
        return v, np.eye(2)
    r = float(np.hypot(*v))
    if r < 1e-9 * radius:
        return v, np.eye(2)
    f = radius * math.tanh(r / radius) / r
    slope = (1.0 / math.cosh(r / radius) ** 2 - f) / r  # df/dr
    return f * v, f * np.eye(2) + slope * np.outer(v, v) / r


def _unsquash(a: np.ndarray, radius: float) -> np.ndarray:
    """The inverse of :func:`_squash` (``|a| < radius``)."""
    r = float(np.hypot(*a))
    if not math.isfinite(radius) or r < 1e-9 * radius:
        return a
    return a * radius * math.atanh(min(r / radius, 1.0 - 1e-12)) / r


@dataclass(frozen=True)
class _Point:
    """A point of the search: centre defocus (Å), ``(a_x, a_y)`` (Å), phase shift (rad), ice spread (Å), decay
    of the rings (Å²)."""

    defocus_angstrom: float
    astigmatism_xy_angstrom: tuple[float, float]
    phase_shift_rad: float
    spread_angstrom: float
    decay_angstrom2: float = 0.0


def _models(
    spectra: TiltSpectra, band: Band, hand: int, point: _Point, defocus_angstrom: np.ndarray, static: np.ndarray
) -> np.ndarray:
    """Background-free, faded ring models ``(g, s, n)`` for centre defoci ``(g,)`` (Å).

    ``static`` ``(s, n)`` is the fading that does not change during a search (the strips' own depth spread, the
    matched filter's weights).
    """
    depth = hand * spectra.depth_angstrom
    arguments = np.stack([ctf_argument(band, spectra.optics, depth + d, point.astigmatism_xy_angstrom,
                                       point.phase_shift_rad) for d in defocus_angstrom])  # fmt: skip
    envelopes = _strip_envelopes(band, spectra, point.spread_angstrom, point.decay_angstrom2, static)
    return band.project(-np.cos(2.0 * arguments) * envelopes[None])


def ring_bins(spectra: TiltSpectra, hand: int, point: _Point) -> list[tuple[float, float, np.ndarray, np.ndarray]]:
    """Equal-phase averages of data and model, ring by ring over the full band.

    The pixels of all strips are binned by their CTF phase ``(χ + asin A + φ) / π`` (at the strip's defocus and
    the astigmatism of ``point``) in :data:`_BINS_PER_RING` bins per ring and data and model averaged per bin (as
    CTFFIND's equiphase average). Rings cut by the band's edge are left out.

    Returns
    -------
    list
        Per ring, ascending: mean and 95th-percentile ``|k|`` of its pixels (1/Å), and its bins' data and model
        averages ``(b,)``, each less its ring's mean.
    """
    band = spectra.band
    data = spectra.strips.log_residuals(band)
    model = _models(spectra, band, hand, point, np.array([point.defocus_angstrom]), _depth_sinc(band, spectra))[0]
    argument = ctf_argument(band, spectra.optics, hand * spectra.depth_angstrom + point.defocus_angstrom,
                            point.astigmatism_xy_angstrom, point.phase_shift_rad)  # fmt: skip
    phase_bin = np.floor(argument.ravel() / math.pi * _BINS_PER_RING).astype(int)
    phase_bin -= phase_bin.min() - (phase_bin.min() % _BINS_PER_RING)
    weights = np.broadcast_to(spectra.weights[:, None], data.shape).ravel()
    total = np.bincount(phase_bin, weights)
    occupied = total > 0
    data_mean = np.bincount(phase_bin, weights * data.ravel())[occupied] / total[occupied]
    model_mean = np.bincount(phase_bin, weights * model.ravel())[occupied] / total[occupied]
    ring_of_bin = np.flatnonzero(occupied) // _BINS_PER_RING
    k = np.broadcast_to(np.sqrt(band.k2)[None, :], data.shape).ravel()
    ring_of_pixel = phase_bin // _BINS_PER_RING
    rings = []
    for ring in np.unique(ring_of_bin):
        in_ring = ring_of_bin == ring
        pixels = ring_of_pixel == ring
        if in_ring.sum() < _BINS_PER_RING // 2 or pixels.sum() < _MIN_RING_PIXELS:
            continue  # a ring cut by the band's edge
        d = data_mean[in_ring] - data_mean[in_ring].mean()
        m = model_mean[in_ring] - model_mean[in_ring].mean()
        rings.append((float(k[pixels].mean()), float(np.percentile(k[pixels], 95)), d, m))
    return rings


def _correlation(d: np.ndarray, m: np.ndarray) -> float:
    return float(d @ m) / math.sqrt(max(float(d @ d) * float(m @ m), 1e-300))


def ring_quality(spectra: TiltSpectra, hand: int, point: _Point) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correlation of data and model ring by ring over the full band, on equal-phase averages (``ring_bins``).

    Returns
    -------
    ring_k, ring_k_outer
        ``(m,)`` mean and 95th-percentile ``|k|`` of each ring's pixels, 1/Å, ascending.
    correlation
        ``(m,)`` each ring's correlation (Pearson, over its bins) of the background-free log power with the model.
    """
    rings = ring_bins(spectra, hand, point)
    return (np.array([r[0] for r in rings]), np.array([r[1] for r in rings]),
            np.array([_correlation(r[2], r[3]) for r in rings]))  # fmt: skip


def windowed_significance(
    rings: list[tuple[float, float, np.ndarray, np.ndarray]], min_samples: int = _WINDOW_MIN_SAMPLES
) -> np.ndarray:
    """Significance of the data's correlation with the model in a running window of rings, noise standard deviations.

    The window about each ring grows by whole rings on both sides (on one where the band ends) until its bins hold
    ``min_samples`` degrees of freedom (bins less one per ring, as each ring's mean is removed). Its correlation
    ``r`` over those bins becomes Fisher's ``z = atanh(r) · sqrt(dof - 2)``: on noise, whatever the rings' signal
    elsewhere, about standard normal, so one threshold serves every ring density, image size and band.

    Returns
    -------
    numpy.ndarray
        ``(m,)`` ``z`` of the window centred on each ring.
    """
    dof = np.array([r[2].size - 1 for r in rings])
    z = np.zeros(len(rings))
    for centre in range(len(rings)):
        low = high = centre
        while dof[low : high + 1].sum() < min_samples and (low > 0 or high < len(rings) - 1):
            low, high = max(low - 1, 0), min(high + 1, len(rings) - 1)
        window = rings[low : high + 1]
        d, m = np.concatenate([r[2] for r in window]), np.concatenate([r[3] for r in window])
        n = int(dof[low : high + 1].sum())
        r = min(max(_correlation(d, m), -0.999999), 0.999999)
        z[centre] = math.atanh(r) * math.sqrt(max(n - 2, 1))
    return z


def fit_limit(ring_k_outer: np.ndarray, significance: np.ndarray, threshold: float, start_threshold: float) -> float:
    """The outer edge (1/Å) of the last ring before the first whose ``significance`` is below ``threshold``; 0 if
    none of the rings before it reaches ``start_threshold``.

    The start's threshold is the higher: the model was fitted to these rings, and on pure noise a fitted model's
    first window reaches ``z`` of 3 (median) to 5; beyond the rings that pinned the fit, a window correlates with
    a wrong model as with any other, and ``threshold`` is the ordinary one.
    """
    significance = np.asarray(significance)
    below = np.flatnonzero(significance < threshold)
    held = below[0] if below.size else significance.size
    if held == 0 or significance[:held].max() < start_threshold:
        return 0.0
    return float(ring_k_outer[held - 1])


def _envelope(ring_k: np.ndarray, correlation: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    clipped = np.clip(correlation, 0.0, 1.0)
    return lambda k: np.interp(k, ring_k, clipped)


def _refine(
    spectra: TiltSpectra, hand: int, start: _Point, band: Band, envelope: np.ndarray, *, fit_astigmatism: bool,
    within: Basin,
) -> tuple[_Point, float]:  # fmt: skip
    """2-D refinement of defocus, astigmatism (unless fixed) and phase shift (when fitted) on ``band``, ``within``
    the 1-D fit's basin."""
    step = 1.0 / (8.0 * spectra.optics.wavelength_angstrom * float(band.k2.max()))
    objective = RingObjective.build(spectra, band, hand, _depth_sinc(band, spectra) * envelope[None, :])

    def params(point: _Point) -> np.ndarray:
        return np.array([point.defocus_angstrom, *point.astigmatism_xy_angstrom, point.phase_shift_rad,
                         point.spread_angstrom, point.decay_angstrom2])  # fmt: skip

    candidates = [start.astigmatism_xy_angstrom]
    radius = within.max_astigmatism_angstrom if fit_astigmatism else math.inf
    if fit_astigmatism and start.astigmatism_xy_angstrom == (0.0, 0.0):  # not yet searched
        for magnitude in [m for m in _ASTIGMATISM_GRID_ANGSTROM if m < 0.9 * radius]:
            for j in range(_ASTIGMATISM_DIRECTIONS):
                angle = 2 * math.pi * j / _ASTIGMATISM_DIRECTIONS
                candidates.append((magnitude * math.cos(angle), magnitude * math.sin(angle)))
    # The grid holds the start's defocus: astigmatism leaves the mean defocus alone, and the gradient search
    # below moves it (a grid of defoci around it as well chose the same fits at five times the cost).
    best, best_score = start, -np.inf
    for astigmatism in candidates:
        point = dataclasses.replace(start, astigmatism_xy_angstrom=astigmatism)
        score = objective.score(params(point))
        if score > best_score:
            best, best_score = point, score
    # Free parameters, each in units of a step that changes the score alike: the defocus and astigmatism by
    # the grid step, the phase by 0.2 rad, the spread by 200 Å, the decay by 50 Å². The spread is refined with
    # the astigmatism: the coarse search, blind to astigmatism, takes the rings' astigmatic smearing for a
    # spread, and a spread too large inverts the model's fine rings.
    free = [0] + ([1, 2] if fit_astigmatism else []) + ([3] if spectra.settings.fit_phase_shift else []) + [4, 5]
    origin = params(best)
    # The astigmatism is searched as ``v``, squashed into the basin's disk (:func:`_squash`).
    origin[1:3] = _unsquash(origin[1:3], radius)
    scale = np.array([step, step, step, 0.2, 200.0, 50.0])[free]

    def full_params(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        full = origin.copy()
        full[free] += x * scale
        full[1:3], jacobian = _squash(full[1:3], radius)
        return full, jacobian

    def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
        full, jacobian = full_params(x)
        value, gradient = objective.score_and_gradient(full)
        gradient[1:3] = jacobian.T @ gradient[1:3]
        return -value, -gradient[free] * scale

    # The defocus stays in the 1-D fit's basin (on a narrow band, a weak tilt's score may rise rings away, or
    # astigmatism trade against the defocus), the spread and the decay are not negative.
    low, high = within.defocus_angstrom
    bounds = [((low - origin[0]) / step, (high - origin[0]) / step)]  # a start beyond them is moved inside
    bounds += [(None, None)] * (len(free) - 3) + [(-origin[4] / scale[-2], None), (-origin[5] / scale[-1], None)]
    result = scipy.optimize.minimize(negative, np.zeros(len(free)), jac=True, method="L-BFGS-B", bounds=bounds,
                                     options={"maxiter": 200, "ftol": 1e-10, "gtol": 1e-8})  # fmt: skip
    refined, _ = full_params(result.x)
    point = _Point(float(refined[0]), (float(refined[1]), float(refined[2])), float(refined[3]),
                   float(refined[4]), float(refined[5]))  # fmt: skip
    return point, float(-result.fun)


def _to_result(point: _Point, *, hand: int, limit_k: float, figure_of_merit: float, coarse_score: float) -> TiltCtfFit:
    a_x, a_y = point.astigmatism_xy_angstrom
    half = math.hypot(a_x, a_y)
    angle = 0.5 * math.degrees(math.atan2(a_y, a_x))
    phase = math.degrees(point.phase_shift_rad) % 180.0
    return TiltCtfFit(
        defocus_u_angstrom=point.defocus_angstrom + half, defocus_v_angstrom=point.defocus_angstrom - half,
        astigmatism_angle_deg=angle if angle > -90.0 else angle + 180.0, phase_shift_deg=phase,
        fit_resolution_angstrom=1.0 / limit_k if limit_k > 0 else math.inf, figure_of_merit=figure_of_merit,
        spread_angstrom=point.spread_angstrom, hand=hand, ring_decay_angstrom2=point.decay_angstrom2,
        coarse_score=coarse_score,
    )  # fmt: skip


def fit_spectra(
    spectra: TiltSpectra,
    *,
    hand: int,
    defocus_range_angstrom: tuple[float, float],
    astigmatism_xy_angstrom: tuple[float, float] | None = None,
    rings_significant: bool = False,
) -> TiltCtfFit:
    """Fit one tilt's strip spectra (see :mod:`.ctf_fit` for the method).

    Parameters
    ----------
    spectra
        From :func:`.ctf_fit.prepare_tilt`.
    hand
        ``+1`` or ``-1``: the strips' defocus is ``centre + hand · depth``; 0 fits one defocus everywhere (the
        gradient's fading then counts as spread), favouring neither hand.
    defocus_range_angstrom
        Centre defocus searched, Å (positive = underfocus).
    astigmatism_xy_angstrom
        ``(a_x, a_y)`` (Å) to hold fixed (a series' shared astigmatism), or None to fit it.
    rings_significant
        The tilt's rings passed the test against noise (:mod:`.ctf_significance`), which allows for the search
        having been fitted to them: the fit resolution then needs no window of rings above
        :attr:`.FitSettings.fit_start_significance_z`, only the ordinary threshold.
    """
    if hand not in (-1, 0, 1):
        raise ValueError(f"hand must be +1, -1 or 0 (no gradient), got {hand}")
    coarse = coarse_search(spectra, hand=hand, defocus_range_angstrom=defocus_range_angstrom)
    defocus, spread, decay, phase, coarse_score = coarse
    point = _Point(defocus, astigmatism_xy_angstrom or (0.0, 0.0), phase, spread, decay)
    settings = spectra.settings
    thresholds = settings.fit_significance_z, (settings.fit_significance_z if rings_significant
                                               else settings.fit_start_significance_z)  # fmt: skip
    k_low, k_high = float(np.sqrt(spectra.band.k2.min())), float(np.sqrt(spectra.band.k2.max()))
    figure_of_merit = 0.0
    rings = ring_bins(spectra, hand, point)
    refined_k_max = 0.0
    within: Basin | None = None
    for _ in range(2):  # the second pass only where the first moved the fit resolution
        limit = fit_limit(np.array([r[1] for r in rings]), windowed_significance(rings), *thresholds)
        # Refine where the rings hold, and at least over the first third of the band.
        k_max = min(k_high, max(1.05 * limit, k_low + (k_high - k_low) / 3))
        if abs(k_max - refined_k_max) <= 0.03 * k_max:
            break
        # Both passes keep to the basin of the 1-D fit (its rings, astigmatism-free, reach k_max at first).
        within = within or basin(spectra, defocus, k_max, defocus_range_angstrom)
        band = Band.build(spectra.settings.tile_px, spectra.optics.pixel_spacing_angstrom, (k_low, k_max))
        ring_k = np.array([r[0] for r in rings])
        correlation = np.array([_correlation(r[2], r[3]) for r in rings])
        envelope = _envelope(ring_k, correlation)(np.sqrt(band.k2))
        point, figure_of_merit = _refine(spectra, hand, point, band, envelope,
                                         fit_astigmatism=astigmatism_xy_angstrom is None, within=within)  # fmt: skip
        refined_k_max = k_max
        rings = ring_bins(spectra, hand, point)
    limit = fit_limit(np.array([r[1] for r in rings]), windowed_significance(rings), *thresholds)
    return _to_result(point, hand=hand, limit_k=limit, figure_of_merit=figure_of_merit, coarse_score=coarse_score)


def fit_tilt(
    image: np.ndarray,
    *,
    tilt_deg: float,
    axis_deg: float,
    hand: int,
    optics: Optics,
    defocus_range_angstrom: tuple[float, float],
    settings: FitSettings | None = None,
) -> TiltCtfFit:
    """The CTF at the centre of one tilt image, with the defocus gradient of the tilted specimen.

    Parameters
    ----------
    image
        ``(ny, nx)`` tilt image (``image[y, x]``), centre pixel ``N // 2``.
    tilt_deg, axis_deg
        Tilt angle (``rlnTomoYTilt``) and tilt-axis angle (``rlnTomoZRot``), degrees.
    hand
        ``+1`` or ``-1`` (``rlnTomoHand`` for ``axis_deg``).
    optics
        Voltage, Cs, amplitude contrast and pixel spacing.
    defocus_range_angstrom
        Centre defocus searched, Å (e.g. the nominal defocus ± 2 µm).
    settings
        Tile size, band, phase shift, fit-resolution threshold (default :class:`.FitSettings`).
    """
    spectra = prepare_tilt(image, tilt_deg=tilt_deg, axis_deg=axis_deg, optics=optics,
                           settings=settings or FitSettings())  # fmt: skip
    return fit_spectra(spectra, hand=hand, defocus_range_angstrom=defocus_range_angstrom)
