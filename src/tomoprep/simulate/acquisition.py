"""What happens at the microscope, tilt by tilt: scheme, order, dose, the true geometry and focus of each tilt.

Nothing here touches pixels. A :class:`SeriesPlan` holds, per tilt in acquisition order, what the microscope
reports (nominal stage tilt, target defocus, time) beside what really happened (true tilt, true tilt axis,
stage shift, defocus and astigmatism), from which the images are made and the truth is written.

Stage tilts are what the goniometer reports: the intended angle plus a few thousandths of a degree of
reading noise (``3.00113`` for 3°). The true tilt is that reading plus the series' tilt offset, so
``true = nominal + offset`` holds exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import numpy as np

from tomoprep.conventions import normalise_angle_deg
from tomoprep.simulate.detector import DEAD_PIXEL_FRACTION, HOT_PIXEL_FRACTION, Detector, make_detector

# The camera model moved to detector.py; its names stay importable from here, where callers and tests take them.
__all__ = [
    "AXIS_WOBBLE_LIMIT_DEG",
    "DEAD_PIXEL_FRACTION",
    "FOCUS_ERROR_ANGSTROM",
    "HOT_PIXEL_FRACTION",
    "SECONDS_PER_TILT",
    "SESSION_START",
    "SHIFT_STEP_ANGSTROM",
    "STAGE_READING_NOISE_DEG",
    "TARGET_DEFOCUS_STEP_ANGSTROM",
    "Detector",
    "SeriesPlan",
    "SeriesSettings",
    "TiltPlan",
    "TiltScheme",
    "acquisition_order",
    "make_detector",
    "plan_series",
    "scheme_angles_deg",
    "session_start_time",
]

TiltScheme = Literal["dose_symmetric", "bidirectional"]

#: Spread of the goniometer reading around the intended tilt (degrees).
STAGE_READING_NOISE_DEG = 0.002
#: Largest deviation of the true tilt axis from the series' mean axis, tilt to tilt (degrees).
AXIS_WOBBLE_LIMIT_DEG = 0.3
#: Step of the stage-shift random walk at 0° (Å); it grows as ``1 + |tilt| / 30°``.
SHIFT_STEP_ANGSTROM = 15.0
#: Spread of the focus error around the target defocus (Å).
FOCUS_ERROR_ANGSTROM = 120.0
#: Target defoci are multiples of this (Å), as users set them.
TARGET_DEFOCUS_STEP_ANGSTROM = 2500.0
#: Seconds between two exposures: tilting, tracking, focusing and recording.
SECONDS_PER_TILT = (28, 52)
#: Start of the first simulated acquisition (a fixed date keeps sessions reproducible).
SESSION_START = datetime(2024, 5, 14, 9, 30, 0)


@dataclass(frozen=True)
class TiltPlan:
    """One tilt as acquired; units in the names, defocus positive for underfocus.

    ``acquisition_index`` is the 0-based position in acquisition order (also the ``ZValue`` of the movie
    mdoc), ``stack_index`` the position in a stack sorted by tilt angle, ``intended_tilt_deg`` the angle of the
    scheme (used in movie names), ``nominal_tilt_deg`` the stage reading written to the mdoc.
    """

    acquisition_index: int
    stack_index: int
    intended_tilt_deg: float
    nominal_tilt_deg: float
    true_tilt_deg: float
    true_tilt_axis_deg: float
    shift_x_angstrom: float
    shift_y_angstrom: float
    defocus_u_angstrom: float
    defocus_v_angstrom: float
    astigmatism_angle_deg: float
    pre_exposure_e_per_angstrom2: float
    dose_e_per_angstrom2: float
    date_time: datetime

    @property
    def defocus_angstrom(self) -> float:
        """Mean of defocus U and V (Å, underfocus positive)."""
        return 0.5 * (self.defocus_u_angstrom + self.defocus_v_angstrom)


@dataclass(frozen=True)
class SeriesPlan:
    """One tilt series: its specimen, optics settings and tilts in acquisition order."""

    name: str
    nominal_tilt_axis_deg: float
    tilt_offset_deg: float
    target_defocus_angstrom: float
    astigmatism_angstrom: float
    thickness_angstrom: float
    pretilt_deg: float
    z_offset_angstrom: float
    tilts: tuple[TiltPlan, ...]

    @property
    def true_tilt_axis_deg(self) -> float:
        """Mean true tilt-axis angle over the tilts (degrees, CCW from Y)."""
        return float(np.mean([t.true_tilt_axis_deg for t in self.tilts]))


@dataclass(frozen=True)
class SeriesSettings:
    """What the user chose for every series (units in the names; ranges are sampled per series).

    ``stage_reading_decimals`` is how precisely the mdoc writes the stage tilt (3 for SerialEM, 2 for Tomo5), so
    that the nominal angles of the truth are exactly those of the mdoc.
    """

    n_tilts: int
    tilt_step_deg: float
    scheme: TiltScheme
    nominal_tilt_axis_deg: float
    tilt_offset_deg: float
    dose_per_tilt_e_per_angstrom2: float
    defocus_range_angstrom: tuple[float, float]
    astigmatism_angstrom: float
    thickness_range_angstrom: tuple[float, float]
    pretilt_deg: float
    stage_reading_decimals: int = 3


def scheme_angles_deg(n_tilts: int, tilt_step_deg: float) -> np.ndarray:
    """Intended tilt angles, ascending, centred on 0° (an even count has one more positive tilt).

    Returns
    -------
    numpy.ndarray
        ``(n_tilts,)`` angles in degrees, ``tilt_step_deg`` apart.
    """
    low = -((n_tilts - 1) // 2)
    return (np.arange(n_tilts) + low) * float(tilt_step_deg)


def acquisition_order(angles_deg: np.ndarray, scheme: TiltScheme) -> list[int]:
    """Indices of ``angles_deg`` (ascending, containing 0°) in acquisition order.

    ``dose_symmetric``: Hagen's scheme with groups of 2: 0°, +1, +2, -1, -2, +3, +4, ... steps; when one side
    ends, the other continues. ``bidirectional``: 0° down to the negative end, then from the first positive
    tilt up to the positive end.
    """
    zero = int(np.argmin(np.abs(angles_deg)))
    positive = list(range(zero + 1, len(angles_deg)))
    negative = list(range(zero - 1, -1, -1))
    if scheme == "bidirectional":
        return [zero, *negative, *positive]
    order = [zero]
    for start in range(0, max(len(positive), len(negative)), 2):
        order += positive[start : start + 2] + negative[start : start + 2]
    return order


def plan_series(
    name: str,
    settings: SeriesSettings,
    *,
    rng: np.random.Generator,
    start_time: datetime,
) -> SeriesPlan:
    """Draw the truth of one tilt series: specimen, focus, and per tilt its geometry, dose and time.

    Parameters
    ----------
    name
        Tilt-series name (``TS_01``).
    settings
        The user's choices; defocus and thickness are drawn uniformly from their ranges.
    rng
        Source of every random value (the plan is a function of its state).
    start_time
        Time of the first exposure.
    """
    intended = scheme_angles_deg(settings.n_tilts, settings.tilt_step_deg)
    order = acquisition_order(intended, settings.scheme)
    stack_rank = {index: rank for rank, index in enumerate(np.argsort(intended, kind="stable"))}
    target = _target_defocus(settings.defocus_range_angstrom, rng)
    astigmatism_angle = float(rng.uniform(-90.0, 90.0))
    thickness = float(rng.uniform(*settings.thickness_range_angstrom))
    z_offset = float(rng.normal(0.0, 0.05 * thickness))
    shifts = _stage_shifts(intended[order], rng)
    seconds = np.concatenate([[0], np.cumsum(rng.integers(*SECONDS_PER_TILT, size=len(order) - 1))])
    tilts = []
    for k, index in enumerate(order):
        moment = start_time + timedelta(seconds=int(seconds[k]))
        tilts.append(
            _plan_tilt(k, float(intended[index]), int(stack_rank[index]), settings, rng=rng, target_angstrom=target,
                       astigmatism_angle_deg=astigmatism_angle, shift_angstrom=shifts[k], date_time=moment)
        )  # fmt: skip
    return SeriesPlan(
        name=name,
        nominal_tilt_axis_deg=normalise_angle_deg(settings.nominal_tilt_axis_deg),
        tilt_offset_deg=settings.tilt_offset_deg,
        target_defocus_angstrom=target,
        astigmatism_angstrom=settings.astigmatism_angstrom,
        thickness_angstrom=thickness,
        pretilt_deg=settings.pretilt_deg,
        z_offset_angstrom=z_offset,
        tilts=tuple(tilts),
    )


def _plan_tilt(
    acquisition_index: int,
    intended_deg: float,
    stack_index: int,
    settings: SeriesSettings,
    *,
    rng: np.random.Generator,
    target_angstrom: float,
    astigmatism_angle_deg: float,
    shift_angstrom: np.ndarray,
    date_time: datetime,
) -> TiltPlan:
    """One tilt: stage reading, true tilt and axis, focus error and astigmatism, dose before and during it."""
    reading = intended_deg + rng.normal(0.0, STAGE_READING_NOISE_DEG)
    nominal = round(float(reading), settings.stage_reading_decimals) + 0.0  # as the mdoc will hold it
    wobble = float(np.clip(rng.normal(0.0, 0.4), -1.0, 1.0) * AXIS_WOBBLE_LIMIT_DEG)
    defocus = target_angstrom + float(rng.normal(0.0, FOCUS_ERROR_ANGSTROM))
    dose = settings.dose_per_tilt_e_per_angstrom2
    return TiltPlan(
        acquisition_index=acquisition_index,
        stack_index=stack_index,
        intended_tilt_deg=intended_deg,
        nominal_tilt_deg=nominal,
        true_tilt_deg=nominal + settings.tilt_offset_deg,
        true_tilt_axis_deg=normalise_angle_deg(settings.nominal_tilt_axis_deg + wobble),
        shift_x_angstrom=float(shift_angstrom[0]),
        shift_y_angstrom=float(shift_angstrom[1]),
        defocus_u_angstrom=defocus + settings.astigmatism_angstrom / 2,
        defocus_v_angstrom=defocus - settings.astigmatism_angstrom / 2,
        astigmatism_angle_deg=astigmatism_angle_deg + float(rng.normal(0.0, 2.0)),
        pre_exposure_e_per_angstrom2=acquisition_index * dose,
        dose_e_per_angstrom2=dose,
        date_time=date_time,
    )


def _target_defocus(range_angstrom: tuple[float, float], rng: np.random.Generator) -> float:
    """A target defocus in the range, in the 0.25 µm steps users type (uniform when the range is narrower)."""
    low, high = range_angstrom
    step = TARGET_DEFOCUS_STEP_ANGSTROM
    steps = np.arange(math.ceil(low / step), math.floor(high / step) + 1)
    if steps.size == 0:
        return float(rng.uniform(low, high))
    return float(rng.choice(steps) * step)


def _stage_shifts(angles_in_order_deg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Stage-tracking error per tilt in acquisition order: a random walk whose steps grow with the tilt.

    Returns
    -------
    numpy.ndarray
        ``(n, 2)`` shifts (x, y) in Å.
    """
    scale = SHIFT_STEP_ANGSTROM * (1.0 + np.abs(angles_in_order_deg) / 30.0)
    steps = rng.normal(0.0, 1.0, size=(len(scale), 2)) * scale[:, None]
    steps[0] *= 0.5  # the first exposure follows a fresh centring
    return np.cumsum(steps, axis=0)


def session_start_time(series_index: int, *, n_tilts: int) -> datetime:
    """Start time of series ``series_index`` (0-based): each follows the previous one with time to move."""
    minutes_per_series = n_tilts * max(SECONDS_PER_TILT) / 60.0 + 6.0
    return SESSION_START + timedelta(minutes=round(series_index * minutes_per_series))
