"""The CTF step's work on one tilt series: spectra, the series fit with the hand, records, files and the plot."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from tomoprep.algorithms.ctf_fit import FitSettings
from tomoprep.algorithms.ctf_series import SeriesCtf, SeriesSettings, fit_series
from tomoprep.algorithms.ctf_spectrum import Optics
from tomoprep.errors import InputError
from tomoprep.io.mrc import write_mrc
from tomoprep.model import CtfHand, TiltCtf, TiltImage, TiltSeries
from tomoprep.steps.base import WARNING_PREFIX, UnitOutput
from tomoprep.steps.ctf.files import series_from_file
from tomoprep.steps.ctf.params import CtfParams
from tomoprep.steps.ctf.plots import write_ctf_plot
from tomoprep.steps.ctf.sample import measure_sample
from tomoprep.steps.ctf.spectra import power_spectrum
from tomoprep.steps.device import device_for
from tomoprep.steps.tilt_images import has_image, read_tilt_stack

#: Searched where a tilt has no nominal defocus and no range is given (µm).
FALLBACK_RANGE_UM = (0.5, 8.0)
#: Lowest searched defocus around a nominal one (µm): the fit needs a few rings in the band.
MIN_SEARCH_UM = 0.3
MICROMETRE_IN_ANGSTROM = 1e4


def check_optics(ts: TiltSeries) -> None:
    """Raise :class:`InputError` naming the import option when the series' voltage or Cs is missing or wrong."""
    optics = ts.optics
    problems = []
    if not (math.isfinite(optics.voltage_kv) and optics.voltage_kv > 0):
        problems.append(("voltage", optics.voltage_kv, "--voltage-kv"))
    if not (math.isfinite(optics.spherical_aberration_mm) and optics.spherical_aberration_mm >= 0):
        problems.append(("spherical aberration (Cs)", optics.spherical_aberration_mm, "--cs-mm"))
    if not (math.isfinite(optics.amplitude_contrast) and 0 <= optics.amplitude_contrast < 1):
        problems.append(("amplitude contrast", optics.amplitude_contrast, "--amplitude-contrast"))
    if problems:
        said = ", ".join(f"{what} {value}" for what, value, _ in problems)
        options = " ".join(f"{option} VALUE" for _, _, option in problems)
        raise InputError(
            stack_source(ts),
            f"tilt series {ts.name} has no usable {said}: the CTF cannot be modelled without it.",
            f"import the series again giving the microscope's value: tomoprep import ... {options}.",
        )


def geometry(ts: TiltSeries, tilts: Sequence[TiltImage]) -> tuple[float, np.ndarray, str]:
    """Tilt-axis angle (degrees), tilt angles ``(n,)`` (degrees) and where they come from.

    When some tilts have a pose, the alignment's: its median axis (which may be the nominal one turned by 180°:
    the hand found is for this axis, as the alignment's hand is) and each tilt's refined tilt; a tilt without a
    pose (included again after the alignment) gets its nominal tilt plus the median offset of the others.
    Otherwise the nominal axis and tilts.
    """
    nominal = np.array([t.acquisition.nominal_tilt_angle_deg for t in tilts])
    aligned = [k for k, t in enumerate(tilts) if t.alignment is not None]
    if not aligned:
        return ts.nominal_tilt_axis_angle_deg, nominal, "the nominal axis and tilts (no alignment)"
    poses = [tilts[k].alignment for k in aligned]
    axis = float(np.median([p.z_rot_deg for p in poses]))  # type: ignore[union-attr]
    refined = np.array([p.y_tilt_deg for p in poses])  # type: ignore[union-attr]
    offset = float(np.median(refined - nominal[aligned]))
    tilts_deg = nominal + offset
    tilts_deg[aligned] = refined
    missing = len(tilts) - len(aligned)
    unposed = f"; {missing} tilts without a pose at nominal {offset:+.2f}°" if missing else ""
    return axis, tilts_deg, f"the alignment's axis and tilts{unposed}"


def defocus_ranges(tilts: Sequence[TiltImage], params: CtfParams) -> list[tuple[float, float]]:
    """Centre defocus searched per tilt (Å): the range given, else nominal ± window, else the fallback range."""
    if params.min_defocus_um is not None and params.max_defocus_um is not None:
        given = (params.min_defocus_um * MICROMETRE_IN_ANGSTROM, params.max_defocus_um * MICROMETRE_IN_ANGSTROM)
        return [given] * len(tilts)
    ranges = []
    for tilt in tilts:
        nominal = tilt.acquisition.nominal_defocus_angstrom
        if nominal is None or not math.isfinite(nominal) or nominal <= 0:
            low, high = FALLBACK_RANGE_UM
            ranges.append((low * MICROMETRE_IN_ANGSTROM, high * MICROMETRE_IN_ANGSTROM))
            continue
        window = params.nominal_window_um * MICROMETRE_IN_ANGSTROM
        ranges.append((max(nominal - window, MIN_SEARCH_UM * MICROMETRE_IN_ANGSTROM), nominal + window))
    return ranges


def _settings(params: CtfParams) -> SeriesSettings:
    band = (params.low_resolution_angstrom, params.high_resolution_angstrom)
    tilt = FitSettings(tile_px=params.tile_px, fit_phase_shift=params.fit_phase_shift, resolution_range_angstrom=band)
    return SeriesSettings(tilt=tilt, shared_astigmatism=params.shared_astigmatism,
                          min_abs_tilt_deg=params.min_hand_tilt_deg, hand_threshold=params.min_hand_confidence,
                          max_fit_resolution_angstrom=params.max_fit_resolution_angstrom,
                          min_ring_significance=params.min_ring_significance)  # fmt: skip


def _records(result: SeriesCtf, spectra_path: Path) -> list[TiltCtf]:
    records = []
    for section, (fit, flag) in enumerate(zip(result.fits, result.flags, strict=True)):
        records.append(TiltCtf(
            defocus_u_angstrom=fit.defocus_u_angstrom, defocus_v_angstrom=fit.defocus_v_angstrom,
            astigmatism_angle_deg=fit.astigmatism_angle_deg, phase_shift_deg=fit.phase_shift_deg,
            fit_resolution_angstrom=fit.fit_resolution_angstrom, figure_of_merit=fit.figure_of_merit, flag=flag,
            power_spectrum_path=spectra_path, power_spectrum_section=section,
        ))  # fmt: skip
    return records


def reconcile_hand(ts: TiltSeries, found: CtfHand, aligned: bool) -> tuple[TiltSeries, str]:
    """The series with the CTF's hand recorded, and a note. A decided hand becomes ``rlnTomoHand``; where the
    series was aligned with another hand, the note is a warning naming both (the alignment's 180° decision and
    the CTF's gradient then disagree, so one of them is wrong for this series)."""
    if found.hand is None:
        return replace(ts, ctf_hand=found), (f"defocus hand undetermined (confidence {found.confidence:.1f}); "
                                             f"hand {ts.hand:+d} kept")  # fmt: skip
    said = f"defocus hand {found.hand:+d} (confidence {found.confidence:.1f})"
    if found.hand == ts.hand:
        return replace(ts, ctf_hand=found), f"{said}, as the series' hand"
    if aligned:
        note = (f"{WARNING_PREFIX} {said} disagrees with the hand {ts.hand:+d} the alignment kept for its axis: "
                "either the axis is 180° off (the tomogram is mirrored: align again with --resolve-axis-by hand) or "
                "one of the two measurements is wrong; rlnTomoHand is set to the CTF's")  # fmt: skip
    else:
        note = f"{said}; the series had hand {ts.hand:+d} (imported), now {found.hand:+d}"
    return replace(ts, hand=found.hand, ctf_hand=found), note


def estimate_series(ts: TiltSeries, params: CtfParams, output_dir: Path) -> UnitOutput:
    """Estimate the CTF of one tilt series (or read it, ``--from-files``); write its spectra and plot."""
    if params.from_files is not None:
        result_ts, notes = series_from_file(ts, params.from_files)
        write_ctf_plot(result_ts, output_dir / f"{ts.name}_ctf.png", spectra=None, pixel_spacing_angstrom=None)
        return UnitOutput(result_ts, tuple(notes))
    check_optics(ts)
    tilts = [t for t in ts.tilts if not t.excluded and has_image(t)]
    axis_deg, tilts_deg, source = geometry(ts, tilts)
    stack = read_tilt_stack(ts, tilts, target_size_px=params.max_image_size_px, device=device_for(params.device))
    images = list(stack.images.cpu().numpy())
    spacing = stack.pixel_spacing_angstrom
    optics = Optics(ts.optics.voltage_kv, ts.optics.spherical_aberration_mm, ts.optics.amplitude_contrast, spacing)
    try:
        result = fit_series(images, tilts_deg.tolist(), axis_deg=axis_deg, optics=optics, settings=_settings(params),
                            defocus_range_angstrom=defocus_ranges(tilts, params),
                            acquisition_order=[t.acquisition.acquisition_index for t in tilts])  # fmt: skip
    except ValueError as error:
        raise InputError(stack_source(ts), f"tilt series {ts.name}: {error}.",
                         "check the images (tomoprep clean), the defocus searched (--min/--max-defocus-um) and "
                         "the band (--low/--high-resolution-angstrom).") from None  # fmt: skip
    spectra = np.stack([power_spectrum(image, params.tile_px) for image in images])
    spectra_path = output_dir / f"{ts.name}_ctf_spectra.mrc"
    write_mrc(spectra_path, spectra, pixel_spacing_angstrom=spacing)
    by_order = {t.acquisition.acquisition_index: r for t, r in zip(tilts, _records(result, spectra_path), strict=True)}
    fitted = replace(ts, tilts=tuple(replace(t, ctf=by_order.get(t.acquisition.acquisition_index)) for t in ts.tilts))
    found = CtfHand(result.hand.hand, float(result.hand.confidence))  # type: ignore[arg-type]
    fitted, hand_note = reconcile_hand(fitted, found, aligned=source.startswith("the alignment"))
    sample, sample_notes = measure_sample(images, result, ts, tilts_deg, axis_deg=axis_deg, source=source,
                                          optics=optics, params=params)  # fmt: skip
    fitted = replace(fitted, ctf_sample=sample)
    write_ctf_plot(fitted, output_dir / f"{ts.name}_ctf.png", spectra=spectra, pixel_spacing_angstrom=spacing)
    return UnitOutput(fitted, tuple(_notes(fitted, tilts, result, source, spacing, hand_note) + sample_notes))


def stack_source(ts: TiltSeries) -> Path | None:
    return ts.sources[0] if ts.sources else None


def _notes(ts: TiltSeries, tilts: Sequence[TiltImage], result: SeriesCtf, source: str, spacing: float,
           hand_note: str) -> list[str]:  # fmt: skip
    defoci = np.array([f.defocus_angstrom for f in result.fits]) / MICROMETRE_IN_ANGSTROM
    u_minus_v = math.hypot(*result.astigmatism_xy_angstrom) * 2
    notes = [f"{len(tilts)} tilts at {spacing:.2f} Å/px with {source}: defocus {defoci.min():.2f}-{defoci.max():.2f} "
             f"µm, astigmatism {u_minus_v:.0f} Å", hand_note]  # fmt: skip
    flagged = [(t, flag) for t, flag in zip(tilts, result.flags, strict=True) if flag]
    if flagged:
        listed = ", ".join(f"{t.acquisition.nominal_tilt_angle_deg:+.0f}° ({flag})" for t, flag in flagged)
        tilts_word = "tilt" if len(flagged) == 1 else "tilts"
        notes.append(f"{WARNING_PREFIX} {len(flagged)} {tilts_word} repaired from the series: {listed}")
    return notes
