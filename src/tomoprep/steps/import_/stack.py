"""Import of tilt stacks (MRC) with their tilt angles: one unit per stack; later steps skip motion correction."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomoprep.conventions import normalise_angle_deg
from tomoprep.errors import InputError
from tomoprep.io.imod import read_tilt_angles
from tomoprep.io.mdoc import MAX_TILT_ANGLE_DEG, MdocSeries, axis_disagreement, read_mdoc
from tomoprep.io.mrc import MrcHeader, check_mrc_complete, read_mrc, read_mrc_header
from tomoprep.model import Optics, TiltAcquisition, TiltExclusion, TiltImage, TiltSeries
from tomoprep.steps.base import Unit, UnitOutput
from tomoprep.steps.import_.dose import DoseRecord, Doses, acquisition_order, dose_symmetric_order, pre_exposures
from tomoprep.steps.import_.movies import DEFAULT_VOLTAGE_KV, expand_glob
from tomoprep.steps.import_.params import ImportParams

STACK_SUFFIXES = (".st", ".mrc", ".mrcs", ".ali")
#: Relative difference above which two sources of a pixel spacing, or a tilt angle file and the extended
#: header, are said to disagree.
SPACING_TOLERANCE = 0.02
TILT_TOLERANCE_DEG = 0.5


@dataclass(frozen=True)
class StackPayload:
    """One stack to import and the files that describe it."""

    stack: Path
    tilt_angles: Path | None
    mdoc: Path | None


def _beside(stack: Path, suffixes: tuple[str, ...]) -> Path | None:
    bases = [stack.with_suffix(""), stack]
    for base in bases:
        for suffix in suffixes:
            candidate = base.parent / (base.name + suffix)
            if candidate.is_file():
                return candidate
    return None


def plan_stack_import(params: ImportParams) -> list[Unit]:
    """One unit per stack; each finds its own .rawtlt/.tlt/.mdoc unless given."""
    if params.stack is None:
        raise InputError(None, "no --stack given.", "pass --stack.")
    stacks = expand_glob(params.stack, what="tilt stacks")
    units = []
    for stack in stacks:
        angles = params.tilt_angles.resolve() if params.tilt_angles else _beside(stack, (".rawtlt", ".tlt"))
        mdoc = Path(params.mdoc).resolve() if params.mdoc else _beside(stack, (".mdoc",))
        units.append(Unit(name=stack.stem, payload=StackPayload(stack, angles, mdoc)))
    return units


def _tilt_angles(payload: StackPayload, header: MrcHeader, mdoc: MdocSeries | None) -> np.ndarray:
    n = header.shape[0] if len(header.shape) == 3 else 1
    if payload.tilt_angles is not None:
        angles, source = read_tilt_angles(payload.tilt_angles), payload.tilt_angles
    elif mdoc is not None:
        angles, source = np.array([t.tilt_angle_deg for t in mdoc.tilts]), mdoc.sources[0]
    elif header.sections and all(s.tilt_angle_deg is not None for s in header.sections):
        angles, source = np.array([s.tilt_angle_deg for s in header.sections], dtype=float), payload.stack
    else:
        raise InputError(
            payload.stack,
            "has no tilt angles: no .rawtlt/.tlt/.mdoc beside it and none in its header.",
            "pass --tilt-angles FILE.rawtlt.",
        )
    if len(angles) != n:
        raise InputError(
            source,
            f"lists {len(angles)} tilt angles but the stack {payload.stack.name} has {n} sections.",
            "give the tilt-angle file that belongs to this stack.",
        )
    angles = np.asarray(angles, dtype=float)
    bad = [k for k, a in enumerate(angles) if not -MAX_TILT_ANGLE_DEG <= a <= MAX_TILT_ANGLE_DEG]  # NaN too
    if bad:
        raise InputError(
            source,
            f"tilt angle {angles[bad[0]]:g}° (section {bad[0]} of {payload.stack.name}) is not a number within "
            f"±{MAX_TILT_ANGLE_DEG:g}°.",
            "correct the tilt-angle file, or pass --tilt-angles with the right one.",
        )
    return angles


def _extended_header_spacing(header: MrcHeader) -> float | None:
    """The pixel spacing the extended header gives every section (Å), ``None`` when it gives none or several."""
    values = {s.pixel_spacing_angstrom for s in header.sections if s.pixel_spacing_angstrom is not None}
    if len(values) == 1 or (values and max(values) - min(values) <= SPACING_TOLERANCE * min(values)):
        return float(np.median(sorted(values)))
    return None


def _pixel_spacing(
    payload: StackPayload, header: MrcHeader, mdoc: MdocSeries | None, params: ImportParams
) -> tuple[float, list[str]]:
    """Pixel spacing (Å): given, else the main header's, the extended header's or the mdoc's; and warnings."""
    if params.pixel_spacing_angstrom is not None:
        return params.pixel_spacing_angstrom, []
    spacing, notes = _spacing_from_files(payload, header, mdoc)
    if not (math.isfinite(spacing) and spacing > 0):
        raise InputError(
            payload.stack,
            f"pixel spacing {spacing:g} Å (from its headers or mdoc) is not a positive number.",
            "pass --pixel-spacing-angstrom with the spacing of the stack in Å.",
        )
    return spacing, notes


def _spacing_from_files(payload: StackPayload, header: MrcHeader, mdoc: MdocSeries | None) -> tuple[float, list[str]]:
    own = header.pixel_spacing_angstrom
    main = float(own) if own is not None and own not in (0.0, 1.0) else None  # 1: cell = grid, i.e. never set
    extended = _extended_header_spacing(header)
    from_mdoc = float(mdoc.pixel_spacing_angstrom) if mdoc is not None and mdoc.pixel_spacing_angstrom else None
    if main is not None:
        if extended is not None and abs(extended - main) > SPACING_TOLERANCE * main:
            return main, [
                f"WARNING: {payload.stack.name}: the main header's pixel spacing {main:.4g} Å and the extended "
                f"header's {extended:.4g} Å differ; using the main header's (set --pixel-spacing-angstrom otherwise)"
            ]
        return main, []
    for value, where in ((extended, "extended header"), (from_mdoc, "mdoc")):
        if value is not None:
            return value, [
                f"WARNING: {payload.stack.name}: its main header leaves the pixel spacing unset ({own!r}); "
                f"using {value:.4g} Å from the {where} (set --pixel-spacing-angstrom otherwise)"
            ]
    raise InputError(
        payload.stack,
        f"gives no pixel spacing: the main header leaves it unset ({own!r}), and neither an extended header nor an "
        "mdoc gives one.",
        "pass --pixel-spacing-angstrom with the spacing of the stack in Å.",
    )


def _axis(payload: StackPayload, mdoc: MdocSeries | None, params: ImportParams) -> float:
    if params.tilt_axis_angle_deg is not None:
        return normalise_angle_deg(params.tilt_axis_angle_deg)
    if mdoc is not None and mdoc.tilt_axis_angle_deg is not None:
        return mdoc.tilt_axis_angle_deg
    raise InputError(
        payload.stack,
        "no tilt-axis angle is known for this stack.",
        "pass --tilt-axis-angle-deg (counter-clockwise from the image Y axis).",
    )


def _order_and_doses(
    payload: StackPayload, angles: np.ndarray, mdoc: MdocSeries | None, params: ImportParams
) -> tuple[list[int], Doses]:
    if mdoc is not None:
        order = acquisition_order([t.section_index for t in mdoc.tilts], [t.date_time for t in mdoc.tilts])
        records = [
            DoseRecord(t.exposure_dose_e_per_angstrom2, t.prior_record_dose_e_per_angstrom2, t.date_time)
            for t in mdoc.tilts
        ]
    else:
        order = (
            list(range(len(angles)))
            if params.stack_acquisition_order == "listed"
            else dose_symmetric_order(list(angles))
        )
        records = [DoseRecord(None, None, None)] * len(angles)
    source = mdoc.sources[0] if mdoc is not None else payload.stack
    doses = pre_exposures(
        records, order, dose_per_tilt_e_per_angstrom2=params.dose_per_tilt_e_per_angstrom2, source=source
    )
    return order, doses


def _header_notes(payload: StackPayload, header: MrcHeader, angles: np.ndarray) -> list[str]:
    """Warnings about the stack's header: what an old-style header lacks, tilt angles that disagree."""
    notes = []
    if header.irregularities:
        notes.append(f"WARNING: {payload.stack.name}: read leniently: {'; '.join(header.irregularities)}")
    own = [s.tilt_angle_deg for s in header.sections]
    if payload.tilt_angles is not None and own and all(a is not None for a in own):
        worst = float(np.max(np.abs(np.asarray(own, dtype=float) - angles)))
        if worst > TILT_TOLERANCE_DEG:
            notes.append(
                f"WARNING: {payload.tilt_angles.name} and the extended header of {payload.stack.name} disagree on "
                f"the tilt angles by up to {worst:.2f}°; using {payload.tilt_angles.name}"
            )
    return notes


def _nonfinite_sections(stack: Path, header: MrcHeader) -> dict[int, str]:
    """The reason to exclude each section of a floating-point stack that holds values that are not numbers
    (``nan``, ``inf``): one would spread through every Fourier transform of the series. A stack is not
    rewritten, so such a section is excluded, not repaired. Integer stacks are always finite."""
    if np.dtype(header.dtype).kind != "f":
        return {}
    n = header.shape[0] if len(header.shape) == 3 else 1
    reasons = {}
    for k in range(n):  # one section at a time: a stack may not fit in memory
        section = read_mrc(stack, sections=[k]) if len(header.shape) == 3 else read_mrc(stack)
        finite = np.isfinite(section)
        if not finite.all():
            reasons[k] = (
                f"import: non-finite values in section {k} of {stack.name} ({int(finite.size - finite.sum())} of "
                f"{finite.size} pixels nan or inf)"
            )
    return reasons


def _nominal_defocus(mdoc: MdocSeries | None, index: int) -> float | None:
    return None if mdoc is None else mdoc.tilts[index].target_defocus_angstrom


def import_stack(payload: StackPayload, params: ImportParams, output_dir: Path) -> UnitOutput:
    """Build the tilt series of one stack: section k of the stack is tilt k."""
    header = read_mrc_header(payload.stack)
    check_mrc_complete(payload.stack)
    mdoc = read_mdoc(payload.mdoc, flavour=params.mdoc_flavour) if payload.mdoc is not None else None
    angles = _tilt_angles(payload, header, mdoc)
    spacing, spacing_notes = _pixel_spacing(payload, header, mdoc, params)
    axis = _axis(payload, mdoc, params)
    order, doses = _order_and_doses(payload, angles, mdoc, params)
    rank = {position: k for k, position in enumerate(order)}
    voltage = params.voltage_kv or (mdoc.voltage_kv if mdoc else None) or DEFAULT_VOLTAGE_KV
    defocus = [_nominal_defocus(mdoc, i) for i in range(len(angles))]
    spoilt = _nonfinite_sections(payload.stack, header)
    tilts = tuple(
        TiltImage(
            TiltAcquisition(
                acquisition_index=rank[k],
                section_index=k,
                nominal_tilt_angle_deg=float(angles[k]),
                pre_exposure_e_per_angstrom2=doses.pre_exposure_e_per_angstrom2[k],
                dose_e_per_angstrom2=doses.dose_e_per_angstrom2[k],
                nominal_defocus_angstrom=defocus[k],
                stack_path=payload.stack,
            ),
            exclusion=TiltExclusion(spoilt[k]) if k in spoilt else None,
        )
        for k in range(len(angles))
    )
    ts = TiltSeries(
        name=payload.stack.stem,
        original_pixel_spacing_angstrom=spacing,
        optics=Optics(voltage, params.cs_mm, params.amplitude_contrast, params.optics_group_name),
        tilts=tilts,
        nominal_tilt_axis_angle_deg=axis,
        hand=params.tomo_hand,
        tilt_series_pixel_spacing_angstrom=spacing,
        sources=tuple(p for p in (payload.stack, payload.tilt_angles, payload.mdoc) if p is not None),
    )
    warnings = _header_notes(payload, header, angles) + spacing_notes
    warnings += [f"WARNING: section {k} ({angles[k]:.1f}°) excluded: {reason}" for k, reason in spoilt.items()]
    if doses.warning is not None:
        warnings.append(f"WARNING: {doses.warning}")
    if mdoc is not None and params.tilt_axis_angle_deg is None and (disagreement := axis_disagreement(mdoc)):
        warnings.append(f"WARNING: {disagreement}")
    notes = (*warnings, f"{len(tilts)} sections, pixel spacing {spacing:.4g} Å, tilt axis {axis:.2f}°")
    return UnitOutput(ts, notes)
