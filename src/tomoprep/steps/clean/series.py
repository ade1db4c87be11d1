"""The stack-cleaning step: bad tilts are flagged excluded, with the reason, in the tilt-series STAR.

Nothing is deleted or rewritten: an excluded tilt keeps its row, ``tpExcluded`` 1 and ``tpExclusionReason``
(``auto: dark: mean 0.11 of the expected``, ``manual``), and later steps skip it. Tilts excluded before
(import found the movie unreadable) stay excluded and are not measured. A cleaning of a cleaning starts again
from the tilts the earlier one excluded automatically, keeps those it excluded by hand, and re-includes those
``--include`` names. The tests are in :mod:`tomoprep.algorithms.tilt_quality`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tomoprep.algorithms.tilt_quality import TiltQuality, measure_tilt_quality
from tomoprep.errors import InputError
from tomoprep.io.star import write_star
from tomoprep.model import TiltExclusion, TiltImage, TiltSeries
from tomoprep.steps.base import WARNING_PREFIX, Unit, UnitOutput
from tomoprep.steps.clean.manual import (
    AUTO_PREFIX,
    MANUAL_REASON,
    check_inclusions,
    check_tilt_sets,
    merged,
    parse_tilt_list,
    read_exclusion_file,
)
from tomoprep.steps.clean.params import CleanParams
from tomoprep.steps.clean.plots import write_clean_plot
from tomoprep.steps.device import device_for
from tomoprep.steps.tilt_images import TiltStack, has_image, read_tilt_stack

#: Fewer measurable tilts than this and the automatic tests are not run (no neighbours to compare with).
MIN_TILTS_TO_JUDGE = 5


@dataclass(frozen=True)
class CleanPayload:
    """One tilt series and the acquisition indices excluded and included by hand."""

    tilt_series: TiltSeries
    exclude: frozenset[int] = frozenset()
    include: frozenset[int] = frozenset()


def plan_clean(params: CleanParams, inputs: Sequence[TiltSeries]) -> list[Unit]:
    """One unit per tilt series, with its manual exclusions and inclusions checked against the input."""
    exclude = parse_tilt_list(params.exclude, option="--exclude")
    check_tilt_sets(exclude, inputs, option="--exclude")
    if params.exclusion_file is not None:
        from_file = read_exclusion_file(params.exclusion_file)
        check_tilt_sets(from_file, inputs, option=f"--exclusion-file {params.exclusion_file}")
        exclude = merged(exclude, from_file)
    include = parse_tilt_list(params.include, option="--include")
    check_tilt_sets(include, inputs, option="--include")
    check_inclusions(include, exclude, inputs)
    return [
        Unit(ts.name, CleanPayload(ts, frozenset(exclude.get(ts.name, ())), frozenset(include.get(ts.name, ()))))
        for ts in inputs
    ]


def _starting_tilt(tilt: TiltImage, payload: CleanPayload, params: CleanParams) -> TiltImage:
    """A tilt as this cleaning starts from it: hand-made choices applied, earlier automatic ones undone."""
    if tilt.acquisition.acquisition_index in payload.exclude:
        return replace(tilt, exclusion=TiltExclusion(MANUAL_REASON))
    if tilt.acquisition.acquisition_index in payload.include:
        return replace(tilt, exclusion=None)
    if params.auto and tilt.exclusion is not None and tilt.exclusion.reason.startswith(AUTO_PREFIX):
        return replace(tilt, exclusion=None)
    return tilt


def _measure(stack: TiltStack, measured: list[int], params: CleanParams, *, axis_deg: float) -> TiltQuality:
    """The quality of the tilts at positions ``measured`` of ``stack`` (equal doses assumed where unknown)."""
    tilts = [stack.tilts[k] for k in measured]
    doses = [t.acquisition.dose_e_per_angstrom2 for t in tilts]
    return measure_tilt_quality(
        stack.images[measured],
        [t.acquisition.nominal_tilt_angle_deg for t in tilts],
        axis_deg=axis_deg,
        pixel_spacing_angstrom=stack.pixel_spacing_angstrom,
        doses_e_per_angstrom2=None if None in doses else doses,  # type: ignore[arg-type]
        thresholds=params.thresholds,
    )


def _level_notes(quality: TiltQuality, ts: TiltSeries) -> list[str]:
    """What the mean test could not use."""
    if not quality.absolute:
        return ["images are normalised (mean about 0): no mean test; darkness judged by dark area only"]
    if not ts.dose_known:
        return ["the dose is unknown: the mean test takes every tilt to have had the same dose"]
    return []


def _blank_exclusions(
    stack: TiltStack, with_image: Sequence[TiltImage], measured: list[int], keep: frozenset[int]
) -> dict[int, TiltImage]:
    """Tilts (by position in ``with_image``) whose image is not a picture: one value throughout (all 0: nothing
    recorded), or values that are not numbers. They are excluded before the tests, which would take them for
    dark or shifted tilts and would compare their neighbours with them."""
    out = {}
    for k in measured:
        image = stack.images[k]
        finite = torch.isfinite(image)
        if not bool(finite.all()):
            count = int((~finite).sum())
            why = f"not finite: {count} of {image.numel()} pixels of the image are nan or inf"
        else:
            low, high = float(image.min()), float(image.max())
            if high - low > 1e-6 * max(abs(low), abs(high), 1e-30):
                continue
            why = f"blank: every pixel is {low:g} (no image was recorded)"
        if with_image[k].acquisition.acquisition_index not in keep:
            out[k] = replace(with_image[k], exclusion=TiltExclusion(f"{AUTO_PREFIX} {why}"))
    return out


def _auto_exclusions(tilts: Sequence[TiltImage], quality: TiltQuality, keep: frozenset[int]) -> list[TiltImage]:
    """The measured ``tilts`` that are bad, excluded with their reasons (``keep``: acquisition indices spared)."""
    return [
        replace(tilt, exclusion=TiltExclusion(f"{AUTO_PREFIX} {'; '.join(reasons)}"))
        for tilt, reasons in zip(tilts, quality.reasons, strict=True)
        if reasons and tilt.acquisition.acquisition_index not in keep
    ]


def clean_series(payload: CleanPayload, params: CleanParams, output_dir: Path) -> UnitOutput:
    """Clean one tilt series: apply the hand-made choices, measure the rest, exclude the bad (module notes)."""
    ts = payload.tilt_series
    tilts = {t.acquisition.acquisition_index: _starting_tilt(t, payload, params) for t in ts.tilts}
    with_image = [t for t in sorted(tilts.values(), key=lambda t: t.acquisition.nominal_tilt_angle_deg) if has_image(t)]
    if params.auto and not with_image:
        raise InputError(
            ts.sources[0] if ts.sources else None,
            f"tilt series {ts.name} has no tilt images to measure.",
            "run motion correction first (tomoprep motioncorr), or exclude by hand with --no-auto.",
        )
    measured = [k for k, t in enumerate(with_image) if not t.excluded]
    blind = sum(not t.excluded and not has_image(t) for t in tilts.values())
    notes = [f"{blind} included tilts have no image: not measured"] if blind else []
    stack = read_tilt_stack(ts, with_image, target_size_px=params.working_size_px,
                            device=device_for(params.device)) if with_image else None  # fmt: skip
    quality, n_judged = None, len(measured)
    if params.auto and stack is not None:
        blank = _blank_exclusions(stack, with_image, measured, payload.include)
        tilts.update({t.acquisition.acquisition_index: t for t in blank.values()})
        measured = [k for k in measured if k not in blank]
    if params.auto and stack is not None and len(measured) >= MIN_TILTS_TO_JUDGE:
        quality = _measure(stack, measured, params, axis_deg=ts.nominal_tilt_axis_angle_deg)
        bad = _auto_exclusions([with_image[k] for k in measured], quality, payload.include)
        tilts.update({t.acquisition.acquisition_index: t for t in bad})
        notes += _unsure_shift_notes(quality) + _level_notes(quality, ts)
    elif params.auto:
        notes.append(f"{len(measured)} tilts to measure: too few to judge (at least {MIN_TILTS_TO_JUDGE})")
    result = ts.with_tilts(tuple(tilts[t.acquisition.acquisition_index] for t in ts.tilts))
    if stack is not None:
        path = output_dir / f"{ts.name}_clean.png"
        write_clean_plot(result, stack, quality, measured, path, thresholds=params.thresholds)
        if quality is not None:
            _write_quality_table(stack, quality, measured, output_dir / f"{ts.name}_quality.star")
        if params.auto:
            _check_share_excluded(ts, result, n_judged, params, output_dir)
    return UnitOutput(result, tuple(notes + _exclusion_notes(ts, result)))


#: Options that set the threshold of each kind of automatic exclusion.
THRESHOLD_OPTIONS = {"shifted": "--shift-fraction", "dark": "--dark-ratio / --dark-area-fraction",
                     "blurred": "--blur-ratio / --blur-z-score"}  # fmt: skip


def _unsure_shift_notes(quality: TiltQuality) -> list[str]:
    """A warning when tilts seemed far from their neighbours but the correlations that said so disagree."""
    unsure = np.flatnonzero(quality.shift_unsure)
    if unsure.size == 0:
        return []
    return [
        f"{WARNING_PREFIX} {unsure.size} tilts seemed displaced from their neighbours by more than "
        f"{100 * quality.shift_limit_fraction:g} % of the field, but the correlations that say so disagree "
        "(tpShiftClosureFractionOfField in the quality table) or the series' median tilt is displaced about as far "
        f"({100 * quality.shift_typical_fraction:.0f} %): not excluded as shifted; check the _clean.png and "
        "exclude by hand (--exclude) where a tilt did jump"
    ]


def _check_share_excluded(
    ts: TiltSeries, result: TiltSeries, n_measured: int, params: CleanParams, output_dir: Path
) -> None:
    """Fail the series when the automatic tests exclude more than ``max_excluded_fraction`` of its measured tilts:
    a series that bad is rarer than a measure misled, and either must not pass as a success."""
    auto = [t for t in result.tilts if t.exclusion is not None and t.exclusion.reason.startswith(AUTO_PREFIX)]
    reasons = [t.exclusion.reason for t in auto if t.exclusion is not None]
    if len(auto) <= params.max_excluded_fraction * n_measured:
        return
    kinds: dict[str, int] = {}
    for reason in reasons:
        kind = reason.removeprefix(AUTO_PREFIX).strip().split(":")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    why = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
    first = auto[0]
    options = " or ".join(THRESHOLD_OPTIONS.get(kind, kind) for kind in kinds)
    raise InputError(
        ts.sources[0] if ts.sources else None,
        f"the automatic tests would exclude {len(auto)} of the {n_measured} measured tilts of {ts.name} ({why}; "
        f"tilt {first.acquisition.acquisition_index}: {reasons[0]}), more than "
        f"{100 * params.max_excluded_fraction:.0f} % of the series.",
        f"look at {output_dir / f'{ts.name}_clean.png'}; if those tilts are bad, rerun with "
        f"--max-excluded-fraction 1; if not, raise {options}, or clean with --no-auto and exclude tilts by hand "
        "(--exclude).",
    )


def _write_quality_table(stack: TiltStack, quality: TiltQuality, measured: list[int], path: Path) -> None:
    """The measures of every measured tilt, by acquisition index (``cat`` explains a cleaning)."""
    tilts = [stack.tilts[k] for k in measured]
    table = pd.DataFrame(
        {
            "tpAcquisitionIndex": [t.acquisition.acquisition_index for t in tilts],
            "rlnTomoNominalStageTiltAngle": [t.acquisition.nominal_tilt_angle_deg for t in tilts],
            "tpShiftFractionOfField": quality.shift_fraction,
            "tpShiftClosureFractionOfField": quality.shift_closure_fraction,
            "tpMeanRatio": quality.mean_ratio,
            "tpDarkAreaFraction": quality.dark_fraction,
            "tpSharpness": quality.sharpness,
            "tpSharpnessRatio": quality.sharpness_ratio,
            "tpSharpnessZScore": quality.sharpness_z,
            "tpBad": quality.bad.astype(int),
        }
    )
    write_star(path, {"quality": table})


def _exclusion_notes(before: TiltSeries, after: TiltSeries) -> list[str]:
    """One note per tilt whose exclusion changed, and a count."""
    notes = []
    for old, new in zip(before.tilts, after.tilts, strict=True):
        if old.exclusion != new.exclusion:
            state = "included again" if new.exclusion is None else f"excluded ({new.exclusion.reason})"
            acquisition = new.acquisition
            notes.append(f"tilt {acquisition.acquisition_index} ({acquisition.nominal_tilt_angle_deg:+.1f}°): {state}")
    excluded = after.n_tilts - len(after.included_tilts)
    return [*notes, f"{excluded} of {after.n_tilts} tilts excluded"]
