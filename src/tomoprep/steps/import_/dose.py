"""Acquisition order and pre-exposure dose of the tilts of a series.

Pre-exposure is the dose a tilt's area received *before* it was recorded: 0 for the first tilt. It is
(in order of preference) the user's dose per tilt times the number of tilts recorded before; SerialEM's
``PriorRecordDose``; or the running sum of the earlier tilts' ``ExposureDose``. RELION's mdoc path takes the
inclusive running sum (the first tilt gets its own dose as pre-exposure); here the sum is exclusive.

When none of these is there (a stack without mdoc, an mdoc whose ``ExposureDose`` is 0), the dose is unknown:
the series is imported with a warning and ``None`` doses, since alignment and cleaning need none. A step that
needs the dose calls :func:`require_dose`, which names the option that gives it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from tomoprep.errors import InputError
from tomoprep.model import TiltSeries

#: The import option that gives the dose of every tilt.
DOSE_OPTION = "--dose-per-tilt-e-per-angstrom2"


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


@dataclass(frozen=True)
class Doses:
    """Dose and pre-exposure of each tilt (e/Å²), ``None`` where unknown, and why they are unknown."""

    dose_e_per_angstrom2: tuple[float | None, ...]
    pre_exposure_e_per_angstrom2: tuple[float | None, ...]
    warning: str | None = None


def pre_exposures(
    records: Sequence[DoseRecord],
    order: Sequence[int],
    *,
    dose_per_tilt_e_per_angstrom2: float | None,
    source: Path,
) -> Doses:
    """Per-tilt dose and pre-exposure (e/Å²), indexed like ``records``; unknown (with a warning that says why
    and names :data:`DOSE_OPTION`) when neither the user nor the source gives a usable dose."""
    n = len(records)
    rank = np.empty(n, dtype=int)
    rank[list(order)] = np.arange(n)
    if dose_per_tilt_e_per_angstrom2 is not None:
        dose = float(dose_per_tilt_e_per_angstrom2)
        return Doses((dose,) * n, tuple(float(r) * dose for r in rank))
    exposure = np.array([r.exposure_dose_e_per_angstrom2 or 0.0 for r in records])
    priors = [r.prior_record_dose_e_per_angstrom2 for r in records]
    _check_finite(exposure, priors, source)
    if all(p is not None for p in priors) and any(p for p in priors):
        return Doses(tuple(float(e) for e in exposure), tuple(float(p) for p in priors))  # type: ignore[arg-type]
    if np.all(exposure > 0):
        ordered = exposure[list(order)]
        before = np.concatenate([[0.0], np.cumsum(ordered)[:-1]])
        result = np.empty(n)
        result[list(order)] = before
        return Doses(tuple(float(e) for e in exposure), tuple(float(b) for b in result))
    if all(r.exposure_dose_e_per_angstrom2 is None and r.prior_record_dose_e_per_angstrom2 is None for r in records):
        reason = "records no dose"
    else:
        missing = int(np.sum(exposure <= 0))
        reason = f"gives no usable dose (ExposureDose is 0 or missing for {missing} of {n} tilts, no PriorRecordDose)"
    warning = (
        f"{source.name} {reason}: the dose is recorded as unknown. Alignment and cleaning need none; dose "
        f"weighting, dose filtering and the RELION export do: re-import with {DOSE_OPTION} D (e/Å² per tilt)."
    )
    return Doses((None,) * n, (None,) * n, warning)


def _check_finite(exposure: np.ndarray, priors: Sequence[float | None], source: Path) -> None:
    """Refuse a dose that is not a number (``inf``) or negative: it would make every pre-exposure wrong."""
    for label, values in (("ExposureDose", list(exposure)), ("PriorRecordDose", priors)):
        bad = [(k, v) for k, v in enumerate(values) if v is not None and not (math.isfinite(v) and v >= 0)]
        if bad:
            k, value = bad[0]
            raise InputError(
                source,
                f"{label} = {value:g} e/Å² (tilt {k} in stack order) is not a dose.",
                f"correct the mdoc, or pass {DOSE_OPTION} D (the dose of one tilt in e/Å²).",
            )


def require_dose(ts: TiltSeries, *, needed_for: str, alternative: str = "") -> None:
    """Raise :class:`InputError` when a tilt of ``ts`` (not excluded) has no known dose.

    Parameters
    ----------
    ts
        The tilt series.
    needed_for
        What needs the dose, for the message (``"dose weighting"``).
    alternative
        Another way out the step offers (``"or run motioncorr with --no-dose-weighting"``), or ``""``.
    """
    if ts.dose_known:
        return
    records = [t.acquisition for t in ts.included_tilts]
    unknown = sum(a.dose_e_per_angstrom2 is None or a.pre_exposure_e_per_angstrom2 is None for a in records)
    fix = f"re-import it with {DOSE_OPTION} D (the dose of one tilt in e/Å²)"
    raise InputError(
        ts.sources[0] if ts.sources else None,
        f"tilt series {ts.name}: {needed_for} needs the dose, which is unknown for {unknown} of its "
        f"{len(ts.included_tilts)} tilts (the import found none).",
        f"{fix}{', ' + alternative if alternative else ''}.",
    )
