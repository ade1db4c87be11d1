"""CTF of a whole tilt series: the hand with its confidence, a shared astigmatism, failed tilts repaired.

1. Every tilt is fitted without a gradient (hand 0: the same defocus in every strip), which favours neither hand;
   with that fit's astigmatism, spread and band, each hand's best score is taken (:func:`.ctf_tilt.hand_scores`).
2. Hand: the per-tilt score differences ``score(+1) - score(-1)`` of the tilts steeper than
   ``min_abs_tilt_deg`` are fitted as ``β · |tan(tilt)|``; the confidence is ``|β|`` over its standard error
   (from the spread of the tilts about the line). Below ``hand_threshold`` (or with fewer than three such
   tilts) the hand is undetermined, and the tilts are fitted with the sign the evidence leans to, which matters
   little where the gradient is that weak.
3. Failures: a tilt is ``dark`` (mean below a fifth of the series' median, or blank), ``no rings`` (its coarse
   score less than ``min_ring_significance`` standard deviations above the same search's scores on white noise
   of its shape, :mod:`.ctf_significance`) or an ``outlier``
   (its defocus off the median of its four nearest neighbours in acquisition order by more than
   ``outlier_sigmas`` robust standard deviations and more than ``outlier_min_angstrom``).
4. The astigmatism shared by the good tilts is the one that maximises their summed score (from the median of
   their own, as ``(a_x, a_y)`` so that angles near ±90° average right), and it is held while every good tilt is
   refitted with the hand, its centre defocus within ``refit_window_angstrom`` of its own fit's (a tilt whose
   refit no longer holds to ``max_fit_resolution_angstrom`` keeps its own fit); failed tilts get the defocus
   interpolated in acquisition order from the good ones, the shared astigmatism, and their flag.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tomoprep.algorithms.ctf_fit import FitSettings, TiltCtfFit, TiltSpectra, prepare_tilt
from tomoprep.algorithms.ctf_joint import hand_scores, joint_astigmatism
from tomoprep.algorithms.ctf_significance import noise_scores, ring_significance
from tomoprep.algorithms.ctf_spectrum import Optics
from tomoprep.algorithms.ctf_tilt import fit_spectra

DARK = "dark"
NO_RINGS = "no rings"
OUTLIER = "outlier"
#: Standard deviations of the noise's coarse scores above their mean that a tilt's score must reach to show rings.
#: Blank images (512², 600 draws) exceed 2.5 in 2.7 % (3.0 in 0.5 %): such a tilt is fitted, and its defocus, found
#: at random from the range, is mostly an outlier. The demo's weakest tilt (4.5 µm, thin ice, motion-corrected)
#: scores 2.7; the simulator's tilts at 1.5-6 µm in 600-3000 Å of ice 4-10 (docs/ctf.md).
MIN_RING_SIGNIFICANCE = 2.5


@dataclass(frozen=True)
class SeriesSettings:
    """Choices of the series fit (per-tilt choices in ``tilt``)."""

    tilt: FitSettings = field(default_factory=FitSettings)
    shared_astigmatism: bool = True
    min_abs_tilt_deg: float = 15.0
    hand_threshold: float = 4.0
    max_fit_resolution_angstrom: float = 20.0
    min_ring_significance: float = MIN_RING_SIGNIFICANCE
    outlier_sigmas: float = 5.0
    outlier_min_angstrom: float = 1500.0
    dark_fraction: float = 0.2
    refit_window_angstrom: float = 1000.0


@dataclass(frozen=True)
class HandDecision:
    """The defocus hand a series shows for its tilt axis.

    Attributes
    ----------
    hand
        ``+1`` or ``-1`` (``rlnTomoHand`` for the axis used), or None when undetermined.
    confidence
        Mean score difference over its standard error (0 when it could not be measured).
    score_difference
        ``(n,)`` ``score(+1) - score(-1)`` of the tilts used.
    tilts_deg
        ``(n,)`` those tilts, degrees.
    reason
        Why the hand is undetermined, in words; ``""`` when it is decided.
    """

    hand: int | None
    confidence: float
    score_difference: np.ndarray
    tilts_deg: np.ndarray
    reason: str

    @property
    def leaning(self) -> int:
        """The sign the evidence points to, decided or not (``-1``, RELION's default, without evidence)."""
        return 1 if self.score_difference.size and float(self.score_difference.sum()) > 0 else -1


def decide_hand(
    score_difference: np.ndarray, tilts_deg: np.ndarray, *, min_abs_tilt_deg: float, threshold: float
) -> HandDecision:
    """The hand from per-tilt score differences ``score(+1) - score(-1)`` (``(n,)``) at ``tilts_deg`` (``(n,)``).

    The evidence grows with the gradient, so the differences are fitted as ``β · |tan(tilt)|`` (a line through
    the origin); the confidence is ``|β|`` over its standard error from the residuals.
    """
    steep = np.abs(tilts_deg) >= min_abs_tilt_deg
    used, tilts = np.asarray(score_difference)[steep], np.asarray(tilts_deg)[steep]
    if used.size < 3:
        return HandDecision(None, 0.0, used, tilts,
                            f"{used.size} usable tilts steeper than {min_abs_tilt_deg:g}° (3 needed)")  # fmt: skip
    gradient = np.abs(np.tan(np.radians(tilts)))
    slope = float(gradient @ used / (gradient @ gradient))
    residual = used - slope * gradient
    error = math.sqrt(float(residual @ residual) / (used.size - 1) / float(gradient @ gradient))
    confidence = abs(slope) / error if error > 0 else math.inf
    if confidence < threshold:
        return HandDecision(None, confidence, used, tilts, f"confidence {confidence:.1f} below {threshold:g}")
    return HandDecision(1 if slope > 0 else -1, confidence, used, tilts, "")


@dataclass(frozen=True)
class SeriesCtf:
    """The CTF of every tilt of a series (in the order given) and the hand.

    ``fits[i]`` is tilt ``i``'s fit (repaired tilts: interpolated defocus, shared astigmatism, fit resolution
    ``inf`` and figure of merit 0); ``flags[i]`` is ``""`` or why its own fit failed (:data:`DARK`,
    :data:`NO_RINGS`, :data:`OUTLIER`); ``astigmatism_xy_angstrom`` the shared ``(a_x, a_y)`` (Å).
    """

    fits: list[TiltCtfFit]
    flags: list[str]
    hand: HandDecision
    astigmatism_xy_angstrom: tuple[float, float]


def _dark_tilts(images: Sequence[np.ndarray], fraction: float) -> list[bool]:
    means = np.array([float(np.mean(image)) for image in images])
    stds = np.array([float(np.std(image)) for image in images])
    reference = float(np.median(means))
    dark = (stds == 0) | ((reference > 0) & (means < fraction * reference))
    return [bool(d) for d in dark]


def outliers(defocus_angstrom: np.ndarray, order: np.ndarray, *, sigmas: float, min_angstrom: float) -> np.ndarray:
    """Which defoci ``(n,)`` (Å) stray from the median of their 4 nearest neighbours in acquisition ``order``.

    The neighbours are the nearest others in the sequence (at its ends, the next four on the one side), so one
    stray tilt never makes up half of another's neighbours.
    """
    n = defocus_angstrom.size
    if n < 5:
        return np.zeros(n, dtype=bool)
    sequence_order = np.argsort(order, kind="stable")
    sequence = defocus_angstrom[sequence_order]
    running = np.empty(n)
    for i in range(n):
        start = min(max(i - 2, 0), n - 5)
        neighbours = [j for j in range(start, start + 5) if j != i][:4]
        running[i] = np.median(sequence[neighbours])
    residual = sequence - running
    sigma = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    flagged = np.empty(n, dtype=bool)
    flagged[sequence_order] = np.abs(residual) > max(sigmas * sigma, min_angstrom)
    return flagged


def _repaired(good: list[TiltCtfFit | None], order: np.ndarray, astigmatism: tuple[float, float],
              hand: int) -> list[TiltCtfFit]:  # fmt: skip
    """Fits for every tilt: failed ones interpolated in acquisition order from the good ones."""
    known = [i for i, fit in enumerate(good) if fit is not None]
    if not known:
        raise ValueError("no tilt of the series shows Thon rings: nothing to repair the series from")
    positions = np.array([order[i] for i in known], dtype=float)
    defoci = np.array([good[i].defocus_angstrom for i in known])  # type: ignore[union-attr]
    sort = np.argsort(positions)
    half = math.hypot(*astigmatism)
    angle = 0.5 * math.degrees(math.atan2(astigmatism[1], astigmatism[0]))
    phase = float(np.median([good[i].phase_shift_deg for i in known]))  # type: ignore[union-attr]
    result = []
    for i, fit in enumerate(good):
        if fit is None:
            defocus = float(np.interp(order[i], positions[sort], defoci[sort]))
            fit = TiltCtfFit(defocus + half, defocus - half, angle if angle > -90 else angle + 180, phase,
                             math.inf, 0.0, 0.0, hand)  # fmt: skip
        result.append(fit)
    return result


def _shared_astigmatism(fits: Sequence[TiltCtfFit]) -> tuple[float, float]:
    """Median ``(a_x, a_y)`` (Å) of the tilts' own astigmatism: the start of :func:`.joint_astigmatism`."""
    components = np.array([fit.astigmatism_xy_angstrom for fit in fits])
    return float(np.median(components[:, 0])), float(np.median(components[:, 1]))


def _fails(fit: TiltCtfFit, settings: SeriesSettings) -> bool:
    return not fit.fit_resolution_angstrom <= settings.max_fit_resolution_angstrom


def _significance(
    fit: TiltCtfFit, shape_yx: tuple[int, ...], axis_deg: float, optics: Optics, settings: SeriesSettings,
    ranges: list[tuple[float, float]],
) -> float:  # fmt: skip
    """The fit's coarse score against noise of the tilt's shape searched over the series' whole range (a few
    more models than the tilt's own range would try: a little stricter, and one set of noise draws a series)."""
    whole = (min(low for low, _ in ranges), max(high for _, high in ranges))
    noise = noise_scores((int(shape_yx[0]), int(shape_yx[1])), axis_deg=float(axis_deg), optics=optics,
                         settings=settings.tilt, defocus_range_angstrom=whole)  # fmt: skip
    return ring_significance(fit.coarse_score, noise)


def _first_pass(
    images: Sequence[np.ndarray], tilts_deg: np.ndarray, axis_deg: float, optics: Optics,
    ranges: list[tuple[float, float]], settings: SeriesSettings,
) -> tuple[list[str], list[TiltSpectra | None], list[TiltCtfFit | None]]:  # fmt: skip
    """Flags, spectra and gradient-free fits of every tilt (None where the tilt failed)."""
    flags = [DARK if dark else "" for dark in _dark_tilts(images, settings.dark_fraction)]
    spectra: list[TiltSpectra | None] = []
    fits: list[TiltCtfFit | None] = []
    for i, image in enumerate(images):
        prepared, fit = None, None
        if not flags[i]:
            try:
                prepared = prepare_tilt(np.asarray(image), tilt_deg=float(tilts_deg[i]), axis_deg=axis_deg,
                                        optics=optics, settings=settings.tilt)  # fmt: skip
            except ValueError:  # every tile blank
                flags[i] = DARK
        if prepared is not None:
            fit = fit_spectra(prepared, hand=0, defocus_range_angstrom=ranges[i])
            if _significance(fit, np.shape(image), axis_deg, optics, settings, ranges) < settings.min_ring_significance:
                flags[i], fit = NO_RINGS, None
        spectra.append(prepared)
        fits.append(fit)
    return flags, spectra, fits


def _defocus_ranges(
    defocus_range_angstrom: tuple[float, float] | Sequence[tuple[float, float]], n: int
) -> list[tuple[float, float]]:
    if np.ndim(defocus_range_angstrom) == 1:
        low, high = np.asarray(defocus_range_angstrom, dtype=float)
        return [(float(low), float(high))] * n
    ranges = [(float(r[0]), float(r[1])) for r in defocus_range_angstrom]  # type: ignore[index]
    if len(ranges) != n:
        raise ValueError(f"{len(ranges)} defocus ranges for {n} tilts")
    return ranges


def _measure_hand(
    spectra: Sequence[TiltSpectra], fits: Sequence[TiltCtfFit], tilts_deg: np.ndarray, settings: SeriesSettings
) -> HandDecision:
    differences = []
    for prepared, fit in zip(spectra, fits, strict=True):
        scores = hand_scores(prepared, fit)
        differences.append(scores[1] - scores[-1])
    return decide_hand(np.array(differences), tilts_deg, min_abs_tilt_deg=settings.min_abs_tilt_deg,
                       threshold=settings.hand_threshold)  # fmt: skip


def fit_series(
    images: Sequence[np.ndarray],
    tilts_deg: Sequence[float],
    *,
    axis_deg: float,
    optics: Optics,
    defocus_range_angstrom: tuple[float, float] | Sequence[tuple[float, float]],
    acquisition_order: Sequence[int] | None = None,
    settings: SeriesSettings | None = None,
    known_hand: int | None = None,
) -> SeriesCtf:
    """The CTF of every tilt of a series, jointly (method in the module's notes).

    Parameters
    ----------
    images
        ``n`` tilt images ``(ny, nx)``, centre pixel ``N // 2``.
    tilts_deg
        ``(n,)`` tilt angles (``rlnTomoYTilt``), degrees.
    axis_deg
        Tilt-axis angle (``rlnTomoZRot``), degrees; the hand found is for this axis (``axis + 180°`` gives the
        opposite one).
    optics
        Voltage, Cs, amplitude contrast, pixel spacing.
    defocus_range_angstrom
        Centre defocus searched (Å): one range for all tilts, or one per tilt (e.g. nominal ± 2 µm).
    acquisition_order
        ``(n,)`` position of each tilt in acquisition order (default: as given).
    settings
        Series and per-tilt choices.
    known_hand
        A hand to use instead of measuring it (then ``hand.reason`` is ``"given"``).
    """
    settings = settings or SeriesSettings()
    n = len(images)
    if len(tilts_deg) != n:
        raise ValueError(f"{n} images for {len(tilts_deg)} tilt angles")
    tilts = np.asarray(tilts_deg, dtype=float)
    order = np.arange(n) if acquisition_order is None else np.asarray(acquisition_order)
    ranges = _defocus_ranges(defocus_range_angstrom, n)
    flags, spectra, neutral = _first_pass(images, tilts, axis_deg, optics, ranges, settings)
    good = [i for i in range(n) if neutral[i] is not None]
    if not good:
        raise ValueError("no tilt of the series shows Thon rings")
    good_spectra = [spectra[i] for i in good]
    good_fits = [neutral[i] for i in good]
    if known_hand is not None:
        decision = HandDecision(known_hand, math.inf, np.zeros(0), np.zeros(0), "given")
    else:
        decision = _measure_hand(good_spectra, good_fits, tilts[good], settings)  # type: ignore[arg-type]
    hand = decision.hand if decision.hand is not None else decision.leaning
    shared = joint_astigmatism(good_spectra, good_fits, _shared_astigmatism(good_fits))  # type: ignore[arg-type]
    final: list[TiltCtfFit | None] = [None] * n
    for i, prepared in zip(good, good_spectra, strict=True):
        # Near the tilt's own fit: the gradient moves the centre defocus little, and a search over the whole
        # range could land a ring off on a weak tilt, where the first fit had found the right one.
        own = neutral[i].defocus_angstrom  # type: ignore[union-attr]
        window = (max(ranges[i][0], own - settings.refit_window_angstrom),
                  min(ranges[i][1], own + settings.refit_window_angstrom))  # fmt: skip
        fit = fit_spectra(prepared, hand=hand, defocus_range_angstrom=window,  # type: ignore[arg-type]
                          astigmatism_xy_angstrom=shared if settings.shared_astigmatism else None,
                          rings_significant=True)  # fmt: skip
        # Whether a tilt shows rings is its own fit's verdict: held to the series' astigmatism, a weak tilt's
        # rings may fit a little less far, and then its own fit stands.
        final[i] = fit if not _fails(fit, settings) else neutral[i]
    fitted = [i for i in range(n) if final[i] is not None]
    stray = outliers(np.array([final[i].defocus_angstrom for i in fitted]), order[fitted],  # type: ignore[union-attr]
                     sigmas=settings.outlier_sigmas, min_angstrom=settings.outlier_min_angstrom)  # fmt: skip
    for i, is_outlier in zip(fitted, stray, strict=True):
        if is_outlier:
            flags[i], final[i] = OUTLIER, None
    return SeriesCtf(_repaired(final, order, shared, hand), flags, decision, shared)
