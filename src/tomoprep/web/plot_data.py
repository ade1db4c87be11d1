"""What the web UI's plots draw, read from a run's own outputs: its tilt-series set (per-tilt motion, alignment and
CTF records), the movies' motion STAR files, the CTF step's power spectra and the run's log.

Every function takes one tilt series as the run left it and returns plain JSON-ready data; nothing here computes a
new estimate. Tilts come in acquisition order, each with its nominal tilt angle, so that a plot can join points in
tilt order or in acquisition order as it says.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from tomoprep.io.axis_scores import read_axis_scores
from tomoprep.io.mrc import read_mrc, read_mrc_header
from tomoprep.io.relion_motion import read_motion_shifts
from tomoprep.io.star import read_star
from tomoprep.model import TiltImage, TiltSeries
from tomoprep.steps.ctf.plots import DEFOCUS_HALF_SPAN_UM
from tomoprep.steps.ctf.spectra import radial_fit
from tomoprep.steps.tilt_images import series_pixel_spacing

#: Prefix of the alignment's log note that says why no thickness was reported (algorithms/series_alignment.py).
NO_THICKNESS_NOTE = "no thickness: "
#: Start of the alignment's log notes about the tilt axis: each way it was found (common lines, cross-prediction,
#: refinement) says its angle.
AXIS_NOTE = ("tilt axis ", "common lines")
#: Coarse end of the band a spectrum's 1-D fit is drawn over (Å), as the CTF step's picture draws it.
SPECTRUM_COARSE_ANGSTROM = 30.0


def plot_kinds(ts: TiltSeries) -> tuple[str, ...]:
    """The kinds of plots ``ts`` has records for: ``motion``, ``alignment``, ``ctf``, in workflow order."""
    stages = (("motion", "motion"), ("alignment", "alignment"), ("ctf", "ctf"))
    return tuple(kind for kind, field in stages if any(getattr(t, field) is not None for t in ts.tilts))


def _number(value: float | None) -> float | None:
    """``value`` for JSON: ``None`` for a missing or non-finite number (JSON has no inf or nan)."""
    return None if value is None or not math.isfinite(value) else float(value)


def _tilt(tilt: TiltImage) -> dict[str, Any]:
    """What every plot's tooltip says of a tilt: acquisition index, nominal tilt, whether and why excluded."""
    return {
        "acquisition_index": tilt.acquisition.acquisition_index,
        "tilt_deg": tilt.acquisition.nominal_tilt_angle_deg,
        "excluded": tilt.excluded,
        "reason": tilt.exclusion.reason if tilt.exclusion else "",
    }


def _ordered(ts: TiltSeries) -> list[TiltImage]:
    return sorted(ts.tilts, key=lambda t: t.acquisition.acquisition_index)


def _frame_spacing_angstrom(motion_star: Path, micrograph: Path, sum_spacing_angstrom: float) -> float:
    """Size of the pixels a motion STAR counts its shifts in (Å): the frames' grid (``rlnImageSizeX`` wide, EER
    super-resolution included), which the sum covers at its own spacing."""
    frames_width = float(read_star(motion_star)["general"]["rlnImageSizeX"].iloc[0])
    return sum_spacing_angstrom * read_mrc_header(micrograph).shape[-1] / frames_width


def motion_data(ts: TiltSeries) -> dict[str, Any] | None:
    """Per tilt: the movie's global trajectory (content motion in Å from the first frame, x along the image's
    columns, y along its rows; ``None`` without its motion STAR) and the accumulated motion (total, early, late,
    Å); ``None`` when no tilt has a motion record."""
    tilts = [t for t in _ordered(ts) if t.motion is not None]
    if not tilts:
        return None
    rows = []
    for tilt in tilts:
        assert tilt.motion is not None
        trajectory = None
        path = tilt.motion.motion_metadata_path
        if path is not None and path.is_file() and tilt.motion.micrograph_path.is_file():
            spacing = _frame_spacing_angstrom(path, tilt.motion.micrograph_path, series_pixel_spacing(ts))
            shifts = -read_motion_shifts(path) * spacing  # RELION lists minus the content's motion
            trajectory = np.round(shifts - shifts[0], 3).tolist()
        total, early, late = tilt.motion.accumulated_motion_angstrom or (None, None, None)
        rows.append({**_tilt(tilt), "trajectory_angstrom": trajectory, "total_motion_angstrom": _number(total),
                     "early_motion_angstrom": _number(early), "late_motion_angstrom": _number(late)})  # fmt: skip
    return {"name": ts.name, "tilts": rows}


def _thickness_reason(ts: TiltSeries, notes: list[str]) -> str:
    """Why the series has no thickness: the alignment's own note, else what the record shows."""
    for note in notes:
        if note.startswith(NO_THICKNESS_NOTE):
            return note[len(NO_THICKNESS_NOTE) :]
    if any("alignment read from" in note for note in notes):
        return "the alignment was read from files, which give no thickness"
    return "the run's log gives no reason"


def axis_scores_data(ts: TiltSeries) -> list[dict[str, Any]] | None:
    """The alignment's axis searches as its run wrote them (:mod:`tomoprep.io.axis_scores`): per search its
    ``method``, ``angles_deg``, ``scores`` and ``chosen_deg``, in the order they ran; ``None`` where the series
    has no such file (the axis not searched, an alignment read from files) or it is gone."""
    path = ts.axis_scores_path
    if path is None or not path.is_file():
        return None
    return [{"method": s.method, "angles_deg": np.round(s.angles_deg, 6).tolist(),
             "scores": [_number(float(v)) for v in s.scores], "chosen_deg": float(s.chosen_deg)}
            for s in read_axis_scores(path)]  # fmt: skip


def alignment_data(ts: TiltSeries, notes: list[str]) -> dict[str, Any] | None:
    """Per tilt: the alignment's shifts (Å), tilt about the axis, axis angle, patch tracking's local-shift RMS,
    and the projection matching's last score and correction (Å); the axis (nominal, as imported, and refined: the
    median of the tilts' ``rlnTomoZRot``) and the thickness with its status; the alignment's notes about the axis
    (``axis_notes``: how it went from the nominal to the refined one) and its searches' score curves
    (``axis_scores``, :func:`axis_scores_data`); ``None`` when no tilt is aligned. ``notes`` are the alignment's
    log messages about this series (they say why a thickness is missing)."""
    aligned = [t.alignment for t in ts.tilts if t.alignment is not None]
    if not aligned:
        return None
    fields = ("y_tilt_deg", "z_rot_deg", "shift_x_angstrom", "shift_y_angstrom", "local_shift_rms_angstrom",
              "match_score", "match_correction_angstrom")  # fmt: skip
    rows = [{**_tilt(t), "aligned": t.alignment is not None,
             **{f: None if t.alignment is None else _number(getattr(t.alignment, f)) for f in fields}}
            for t in _ordered(ts)]  # fmt: skip
    thickness = _number(ts.specimen_thickness_angstrom)
    return {
        "name": ts.name,
        "nominal_axis_deg": ts.nominal_tilt_axis_angle_deg,
        "refined_axis_deg": float(np.median([a.z_rot_deg for a in aligned])),
        "thickness_angstrom": thickness,
        "thickness_status": "measured" if thickness is not None else "none",
        "thickness_reason": "" if thickness is not None else _thickness_reason(ts, notes),
        "axis_notes": [note for note in notes if note.startswith(AXIS_NOTE)],
        "axis_scores": axis_scores_data(ts),
        "tilts": rows,
    }


def ctf_data(ts: TiltSeries) -> dict[str, Any] | None:
    """Per tilt: defocus (mean of U and V, µm underfocus; U, V and astigmatism in Å), fit resolution (Å; ``None``
    for a tilt without a fit of its own), figure of merit, flag and whether its spectrum can be drawn; the span
    the defocus plots show (``DEFOCUS_HALF_SPAN_UM`` around the median of the tilts fitted on their own, as the
    CTF step's picture); ``None`` when no tilt has a CTF."""
    tilts = [t for t in _ordered(ts) if t.ctf is not None]
    if not tilts:
        return None
    rows = []
    for tilt in tilts:
        c = tilt.ctf
        assert c is not None
        spectrum = c.power_spectrum_path is not None and c.power_spectrum_section is not None
        rows.append({**_tilt(tilt), "defocus_um": c.defocus_angstrom / 1e4, "defocus_u_angstrom": c.defocus_u_angstrom,
                     "defocus_v_angstrom": c.defocus_v_angstrom, "astigmatism_angle_deg": c.astigmatism_angle_deg,
                     "fit_resolution_angstrom": _number(c.fit_resolution_angstrom),
                     "figure_of_merit": _number(c.figure_of_merit), "flag": c.flag,
                     "has_spectrum": spectrum})  # fmt: skip
    fitted = [r["defocus_um"] for r in rows if not r["flag"]] or [r["defocus_um"] for r in rows]
    median = float(np.median(fitted))
    hand = ts.ctf_hand
    return {
        "name": ts.name,
        "median_defocus_um": median,
        "defocus_span_um": [median - DEFOCUS_HALF_SPAN_UM, median + DEFOCUS_HALF_SPAN_UM],
        "hand": None if hand is None else hand.hand,
        "hand_confidence": None if hand is None else _number(hand.confidence),
        "tilts": rows,
    }


def ctf_spectrum(ts: TiltSeries, acquisition_index: int) -> dict[str, Any] | None:
    """The 1-D fit of one tilt: rotational average of its power spectrum on astigmatism-corrected rings (smooth
    background removed) and the CTF model there, both scaled to unit standard deviation, against spatial
    frequency (1/Å); ``None`` when the tilt has no spectrum written."""
    tilt = next((t for t in ts.tilts if t.acquisition.acquisition_index == acquisition_index), None)
    if tilt is None or tilt.ctf is None:
        return None
    ctf, path, section = tilt.ctf, tilt.ctf.power_spectrum_path, tilt.ctf.power_spectrum_section
    if path is None or section is None or not path.is_file():
        return None
    spectrum = read_mrc(path, sections=[section])[0]
    # The spectra are of the images the fit saw, which may be binned from the series' own.
    spacing = read_mrc_header(path).pixel_spacing_angstrom or series_pixel_spacing(ts)
    resolution = ctf.fit_resolution_angstrom
    fine = max(resolution, 2.2 * spacing) if resolution is not None and math.isfinite(resolution) else 8.0
    band = (SPECTRUM_COARSE_ANGSTROM, fine)
    k, data, model = radial_fit(spectrum, ctf, pixel_spacing_angstrom=spacing, voltage_kv=ts.optics.voltage_kv,
                                cs_mm=ts.optics.spherical_aberration_mm,
                                amplitude_contrast=ts.optics.amplitude_contrast, band_angstrom=band)  # fmt: skip
    return {**_tilt(tilt), "defocus_um": ctf.defocus_angstrom / 1e4, "flag": ctf.flag, "band_angstrom": list(band),
            "frequency_per_angstrom": np.round(k, 6).tolist(), "data": np.round(data, 4).tolist(),
            "model": np.round(model, 4).tolist()}  # fmt: skip
