"""Quality of the tilts of a series: stage jumps, dark images and blur, each with the reason in numbers.

Three tests per tilt, each against the tilt's neighbours in angle or the series' trend, in this order:

dark
    mean below ``dark_ratio`` of what the series' Beer–Lambert trend predicts, or more than
    ``dark_area_fraction`` of what the series' median tilt shows bright lies below ``dark_level`` of the tilt's
    bright level (:mod:`tomoprep.algorithms.brightness`). The dark area is taken beyond the series' usual one:
    where every tilt is mostly dark by nature (a dark-field STEM series, sparse specimen on a dark ground), no
    tilt is dark for it. Images normalised to mean 0 have no level to compare: only the dark-area test applies
    to them (a uniformly dark tilt is then not found).
shifted
    displacement from its neighbours in angle, by stretched cross-correlation (:func:`pair_shift`), among the
    tilts that are not dark (a tilt beside a dark one is compared with the next tilt that shows the specimen).
    A tilt that jumped makes both of its pairs large, and the tilt beyond it only one, so a tilt is shifted when
    it is displaced by more than ``shift_fraction`` of the field of view (the images' shorter side) from its
    neighbours on *both* sides and from the line through their positions (a steady drift is no jump). The
    outermost tilt, with one neighbour, is compared with the tilt beyond that neighbour instead. A correlation
    can peak on noise or on a repeating feature (concentric membranes, a lattice) where little of the specimen
    is common to two tilts (a small field, thick ice at large steps): a displacement counts only when the
    neighbours' displacement from each other closes the triangle to within :data:`CLOSURE_SHARE` of the limit
    (or of the displacement, where larger); and a jump is an exception, :data:`JUMP_OVER_TYPICAL` times as far
    as the series' median tilt. Where either fails, the tilt is not judged shifted and the cleaning says so
    (``shift_unsure``): a wrong peak, or the ordinary wander of a series on a small field, must not exclude a
    good tilt.
    The stretched correlation takes the specimen for flat; content at depth ``z`` from the tilt axis moves, from
    tilt ``q`` to tilt ``p``, by ``z sin(p - q) / cos q`` across the axis beyond that model, and which depth
    dominates a correlation changes from pair to pair (a dense layer, a membrane, contamination on a surface). A
    displacement counts only beyond what content anywhere in a slab ``specimen_thickness_angstrom`` thick can
    make across the axis (:mod:`tomoprep.algorithms.parallax`; by default the thickness from the series'
    brightness); along the axis depth moves nothing. On a large field that allowance is a few % of the field; on
    a field narrower than the ice is thick it is most of it, and only a jump along the axis or beyond the
    parallax is found there.
blurred
    *sharpness*, the power of the band of periods 80 to 40 Å above the noise floor (the band from 0.4 to
    0.5 cycles/px, where shot noise dominates), over that floor: a signal-to-noise ratio, blind to the scale of
    the images, taken over the quarter turn of directions where it is least (drift along a line removes detail
    over a wide fan of directions). Blur removes the band's signal and leaves the noise, so a blurred tilt's
    sharpness falls to about 0 while its neighbours' follows a smooth trend with tilt. It is compared on a log
    scale with a robust line through its four nearest neighbours in angle; blurred when below ``blur_ratio`` of
    that trend *and* more than ``blur_z_score`` robust standard deviations (1.4826 × the median absolute
    deviation over the series) below. Not judged on dark tilts, whose noise swamps the band, nor on shifted
    ones, which show other parts of the specimen; blurred tilts, once found, are nobody's neighbours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from tomoprep.algorithms.brightness import dark_fractions, is_absolute, mean_ratios
from tomoprep.algorithms.fourier import fourier_bin, rfft_frequencies, taper_edges
from tomoprep.algorithms.parallax import (
    DEFAULT_THICKNESS_ANGSTROM,
    beyond_parallax,
    parallax_px,
    slab_thickness_angstrom,
)
from tomoprep.algorithms.tilt_xcorr import frame_change, pair_shift

#: Detail band of the sharpness measure, as periods (Å): coarse enough that the specimen's signal stands above the
#: shot noise at a few e/Å² (about the first Thon ring at common defoci), fine enough that 60 Å of drift wipes it.
DETAIL_PERIODS_ANGSTROM = (80.0, 40.0)
#: Noise band, in cycles per pixel of the working images; the detail band stays below its fraction of it.
NOISE_BAND = (0.4, 0.5)
DETAIL_TOP_OF_NOISE_BAND = 0.875
#: Sectors of direction of the detail band, and the span of directions over which it is taken where weakest:
#: blur from drift along a line removes detail over a wide fan of directions around that line.
DIRECTIONS = 8
WEAKEST_SPAN_DEG = 90.0
#: The shift test works on images binned to at most this size (pixels).
SHIFT_SIZE_PX = 256
#: A displacement counts when the triangle of the tilt and its references closes to within this share of the
#: shift limit (or of the displacement, where larger): a tilt that jumped closes it to a few pixels, peaks of
#: noise or of repeating features (membranes wider than the field) leave it open by tens of pixels.
CLOSURE_SHARE = 1 / 3
#: A jump is an exception: a tilt is shifted only when this many times as far from its neighbours as the series'
#: median tilt (of those measured with closing triangles). Where the stage wanders about as far at every tilt
#: (ordinary tracking error on a small field of view), no single tilt stands out, and alignment follows the wander.
JUMP_OVER_TYPICAL = 2.0
#: Neighbours in angle through which a tilt's expected sharpness is drawn.
TREND_NEIGHBOURS = 4
#: Smallest sharpness (log scale is taken of it) and smallest robust spread of log sharpness.
SHARPNESS_FLOOR = 1e-3
MIN_LOG_SPREAD = 0.02


@dataclass(frozen=True)
class QualityThresholds:
    """When a tilt is bad (module notes); fractions are of 1. ``specimen_thickness_angstrom``: the thickest the
    specimen slab may be (Å), whose parallax across the tilt axis is no displacement; ``None``: from the series'
    brightness (:func:`~tomoprep.algorithms.parallax.slab_thickness_angstrom`)."""

    shift_fraction: float = 0.15
    dark_ratio: float = 0.5
    dark_area_fraction: float = 0.4
    dark_level: float = 0.3
    blur_ratio: float = 0.5
    blur_z_score: float = 4.0
    specimen_thickness_angstrom: float | None = None


@dataclass(frozen=True)
class TiltQuality:
    """Measures of every tilt, in the order of the images given; ``nan`` where not measured.

    Attributes
    ----------
    shift_angstrom
        ``(n, 3)`` displacement (Å) from the neighbour below and above in angle (the outermost: from its
        neighbour, and from the tilt beyond it), and from the line through their positions, beyond what the
        parallax of the specimen's depth can make (:class:`NeighbourShifts` ``beyond_parallax_px``).
    shift_fraction
        ``(n,)`` the smallest of the three, as a fraction of the field of view: how far the tilt is from both
        sides and from where they put it.
    shift_closure_fraction
        ``(n,)`` what the triangle of the tilt and its references leaves open (:class:`NeighbourShifts`), as a
        fraction of the field of view.
    shift_closure_tolerance_fraction
        ``(n,)`` how far the triangle may stay open for the displacement to count (:func:`closure_tolerance`).
    shift_limit_fraction
        The ``shift_fraction`` threshold the measures were judged with.
    shift_typical_fraction
        The series' median ``shift_fraction`` over the tilts whose triangles close: its ordinary wander.
    mean_ratio
        ``(n,)`` mean over the series' Beer–Lambert prediction (``nan`` for normalised images).
    dark_fraction
        ``(n,)`` part of the image below ``dark_level`` of its bright level.
    usual_dark_fraction
        The series' median ``dark_fraction``: a tilt is dark when the part of the rest that went dark in it
        (``(dark_fraction - usual) / (1 - usual)``) exceeds ``dark_area_fraction``.
    sharpness, sharpness_ratio, sharpness_z
        ``(n,)`` band signal-to-noise, its ratio to the neighbours' trend, and the robust z-score of its log.
    absolute
        Whether the images are in counts (else normalised: no mean test).
    reasons
        Per tilt, why it is bad (empty when good), with numbers.
    """

    shift_angstrom: np.ndarray
    shift_fraction: np.ndarray
    shift_closure_fraction: np.ndarray
    shift_closure_tolerance_fraction: np.ndarray
    shift_limit_fraction: float
    shift_typical_fraction: float
    mean_ratio: np.ndarray
    dark_fraction: np.ndarray
    usual_dark_fraction: float
    sharpness: np.ndarray
    sharpness_ratio: np.ndarray
    sharpness_z: np.ndarray
    absolute: bool
    reasons: tuple[tuple[str, ...], ...]

    @property
    def dark_area_excess(self) -> np.ndarray:
        """``(n,)`` part of what the series' median tilt shows bright that is dark in each tilt (≤ 1)."""
        return (self.dark_fraction - self.usual_dark_fraction) / max(1.0 - self.usual_dark_fraction, 1e-6)

    @property
    def shifted(self) -> np.ndarray:
        """``(n,)`` bool: displaced beyond the limit from both references and the line through them, the three
        correlations agreeing, and :data:`JUMP_OVER_TYPICAL` times as far as the series' median tilt."""
        return _shifted(self.shift_fraction, self.shift_closure_fraction <= self.shift_closure_tolerance_fraction,
                        self.shift_typical_fraction, self.shift_limit_fraction)  # fmt: skip

    @property
    def shift_unsure(self) -> np.ndarray:
        """``(n,)`` bool: beyond the limit, but the correlations disagree or the series' tilts typically wander
        as far: not judged shifted."""
        far = np.nan_to_num(self.shift_fraction, nan=0.0) > self.shift_limit_fraction
        return far & ~self.shifted

    @property
    def bad(self) -> np.ndarray:
        """``(n,)`` bool: tilts with at least one reason."""
        return np.array([bool(r) for r in self.reasons], dtype=bool)


def sharpness(images: torch.Tensor, *, pixel_spacing_angstrom: float) -> np.ndarray:
    """Band signal-to-noise of each image ``(n, ny, nx)`` in its weakest directions (module notes).

    Parameters
    ----------
    images
        ``(n, ny, nx)`` images.
    pixel_spacing_angstrom
        Their pixel spacing (Å): the detail band is :data:`DETAIL_PERIODS_ANGSTROM`, moved down to end below the
        noise band where the pixels are too coarse for it.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` float64: ``(band power - noise floor) / noise floor`` of the detail band, over the
        :data:`WEAKEST_SPAN_DEG` of directions where it is least; about 0 where the band holds only noise.
    """
    coarse, fine = DETAIL_PERIODS_ANGSTROM
    top = min(pixel_spacing_angstrom / fine, DETAIL_TOP_OF_NOISE_BAND * NOISE_BAND[0])
    band = (top * fine / coarse, top)
    shape = (int(images.shape[-2]), int(images.shape[-1]))
    tapered = taper_edges(images.float(), max(2, round(0.05 * min(shape))))
    power = torch.fft.rfft2(tapered).abs().square()
    ky, kx = rfft_frequencies(shape, device=images.device)
    k = (ky * ky + kx * kx).sqrt()
    # Directions of the half spectrum span (-90°, 90°], and wrap around: sectors of 180° / DIRECTIONS.
    sector = ((torch.atan2(ky, kx).expand_as(k) / math.pi + 0.5) * DIRECTIONS).long().clamp(0, DIRECTIONS - 1)
    detail = (k >= band[0]) & (k < band[1])
    noise = (k >= NOISE_BAND[0]) & (k <= NOISE_BAND[1])
    floor = power[:, noise].mean(dim=1).clamp_min(1e-30)
    sums = torch.stack([power[:, detail & (sector == d)].sum(dim=1) for d in range(DIRECTIONS)], dim=1)
    counts = torch.stack([(detail & (sector == d)).sum() for d in range(DIRECTIONS)]).to(sums.dtype)
    width = round(WEAKEST_SPAN_DEG / (180.0 / DIRECTIONS))
    spans = [[(d + w) % DIRECTIONS for w in range(width)] for d in range(DIRECTIONS)]
    means = torch.stack([sums[:, span].sum(dim=1) / counts[span].sum() for span in spans], dim=1)
    return ((means.min(dim=1).values - floor) / floor).double().cpu().numpy()


def _theil_sen_at(x: np.ndarray, y: np.ndarray, at: float) -> float:
    """The Theil–Sen line through ``(x, y)`` (median of pairwise slopes) evaluated at ``at``."""
    slopes = [(y[b] - y[a]) / (x[b] - x[a]) for a in range(len(x)) for b in range(a + 1, len(x)) if x[b] != x[a]]
    slope = float(np.median(slopes)) if slopes else 0.0
    return float(np.median(y - slope * x)) + slope * at


def neighbour_trend(
    values: np.ndarray, ranks: np.ndarray, *, judged: np.ndarray, reference: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each value over the trend of its :data:`TREND_NEIGHBOURS` nearest reference tilts in angle.

    The trend is a Theil–Sen line through the neighbours' logs against rank, so an outermost tilt, whose
    neighbours all lie on one side, is compared with the extrapolated trend rather than with their median.

    Parameters
    ----------
    values
        ``(n,)`` positive measures (clipped at :data:`SHARPNESS_FLOOR`).
    ranks
        ``(n,)`` position of each tilt in ascending angle.
    judged, reference
        ``(n,)`` bool: which tilts get a ratio, and which serve as neighbours.

    Returns
    -------
    ratio, z
        ``(n,)`` value over its trend, and the robust z-score of the log ratio, the spread being that of the
        tilts both judged and reference (``nan`` where not judged).
    """
    logs = np.log(np.clip(values, SHARPNESS_FLOOR, None))
    residual = np.full(len(values), np.nan)
    pool = np.flatnonzero(reference)
    for i in np.flatnonzero(judged):
        others = sorted((j for j in pool if j != i), key=lambda j: (abs(ranks[j] - ranks[i]), ranks[j]))
        near = np.array(others[:TREND_NEIGHBOURS], dtype=int)
        if near.size:
            residual[i] = logs[i] - _theil_sen_at(ranks[near].astype(float), logs[near], float(ranks[i]))
    typical = residual[judged & reference & np.isfinite(residual)]
    spread = max(1.4826 * float(np.median(np.abs(typical))), MIN_LOG_SPREAD) if typical.size else 1.0
    return np.exp(residual), residual / spread


@dataclass(frozen=True)
class NeighbourShifts:
    """Displacements of each tilt from its two reference tilts, and how well the three measures agree.

    Attributes
    ----------
    from_sides_px
        ``(n, 3)`` length (pixels) of the displacement from the neighbour below, from the one above in angle,
        and from the line through the two (their positions interpolated, or extrapolated, to the tilt's angle):
        a series that drifts steadily or wanders is near that line, a tilt that jumped is far from all three. An
        outermost tilt has its neighbour and the tilt beyond it. ``nan`` for unusable tilts.
    closure_px
        ``(n,)`` length (pixels) of what the triangle of the tilt and its two references leaves open: the
        displacement from one reference, less that from the other, less the references' own displacement.
        Correlations that found the content close it to a few pixels; a peak of noise or of a repeating feature
        leaves it open.
    outermost
        ``(n,)`` bool: the two references lie on one side (the first and last usable tilts).
    beyond_parallax_px
        ``(n, 3)`` the three displacements, less across the axis what content at any depth of the slab can make
        (:func:`~tomoprep.algorithms.parallax.beyond_parallax`); equal to ``from_sides_px`` for a thickness of 0.
    """

    from_sides_px: np.ndarray
    closure_px: np.ndarray
    outermost: np.ndarray
    beyond_parallax_px: np.ndarray


def _references(p: int, last: int) -> tuple[int, int]:
    """Positions (in angle order) of the two tilts position ``p`` is compared with."""
    if p == 0:
        return 1, 2
    if p == last:
        return last - 1, last - 2
    return p - 1, p + 1


def neighbour_shifts_px(
    images: torch.Tensor,
    tilts_deg: Sequence[float] | np.ndarray,
    *,
    axis_deg: float,
    usable: np.ndarray,
    thickness_px: float = 0.0,
) -> NeighbourShifts:
    """Displacement (pixels) of each usable tilt from its usable neighbours below and above in angle.

    Each pair of tilts at most two apart in angle is correlated once (:func:`pair_shift`, stretched); a tilt's
    displacement from either reference and the references' from each other make a triangle, whose closure says
    whether the three correlations found the same content (:class:`NeighbourShifts`). ``thickness_px``: the
    specimen slab's thickness in pixels of ``images``, whose parallax ``beyond_parallax_px`` leaves out. Fewer
    than three usable tilts: everything ``nan``.
    """
    all_angles = np.asarray(tilts_deg, dtype=float)
    indices = np.flatnonzero(usable)
    indices = indices[np.argsort(all_angles[indices], kind="stable")]
    out = NeighbourShifts(np.full((len(all_angles), 3), np.nan), np.full(len(all_angles), np.nan),
                          np.zeros(len(all_angles), dtype=bool), np.full((len(all_angles), 3), np.nan))  # fmt: skip
    if len(indices) < 3:
        return out
    # A jump of a tenth of the field is plain at a few hundred pixels: bin to that first, and correlate on the CPU
    # (cheap at that size, and where the correlation's geometry lives).
    factor = max(1, math.ceil(max(images.shape[-2:]) / SHIFT_SIZE_PX - 1e-6))
    chosen = images[torch.as_tensor(indices, device=images.device)].float()
    small = (fourier_bin(chosen, factor) if factor > 1 else chosen).cpu()
    scale = images.shape[-1] / small.shape[-1]
    angles = [float(all_angles[i]) for i in indices]
    relative = _pairwise(small, angles, axis_deg=axis_deg)
    last = len(indices) - 1
    for p, index in enumerate(indices):
        a, b = _references(p, last)
        from_a, from_b = relative(p, a), relative(p, b)
        references = frame_change(axis_deg, angles[b], angles[p]) @ relative(b, a)
        from_line = from_a - references * ((angles[p] - angles[a]) / (angles[b] - angles[a]))
        out.from_sides_px[index] = [float(v.norm()) * scale for v in (from_a, from_b, from_line)]
        # Content at depth z moves across the axis by z sin(p - q) / cos q between two tilts (module notes); the
        # line adds its references' parallax, carried to the tilt's frame and scaled as the line is.
        half = 0.5 * thickness_px / scale
        reach_a, reach_b = (parallax_px(half, angles[p], angles[r]) for r in (a, b))
        reach_ba = parallax_px(half, angles[b], angles[a]) * _cosine(angles[p]) / _cosine(angles[b])
        reach_line = reach_a + abs((angles[p] - angles[a]) / (angles[b] - angles[a])) * reach_ba
        pairs = ((from_a, reach_a), (from_b, reach_b), (from_line, reach_line))
        out.beyond_parallax_px[index] = [beyond_parallax(v, reach, axis_deg=axis_deg) * scale for v, reach in pairs]
        out.closure_px[index] = float((from_a - from_b - references).norm()) * scale
        out.outermost[index] = p in (0, last)
    return out


def _cosine(tilt_deg: float) -> float:
    return max(math.cos(math.radians(tilt_deg)), 1e-3)


def _pairwise(small: torch.Tensor, angles: list[float], *, axis_deg: float):
    """``relative(p, q)``: displacement ``(x, y)`` of image ``p`` from image ``q`` in ``p``'s frame (pixels),
    each unordered pair correlated once."""
    limit = 0.45 * min(small.shape[-2:])
    measured: dict[tuple[int, int], torch.Tensor] = {}

    def relative(p: int, q: int) -> torch.Tensor:
        low, high = min(p, q), max(p, q)
        if (low, high) not in measured:
            measured[(low, high)], _ = pair_shift(small[low], small[high], axis_deg=axis_deg,
                                                  reference_tilt_deg=angles[low], moving_tilt_deg=angles[high],
                                                  max_shift_px=limit)  # fmt: skip
        shift = measured[(low, high)]
        return shift if p == high else -(frame_change(axis_deg, angles[high], angles[low]) @ shift)

    return relative


def measure_tilt_quality(
    images: torch.Tensor,
    tilts_deg: Sequence[float],
    *,
    axis_deg: float,
    pixel_spacing_angstrom: float,
    doses_e_per_angstrom2: Sequence[float] | None = None,
    thresholds: QualityThresholds = QualityThresholds(),
) -> TiltQuality:
    """Measure every tilt of a series and say which are bad and why (module notes).

    Parameters
    ----------
    images
        ``(n, ny, nx)`` tilt images of one series at a working binning, in any order.
    tilts_deg
        ``(n,)`` their tilt angles (degrees).
    axis_deg
        Tilt-axis angle, degrees counter-clockwise from image Y.
    pixel_spacing_angstrom
        Pixel spacing of ``images`` (Å), for the shifts in Å.
    doses_e_per_angstrom2
        ``(n,)`` dose of each tilt (e⁻/Å²) for the mean test; ``None``: equal doses.
    thresholds
        When a measure makes a tilt bad.
    """
    n = images.shape[0]
    tilts = np.asarray(tilts_deg, dtype=float)
    ranks = np.argsort(np.argsort(tilts, kind="stable"), kind="stable")
    absolute = is_absolute(images)
    means = images.double().mean(dim=(-2, -1)).cpu().numpy()
    ratio = mean_ratios(means, tilts, doses_e_per_angstrom2) if absolute else np.full(n, np.nan)
    area = dark_fractions(images, absolute=absolute, dark_level=thresholds.dark_level)
    usual = float(np.median(area))
    dark = ((area - usual) / max(1.0 - usual, 1e-6) > thresholds.dark_area_fraction) | (ratio < thresholds.dark_ratio)
    thickness = thresholds.specimen_thickness_angstrom
    if thickness is None:
        thickness = slab_thickness_angstrom(means, tilts, doses_e_per_angstrom2) if absolute else None
    thickness_px = (DEFAULT_THICKNESS_ANGSTROM if thickness is None else thickness) / pixel_spacing_angstrom
    shifts = neighbour_shifts_px(images, tilts, axis_deg=axis_deg, usable=~dark, thickness_px=thickness_px)
    field_px = min(images.shape[-2:])
    evidence = shifts.beyond_parallax_px.min(axis=1) / field_px  # nan unless measured on both sides
    closure = shifts.closure_px / field_px
    # The series' wander, from the tilts whose correlations agree (a peak of noise says nothing about it).
    tolerance = closure_tolerance(evidence, shifts.outermost, thresholds.shift_fraction)
    trusted = evidence[np.isfinite(evidence) & (closure <= tolerance)]
    typical = float(np.median(trusted)) if trusted.size else 0.0
    sharp = sharpness(images, pixel_spacing_angstrom=pixel_spacing_angstrom)
    shifted = _shifted(evidence, closure <= tolerance, typical, thresholds.shift_fraction)
    judged = ~dark & ~shifted
    sharp_ratio, sharp_z = neighbour_trend(sharp, ranks, judged=judged, reference=judged)
    # Once found, blurred tilts are nobody's neighbours: their collapse would drag the others' trend down.
    blurred = (sharp_ratio < thresholds.blur_ratio) & (sharp_z < -thresholds.blur_z_score)
    sharp_ratio, sharp_z = neighbour_trend(sharp, ranks, judged=judged, reference=judged & ~blurred)
    quality = TiltQuality(
        shift_angstrom=shifts.beyond_parallax_px * pixel_spacing_angstrom,
        shift_fraction=evidence,
        shift_closure_fraction=closure,
        shift_closure_tolerance_fraction=tolerance,
        shift_limit_fraction=thresholds.shift_fraction,
        shift_typical_fraction=typical,
        mean_ratio=ratio,
        dark_fraction=area,
        usual_dark_fraction=usual,
        sharpness=sharp,
        sharpness_ratio=sharp_ratio,
        sharpness_z=sharp_z,
        absolute=absolute,
        reasons=(),
    )
    return _with_reasons(quality, thresholds)


def _shifted(evidence: np.ndarray, closes: np.ndarray, typical: float, limit: float) -> np.ndarray:
    """``(n,)`` bool: the rule of :attr:`TiltQuality.shifted`, on the measures as fractions of the field."""
    far = np.nan_to_num(evidence, nan=0.0) > limit
    return far & closes & (evidence > JUMP_OVER_TYPICAL * typical)


def closure_tolerance(evidence: np.ndarray, outermost: np.ndarray, limit: float) -> np.ndarray:
    """``(n,)`` how far each tilt's triangle may stay open (fraction of the field): :data:`CLOSURE_SHARE` of the
    limit, or of the displacement where larger (the farther a tilt jumped, the less it shares with its
    neighbours and the coarser their peaks). Not so for an outermost tilt: its references lie on one side, the
    line through them is extrapolated and the farther one two steps off, so its displacement is the least
    certain, and its triangle must close as the limit demands."""
    scale = np.where(outermost, limit, np.maximum(limit, np.nan_to_num(evidence, nan=0.0)))
    return CLOSURE_SHARE * scale


def _with_reasons(quality: TiltQuality, thresholds: QualityThresholds) -> TiltQuality:
    """``quality`` with the reasons of every tilt written out from its measures."""
    t = thresholds
    reasons = []
    for i in range(len(quality.dark_fraction)):
        why = []
        if quality.mean_ratio[i] < t.dark_ratio:
            why.append(f"dark: mean {quality.mean_ratio[i]:.2f} of the expected")
        if quality.dark_area_excess[i] > t.dark_area_fraction:
            usual = quality.usual_dark_fraction
            why.append(
                f"dark: {100 * quality.dark_fraction[i]:.0f} % of the image below {100 * t.dark_level:.0f} % "
                "of its bright level" + (f" (the series' median tilt: {100 * usual:.0f} %)" if usual >= 0.05 else "")
            )
        if not why and quality.sharpness_ratio[i] < t.blur_ratio and quality.sharpness_z[i] < -t.blur_z_score:
            why.append(
                f"blurred: high-frequency signal {quality.sharpness_ratio[i]:.2f} of the trend of its neighbours "
                f"(robust z {quality.sharpness_z[i]:.1f})"
            )
        if quality.shifted[i]:
            distance = float(np.min(quality.shift_angstrom[i]))
            why.append(
                f"shifted: {distance:.0f} Å ({100 * quality.shift_fraction[i]:.0f} % of the field of view) "
                "from its neighbours"
            )
        reasons.append(tuple(why))
    return replace(quality, reasons=tuple(reasons))
