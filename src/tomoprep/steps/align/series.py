"""The alignment step: marker-free tilt-series alignment, or an alignment brought from IMOD or AreTomo."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from tomoprep.algorithms.defocus_gradient import HandEvidence, hand_evidence, hand_unmeasurable_reason
from tomoprep.algorithms.patch_tracking import track_patches
from tomoprep.algorithms.series_alignment import AlignmentOptions, SeriesAlignment, align_series
from tomoprep.conventions import normalise_angle_deg
from tomoprep.errors import InputError
from tomoprep.io.axis_scores import AxisScores, write_axis_scores
from tomoprep.io.local_alignment import LocalAlignment, write_local_alignment
from tomoprep.io.mrc import write_mrc
from tomoprep.model import TiltAlignment, TiltImage, TiltSeries
from tomoprep.steps.align.files import read_alignment_files, write_alignment_files
from tomoprep.steps.align.params import AlignParams
from tomoprep.steps.align.plots import write_alignment_plot
from tomoprep.steps.base import UnitOutput
from tomoprep.steps.device import device_for
from tomoprep.steps.tilt_images import TiltStack, has_image, read_tilt_image, read_tilt_stack, rebin


def _aligned_series(ts: TiltSeries, result: SeriesAlignment, tilts: Sequence[TiltImage], spacing: float, *,
                    matched: bool) -> TiltSeries:  # fmt: skip
    """``ts`` with every aligned tilt's pose (shifts converted to Å), its last projection-matching score and
    correction where a matching pass ran (``matched``), and the slab's thickness."""
    poses = {}
    scores = result.matching.scores.numpy()
    corrections = result.matching.corrections_px.norm(dim=1).numpy() * spacing
    for k, tilt in enumerate(tilts):
        shift = result.shifts_px[k] * spacing
        poses[tilt.acquisition.acquisition_index] = TiltAlignment(
            y_tilt_deg=float(result.tilts_deg[k]),
            z_rot_deg=float(result.axis_deg),
            shift_x_angstrom=float(shift[0]),
            shift_y_angstrom=float(shift[1]),
            match_score=float(scores[k]) if matched else None,
            match_correction_angstrom=float(corrections[k]) if matched else None,
        )
    updated = tuple(replace(t, alignment=poses.get(t.acquisition.acquisition_index)) for t in ts.tilts)
    thickness = result.slab.thickness * spacing if result.slab_found else None
    return replace(ts, tilts=updated, specimen_thickness_angstrom=thickness)


def _track_patches(ts: TiltSeries, stack: TiltStack, result: SeriesAlignment, tilts: Sequence[TiltImage],
                   params: AlignParams, output_dir: Path) -> tuple[TiltSeries, np.ndarray, str]:  # fmt: skip
    """Patch-track the aligned series; write ``<name>_local.star``; the series with it and the per-tilt RMS (Å)."""
    spacing = stack.pixel_spacing_angstrom
    tracks = track_patches(stack.images.cpu(), result.tilts_deg.tolist(), axis_deg=result.axis_deg,
                           shifts_px=torch.from_numpy(result.shifts_px), nz=result.matching_depth_px,
                           n_patches=(params.patches, params.patches))  # fmt: skip
    path = output_dir / f"{ts.name}_local.star"
    write_local_alignment(
        path,
        LocalAlignment(
            acquisition_indices=np.array([t.acquisition.acquisition_index for t in tilts]),
            tilts_deg=np.array([t.acquisition.nominal_tilt_angle_deg for t in tilts]),
            patches_angstrom=tracks.grid_xyz_px * spacing,
            shifts_angstrom=tracks.local_shifts_px * spacing,
            scores=tracks.scores,
            measured=tracks.good,
        ),
    )
    rms = tracks.residual_rms_px() * spacing
    by_tilt = {t.acquisition.acquisition_index: float(r) for t, r in zip(tilts, rms, strict=True) if np.isfinite(r)}
    updated = tuple(
        t if t.alignment is None else replace(t, alignment=replace(t.alignment, local_shift_rms_angstrom=r))
        for t, r in ((t, by_tilt.get(t.acquisition.acquisition_index)) for t in ts.tilts)
    )
    worst = int(np.nanargmax(rms))
    overall = float(np.sqrt(np.nanmean(rms**2)))
    size = tracks.patch_size_px * spacing
    note = (f"patch tracking: {len(tracks.grid_xyz_px)} patches of {size:.0f} Å, local shifts {overall:.1f} Å RMS, "
            f"largest {rms[worst]:.1f} Å at {tilts[worst].acquisition.nominal_tilt_angle_deg:+.1f}°")  # fmt: skip
    return replace(ts, tilts=updated, local_alignment_path=path), rms, note


def _write_axis_scores(ts: TiltSeries, result: SeriesAlignment, output_dir: Path) -> TiltSeries:
    """Write ``<name>_axis_scores.star`` with the axis searches' curves (common lines, then the final
    cross-prediction); ``ts`` naming it, or ``ts`` as it is where the axis was not searched."""
    searches = [AxisScores(method, np.asarray(found.angles_deg), np.asarray(found.scores), float(found.best_deg))
                for method, found in (("common_lines", result.common_lines), ("cross_prediction", result.axis_search))
                if found is not None]  # fmt: skip
    if not searches:
        return ts
    path = output_dir / f"{ts.name}_axis_scores.star"
    write_axis_scores(path, searches)
    return replace(ts, axis_scores_path=path)


#: Fewest tilts an alignment is made from.
MIN_TILTS = 3
#: Tilts nearer 0° than this (degrees) are too little tilted to show the defocus gradient that gives the hand.
MIN_HAND_TILT_DEG = 15.0


def _check_tilt_range(ts: TiltSeries, tilts: Sequence[TiltImage]) -> None:
    """Raise :class:`InputError` saying what is needed when the tilts cannot be aligned: too few, or none tilted
    enough for the defocus gradient."""
    angles = [t.acquisition.nominal_tilt_angle_deg for t in tilts]
    if len(angles) >= MIN_TILTS and max((abs(a) for a in angles), default=0.0) >= MIN_HAND_TILT_DEG:
        return
    shown = ", ".join(f"{a:g}" for a in angles[:8]) + (", ..." if len(angles) > 8 else "")
    raise InputError(
        ts.sources[0] if ts.sources else None,
        f"tilt series {ts.name} has {len(angles)} tilts to align, at [{shown}]°; alignment needs at least "
        f"{MIN_TILTS}, some of them at |tilt| ≥ {MIN_HAND_TILT_DEG:g}° (their defocus gradient gives the hand).",
        "import the whole tilt series with its tilt angles (a stack's: --tilt-angles FILE.rawtlt), and check that "
        "its tilts are not excluded (tomoprep status).",
    )


def _hand_evidence(ts: TiltSeries, stack: TiltStack, axis_deg: float) -> HandEvidence:
    tilts = stack.tilts
    optics = ts.optics
    return hand_evidence(
        stack.images.cpu().numpy(),
        [t.acquisition.nominal_tilt_angle_deg for t in tilts],
        axis_deg=axis_deg,
        pixel_spacing_angstrom=stack.pixel_spacing_angstrom,
        voltage_kv=optics.voltage_kv,
        cs_mm=optics.spherical_aberration_mm,
        amplitude_contrast=optics.amplitude_contrast,
        min_abs_tilt_deg=MIN_HAND_TILT_DEG,
    )


def _decide_hand(ts: TiltSeries, stack: TiltStack, params: AlignParams, axis_deg: float) -> tuple:
    """The starting axis and the hand, from the defocus gradient and the policy; and a note saying why.

    Where the gradient cannot be measured (small images, coarse pixels) or its evidence is too weak (as on a
    stack without Thon rings), the hand is undetermined: the series' hand and the imported axis are kept.
    """
    kept = f"hand {ts.hand:+d} (imported) and the imported axis kept"
    tilts = [t.acquisition.nominal_tilt_angle_deg for t in stack.tilts]
    reason = hand_unmeasurable_reason((stack.images.shape[-2], stack.images.shape[-1]), tilts, axis_deg=axis_deg,
                                      pixel_spacing_angstrom=stack.pixel_spacing_angstrom)  # fmt: skip
    if reason:
        return axis_deg, ts.hand, f"defocus hand undetermined: {reason}; {kept}"
    evidence = _hand_evidence(ts, stack, axis_deg)
    measured = "+1" if evidence.hand > 0 else "-1"
    rings = f"Thon-ring fits {float(np.median(evidence.quality)):.2f} (median correlation)"
    said = f"defocus gradient: hand {measured} for axis {axis_deg:.1f}° (evidence {evidence.confidence:.1f}, {rings})"
    if evidence.confidence < params.min_hand_confidence or not np.isfinite(evidence.confidence):
        return axis_deg, ts.hand, f"{said}: too weak to decide, so the hand is undetermined; {kept}"
    if params.resolve_axis_by == "hand":
        if evidence.consistent_with(ts.hand):
            return axis_deg, ts.hand, f"{said}: agrees with the series' hand {ts.hand:+d}"
        flipped = normalise_angle_deg(axis_deg + 180.0)
        return flipped, ts.hand, f"{said}: disagrees with hand {ts.hand:+d}, so the axis is turned to {flipped:.1f}°"
    hand = 1 if evidence.hand > 0 else -1
    if hand != ts.hand:
        said += (f"; the series had hand {ts.hand:+d}: either the microscope's hand is {hand:+d} or the imported axis "
                 "is 180° off (then the tomogram is mirrored: re-run with --resolve-axis-by hand)")  # fmt: skip
    return axis_deg, hand, said


def align_tilt_series(ts: TiltSeries, params: AlignParams, output_dir: Path) -> UnitOutput:
    """Align one tilt series; write its IMOD/AreTomo files, a working-binning tomogram and a PNG."""
    tilts = [t for t in ts.tilts if not t.excluded and has_image(t)]
    if params.alignment_files is not None:
        result_ts = read_alignment_files(ts, params.alignment_files)
        shape = read_tilt_image(tilts[0]).shape
        write_alignment_files(result_ts, output_dir, image_size_px=(shape[1], shape[0]))
        return UnitOutput(result_ts, (f"alignment read from {params.alignment_files}",))
    _check_tilt_range(ts, tilts)
    # Read once, finely enough for the defocus gradient; the working stack is binned from it.
    fine = read_tilt_stack(ts, tilts, target_size_px=params.hand_size_px, device=device_for(params.device))
    stack = rebin(fine, target_size_px=params.working_size_px,
                  min_pixel_spacing_angstrom=params.min_working_pixel_spacing_angstrom)  # fmt: skip
    spacing = stack.pixel_spacing_angstrom
    options = AlignmentOptions(
        refine_axis=params.refine_axis,
        refine_tilt_offset=params.refine_tilt_offset,
        matching_iterations=params.matching_iterations,
        max_thickness_px=max(16, round(params.max_thickness_angstrom / spacing)),
        pixel_spacing_angstrom=spacing,
    )
    axis = ts.nominal_tilt_axis_angle_deg
    axis, hand, hand_note = _decide_hand(ts, fine, params, axis)
    del fine
    ts = replace(ts, hand=hand)
    doses = [t.acquisition.dose_e_per_angstrom2 for t in tilts]
    exposures = [float(d) for d in doses if d is not None] if all(d is not None for d in doses) else None
    result = align_series(stack.images.cpu(), [t.acquisition.nominal_tilt_angle_deg for t in tilts], axis_deg=axis,
                          options=options, exposures=exposures)  # fmt: skip
    # Matching ran unless it was asked for no pass and the axis was not refined (its refinement ends with one).
    matched = params.refine_axis or params.matching_iterations > 0
    aligned = _write_axis_scores(_aligned_series(ts, result, tilts, spacing, matched=matched), result, output_dir)
    local_rms = None
    if params.patch_tracking:
        aligned, local_rms, local_note = _track_patches(aligned, stack, result, tilts, params, output_dir)
    write_alignment_files(aligned, output_dir, image_size_px=(stack.source_shape_yx[1], stack.source_shape_yx[0]))
    volume = result.slices.permute(1, 0, 2).contiguous().numpy()
    write_mrc(output_dir / f"{ts.name}_align_bin{stack.binning:g}.mrc", volume, pixel_spacing_angstrom=spacing)
    title = f"{ts.name}: {len(tilts)} tilts at {spacing:.1f} Å/px"
    write_alignment_plot(result, title=title, pixel_spacing_angstrom=spacing, path=output_dir / f"{ts.name}_align.png",
                         local_rms_angstrom=local_rms)  # fmt: skip
    thickness = f"{result.slab.thickness * spacing:.0f} Å" if result.slab_found else "not found"
    notes = (
        hand_note,
        *result.notes,
        f"tilt axis {result.axis_deg:.2f}°, tilt offset {result.tilt_offset_deg:+.2f}°, "
        f"thickness {thickness}, working pixel {spacing:.2f} Å ({len(tilts)} tilts)",
    )
    if params.patch_tracking:
        notes = (*notes, local_note)
    return UnitOutput(aligned, notes)
