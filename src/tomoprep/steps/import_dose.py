"""Acquisition order and pre-exposure dose of the tilts of a series.

Pre-exposure is the dose a tilt's area received *before* it was recorded: 0 for the first tilt. It is
(in order of preference) the user's dose per tilt times the number of tilts recorded before; SerialEM's
``PriorRecordDose``; or the running sum of the earlier tilts' ``ExposureDose``. RELION's mdoc path takes the
inclusive running sum (the first tilt gets its own dose as pre-exposure); here the sum is exclusive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from tomoprep.errors import InputError


@dataclass(frozen=True)
class DoseRecord:
    """Dose facts of one tilt as the source states them (``None`` where it says nothing)."""

    exposure_dose_e_per_angstrom2: float | None
    prior_record_dose_e_per_angstrom2: float | None
    date_time: datetime | None


def acquisition_order(section_indices: Sequence[int], date_times: Sequence[datetime | None]) -> list[int]:
    """Positions of the tilts sorted into acquisition order.

    By ``DateTime`` when every tilt has one (ties broken by section), else by section index: SerialEM writes
    sections in acquisition order, but a stack re-sorted by angle keeps only its DateTime in order.
    """
    positions = list(range(len(section_indices)))
    if date_times and all(d is not None for d in date_times):
        return sorted(positions, key=lambda i: (date_times[i], section_indices[i]))
    return sorted(positions, key=lambda i: section_indices[i])


def dose_symmetric_order(tilt_angles_deg: Sequence[float]) -> list[int]:
    """Positions sorted by increasing |tilt| (positive first on ties): a dose-symmetric scheme from 0°."""
    return sorted(range(len(tilt_angles_deg)), key=lambda i: (round(abs(tilt_angles_deg[i]), 2), -tilt_angles_deg[i]))


def pre_exposures(
    records: Sequence[DoseRecord],
    order: Sequence[int],
    *,
    dose_per_tilt_e_per_angstrom2: float | None,
    source: Path,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-tilt dose and pre-exposure (e/Å²), indexed like ``records``.

    Raises
    ------
    InputError
        When neither the user nor the source gives any dose.
    """
    n = len(records)
    rank = np.empty(n, dtype=int)
    rank[list(order)] = np.arange(n)
    if dose_per_tilt_e_per_angstrom2 is not None:
        dose = np.full(n, float(dose_per_tilt_e_per_angstrom2))
        return dose, rank * float(dose_per_tilt_e_per_angstrom2)
    exposure = np.array([r.exposure_dose_e_per_angstrom2 or 0.0 for r in records])
    priors = [r.prior_record_dose_e_per_angstrom2 for r in records]
    if all(p is not None for p in priors) and any(p for p in priors):
        return exposure, np.array(priors, dtype=float)
    if np.all(exposure > 0):
        ordered = exposure[list(order)]
        before = np.concatenate([[0.0], np.cumsum(ordered)[:-1]])
        result = np.empty(n)
        result[list(order)] = before
        return exposure, result
    raise InputError(
        source,
        f"gives no usable dose: ExposureDose is 0 or missing for {int(np.sum(exposure <= 0))} of {n} tilts and "
        "there is no PriorRecordDose.",
        "pass --dose-per-tilt-e-per-angstrom2 with the dose of one tilt in e/Å².",
    )
