"""Bad tilts planted on purpose, so that stack cleaning can be scored: a stage jump, a dark image, a blurred one.

Which tilts: drawn by the series' random state among the tilts sorted by angle, never the first or the last,
never the tilt nearest 0°, never two neighbours in angle, every such choice equally likely; kinds cycle
``shifted``, ``dark``, ``blurred`` over them in random order. Each defect is physical, made before the
electrons are counted, so its Poisson noise is the usual:

``shifted``
    the stage jumped: the tilt's image shift gets an extra 20–30 % of the field of view in a random direction
    (this tilt only; the stage-tracking walk of the others is unchanged).
``dark``
    fewer electrons reach the detector: either a smooth-edged region covering 50–80 % of the image transmits
    2–5 % (a grid bar or the thick edge of a lamella), or the whole image gets about 10 % (8–12 %) of them.
``blurred``
    drift within the frames: the expected image is convolved with a 60–120 Å line (uniform motion) or a Gaussian
    of that full width at half maximum, so the movie and its motion-corrected sum are both blurred.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.fft

from tomoprep.simulate.acquisition import SeriesPlan

DefectKind = Literal["shifted", "dark", "blurred"]
#: Kinds in the order they are given to the drawn tilts.
DEFECT_KINDS: tuple[DefectKind, ...] = ("shifted", "dark", "blurred")
#: Extra image shift of a ``shifted`` tilt, as a fraction of the field of view (the detector's shorter side).
JUMP_FRACTION = (0.20, 0.30)
#: Part of the image a dark region covers, and the fraction of electrons it lets through.
DARK_REGION_COVERAGE = (0.50, 0.80)
DARK_REGION_TRANSMISSION = (0.02, 0.05)
#: Fraction of electrons a wholly dark tilt receives.
DARK_WHOLE_TRANSMISSION = (0.08, 0.12)
#: Width of a dark region's edge (tanh profile), as a fraction of the detector's shorter side.
DARK_EDGE_FRACTION = 0.03
#: Length of a ``blurred`` tilt's line kernel, or full width at half maximum of its Gaussian kernel (Å).
BLUR_LENGTH_ANGSTROM = (60.0, 120.0)


@dataclass(frozen=True)
class PlantedDefect:
    """What was done to one tilt (units in the names; directions counter-clockwise from image X).

    ``dark_coverage`` is the part of the detector behind the dark region (1.0: the whole image at
    ``transmission``); ``blur_shape`` is ``line`` (length ``blur_length_angstrom``) or ``gaussian`` (that FWHM).
    """

    kind: DefectKind
    jump_x_angstrom: float = 0.0
    jump_y_angstrom: float = 0.0
    transmission: float = 1.0
    dark_coverage: float = 0.0
    direction_deg: float = 0.0
    blur_shape: Literal["line", "gaussian"] = "line"
    blur_length_angstrom: float = 0.0

    def describe(self) -> str:
        """One line for the truth: what was planted, with its numbers."""
        if self.kind == "shifted":
            return f"stage jump of ({self.jump_x_angstrom:.0f}, {self.jump_y_angstrom:.0f}) Å"
        if self.kind == "dark" and self.dark_coverage >= 1.0:
            return f"whole image at {100 * self.transmission:.1f} % of the electrons"
        if self.kind == "dark":
            return (
                f"dark region over {100 * self.dark_coverage:.0f} % of the image at "
                f"{100 * self.transmission:.1f} % of the electrons"
            )
        return f"{self.blur_shape} blur of {self.blur_length_angstrom:.0f} Å at {self.direction_deg:.0f}°"


def _runs(n_tilts: int, zero_rank: int) -> tuple[range, range]:
    """The candidate ranks (ascending angle): either side of the tilt nearest 0°, the ends left out."""
    return range(1, zero_rank), range(zero_rank + 1, n_tilts - 1)


def max_bad_tilts(n_tilts: int, zero_rank: int | None = None) -> int:
    """How many bad tilts a series of ``n_tilts`` can take: every other tilt of each candidate run.

    ``zero_rank`` is the rank of the tilt nearest 0°; by default the simulator's, ``(n_tilts - 1) // 2``.
    """
    zero = (n_tilts - 1) // 2 if zero_rank is None else zero_rank
    return sum(math.ceil(len(run) / 2) for run in _runs(n_tilts, zero))


def _spread(run: range, k: int, rng: np.random.Generator) -> list[int]:
    """``k`` ranks of ``run``, no two neighbours, uniformly: ``k`` of ``len - k + 1`` slots, then gaps opened."""
    slots = np.sort(rng.choice(len(run) - k + 1, size=k, replace=False)) if k else np.array([], dtype=int)
    return [run[int(slot) + i] for i, slot in enumerate(slots)]


def choose_bad_tilts(angles_deg: np.ndarray, n_bad: int, rng: np.random.Generator) -> list[int]:
    """Ranks (in ascending angle) of ``n_bad`` tilts, not an end, not nearest 0°, no two neighbours.

    Every such choice is equally likely; the ranks come in random order (the order kinds are given in).

    Raises
    ------
    ValueError
        If the series has too few tilts (:func:`max_bad_tilts`).
    """
    n, zero = len(angles_deg), int(np.argmin(np.abs(np.sort(np.asarray(angles_deg)))))
    if n_bad > max_bad_tilts(n, zero):
        raise ValueError(f"{n} tilts take at most {max_bad_tilts(n, zero)} bad tilts, not {n_bad}")
    low, high = _runs(n, zero)
    # Ways to put k of them in a run of length L with gaps: C(L - k + 1, k); split n_bad by those counts.
    splits = [k for k in range(n_bad + 1) if k <= math.ceil(len(low) / 2) and n_bad - k <= math.ceil(len(high) / 2)]
    ways = np.array([math.comb(len(low) - k + 1, k) * math.comb(len(high) - n_bad + k + 1, n_bad - k) for k in splits],
                    dtype=float)  # fmt: skip
    k = int(rng.choice(splits, p=ways / ways.sum()))
    ranks = _spread(low, k, rng) + _spread(high, n_bad - k, rng)
    return [ranks[int(i)] for i in rng.permutation(len(ranks))]


def _draw_defect(kind: DefectKind, field_of_view_angstrom: float, rng: np.random.Generator) -> PlantedDefect:
    direction = float(rng.uniform(-180.0, 180.0))
    if kind == "shifted":
        length = float(rng.uniform(*JUMP_FRACTION)) * field_of_view_angstrom
        a = math.radians(direction)
        return PlantedDefect(kind, length * math.cos(a), length * math.sin(a), direction_deg=direction)
    if kind == "dark":
        if rng.random() < 0.5:
            coverage, transmission = float(rng.uniform(*DARK_REGION_COVERAGE)), rng.uniform(*DARK_REGION_TRANSMISSION)
        else:
            coverage, transmission = 1.0, rng.uniform(*DARK_WHOLE_TRANSMISSION)
        return PlantedDefect(kind, transmission=float(transmission), dark_coverage=coverage, direction_deg=direction)
    shape: Literal["line", "gaussian"] = "line" if rng.random() < 0.5 else "gaussian"
    length = float(rng.uniform(*BLUR_LENGTH_ANGSTROM))
    return PlantedDefect(kind, direction_deg=direction, blur_shape=shape, blur_length_angstrom=length)


def plan_bad_tilts(
    plan: SeriesPlan, n_bad: int, *, field_of_view_angstrom: float, rng: np.random.Generator
) -> tuple[SeriesPlan, dict[int, PlantedDefect]]:
    """Choose and draw the bad tilts of a series; a ``shifted`` tilt's jump goes into its planned shift.

    Returns
    -------
    plan, defects
        The plan (jumps added to the shifts of the shifted tilts) and the defects by acquisition index.
    """
    by_rank = sorted(plan.tilts, key=lambda t: t.stack_index)
    ranks = choose_bad_tilts(np.array([t.intended_tilt_deg for t in by_rank]), n_bad, rng)
    defects = {}
    for k, rank in enumerate(ranks):
        kind = DEFECT_KINDS[k % len(DEFECT_KINDS)]
        defects[by_rank[rank].acquisition_index] = _draw_defect(kind, field_of_view_angstrom, rng)
    tilts = []
    for tilt in plan.tilts:
        defect = defects.get(tilt.acquisition_index)
        if defect is not None and defect.kind == "shifted":
            tilt = dataclasses.replace(
                tilt,
                shift_x_angstrom=tilt.shift_x_angstrom + defect.jump_x_angstrom,
                shift_y_angstrom=tilt.shift_y_angstrom + defect.jump_y_angstrom,
            )
        tilts.append(tilt)
    return dataclasses.replace(plan, tilts=tuple(tilts)), defects


def blur_margin_px(defect: PlantedDefect | None, pixel_spacing_angstrom: float) -> int:
    """Pixels a defect's blur reaches beyond each edge (0 for others): its kernel's half-width."""
    if defect is None or defect.kind != "blurred":
        return 0
    return math.ceil(defect.blur_length_angstrom / pixel_spacing_angstrom)


def apply_defect(
    image: np.ndarray, defect: PlantedDefect, *, detector_shape_yx: tuple[int, int], pixel_spacing_angstrom: float
) -> np.ndarray:
    """The expected image of a dark or blurred tilt (a shifted tilt's jump is already in its geometry).

    Parameters
    ----------
    image
        ``(H, W)`` float32 expected image on the padded grid, centred on the detector (pixel ``L // 2`` on the
        detector's ``N // 2``).
    defect
        What to do.
    detector_shape_yx
        The detector's shape: a dark region's coverage is measured on it.
    pixel_spacing_angstrom
        Pixel spacing (Å).
    """
    if defect.kind == "dark":
        return (image * _transmission_map(image.shape, defect, detector_shape_yx)).astype(np.float32)
    if defect.kind == "blurred":
        return _blurred(image, defect, pixel_spacing_angstrom)
    return image


def _along(shape_yx: tuple[int, ...], direction_deg: float) -> np.ndarray:
    """Position along ``direction_deg`` (pixels from the centre pixel) of every pixel of ``shape_yx``."""
    a = math.radians(direction_deg)
    y = np.arange(shape_yx[0], dtype=np.float32) - shape_yx[0] // 2
    x = np.arange(shape_yx[1], dtype=np.float32) - shape_yx[1] // 2
    return np.float32(math.cos(a)) * x[None, :] + np.float32(math.sin(a)) * y[:, None]


def _transmission_map(
    shape_yx: tuple[int, ...], defect: PlantedDefect, detector_shape_yx: tuple[int, int]
) -> np.ndarray | float:
    """Fraction of electrons reaching each pixel: ``transmission`` beyond a smooth edge, 1 before it."""
    if defect.dark_coverage >= 1.0:
        return defect.transmission
    # The edge sits where the dark side covers the wanted part of the detector.
    edge = float(np.quantile(_along(detector_shape_yx, defect.direction_deg)[::4, ::4], 1.0 - defect.dark_coverage))
    width = DARK_EDGE_FRACTION * min(detector_shape_yx)
    light = 0.5 * (1.0 - np.tanh((_along(shape_yx, defect.direction_deg) - edge) / width))
    return (defect.transmission + (1.0 - defect.transmission) * light).astype(np.float32)


def _blurred(image: np.ndarray, defect: PlantedDefect, pixel_spacing_angstrom: float) -> np.ndarray:
    """``image`` convolved (periodically) with the defect's line or Gaussian kernel."""
    shape = (int(image.shape[0]), int(image.shape[1]))
    ky = scipy.fft.fftfreq(shape[0]).astype(np.float32)[:, None]
    kx = scipy.fft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    length_px = defect.blur_length_angstrom / pixel_spacing_angstrom
    if defect.blur_shape == "line":
        a = math.radians(defect.direction_deg)
        along = kx * np.float32(math.cos(a)) + ky * np.float32(math.sin(a))
        transfer = np.sinc(along * np.float32(length_px))
    else:
        sigma = length_px / (2.0 * math.sqrt(2.0 * math.log(2.0)))
        transfer = np.exp(np.float32(-2.0 * math.pi**2 * sigma**2) * (kx * kx + ky * ky))
    spectrum = scipy.fft.rfft2(image, workers=-1) * transfer
    blurred = scipy.fft.irfft2(spectrum, s=shape, workers=-1)
    return np.maximum(blurred, 0.0).astype(np.float32)
