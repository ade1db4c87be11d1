"""Translate tilt series to and from STAR tables with RELION 5 labels (own labels are prefixed ``tp``).

The set table (``data_global``) has one row per tilt series; each series has its own table
``data_<rlnTomoName>`` with one row per tilt in acquisition (dose) order, excluded tilts included and flagged.
Absent optional text is written as ``None``; absent numbers as ``nan``: an unknown dose is ``nan`` in
``rlnMicrographPreExposure`` and ``tpExposureDose``, never a 0 that would read as a real value.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pandas as pd

from tomoprep.model.tilt_series import (
    GainFlip,
    GainReference,
    GainRotation,
    Hand,
    Optics,
    TiltAlignment,
    TiltImage,
    TiltSeries,
)

NONE_TEXT = "None"


def _text(value: object) -> str:
    return NONE_TEXT if value is None or value == "" else str(value)


def _free_text(value: str) -> str:
    # STAR readers split on white space and honour quotes; quotes inside a quoted field break them.
    cleaned = " ".join(value.replace('"', "").replace("'", "").split())
    return _text(cleaned)


def _opt_text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return None if text in ("", NONE_TEXT, "<NA>", "nan") else text


def _opt_float(value: object) -> float | None:
    if value is None:
        return None
    number = float(cast(Any, value))
    return None if math.isnan(number) else number


def _number(value: float | None) -> float:
    return math.nan if value is None else value


def set_row(ts: TiltSeries, *, tilt_series_star_file: str) -> dict[str, object]:
    """One row of the tilt-series set table for ``ts``; the per-series STAR path is given as stored."""
    row: dict[str, object] = {
        "rlnTomoName": ts.name,
        "rlnTomoTiltSeriesStarFile": tilt_series_star_file,
        "rlnVoltage": ts.optics.voltage_kv,
        "rlnSphericalAberration": ts.optics.spherical_aberration_mm,
        "rlnAmplitudeContrast": ts.optics.amplitude_contrast,
        "rlnMicrographOriginalPixelSize": ts.original_pixel_spacing_angstrom,
        "rlnTomoHand": ts.hand,
        "rlnOpticsGroupName": ts.optics.optics_group_name,
    }
    if ts.tilt_series_pixel_spacing_angstrom is not None:
        row["rlnTomoTiltSeriesPixelSize"] = ts.tilt_series_pixel_spacing_angstrom
    row["tpSources"] = ";".join(str(p) for p in ts.sources) or NONE_TEXT
    if ts.specimen_thickness_angstrom is not None:
        row["tpSpecimenThicknessAngst"] = ts.specimen_thickness_angstrom
    if ts.local_alignment_path is not None:
        row["tpLocalAlignmentFile"] = str(ts.local_alignment_path)
    return row


def _micrograph_name(tilt: TiltImage) -> str | None:
    if tilt.stack_path is not None:
        return f"{tilt.section_index + 1}@{tilt.stack_path}"
    return None if tilt.micrograph_path is None else str(tilt.micrograph_path)


def tilt_row(tilt: TiltImage) -> dict[str, object]:
    """One row of a per-series table for ``tilt``."""
    nominal_defocus_um = math.nan if tilt.nominal_defocus_angstrom is None else -tilt.nominal_defocus_angstrom / 1e4
    gain = tilt.gain
    return {
        "rlnMicrographMovieName": _text(tilt.movie_path),
        "rlnTomoTiltMovieFrameCount": -1 if tilt.frame_count is None else tilt.frame_count,
        "rlnTomoNominalStageTiltAngle": tilt.nominal_tilt_angle_deg,
        "rlnTomoNominalTiltAxisAngle": tilt.nominal_tilt_axis_angle_deg,
        "rlnMicrographPreExposure": _number(tilt.pre_exposure_e_per_angstrom2),
        "rlnTomoNominalDefocus": nominal_defocus_um,
        "rlnMicrographName": _text(_micrograph_name(tilt)),
        "tpAcquisitionIndex": tilt.acquisition_index,
        "tpSectionIndex": tilt.section_index,
        "tpExposureDose": _number(tilt.dose_e_per_angstrom2),
        "tpGainReference": _text(None if gain is None else gain.path),
        "tpGainRotation": 0 if gain is None else gain.rotation_deg,
        "tpGainFlip": "none" if gain is None else gain.flip,
        "tpDateTime": _text(None if tilt.date_time is None else tilt.date_time.isoformat()),
        "tpExcluded": int(tilt.excluded),
        "tpExclusionReason": _free_text(tilt.exclusion_reason),
    }


#: Optional per-tilt columns: label -> how to get the value; written only when some tilt has one.
OPTIONAL_PATHS = {
    "rlnMicrographNameOdd": "micrograph_odd_path",
    "rlnMicrographNameEven": "micrograph_even_path",
    "tpMicrographNameDoseWeighted": "micrograph_dose_weighted_path",
    "rlnMicrographMetadata": "motion_metadata_path",
}
MOTION_LABELS = ("rlnAccumMotionTotal", "rlnAccumMotionEarly", "rlnAccumMotionLate")
#: RELION 5's alignment labels and the :class:`TiltAlignment` fields they hold.
ALIGNMENT_LABELS = {
    "rlnTomoXTilt": "x_tilt_deg",
    "rlnTomoYTilt": "y_tilt_deg",
    "rlnTomoZRot": "z_rot_deg",
    "rlnTomoXShiftAngst": "shift_x_angstrom",
    "rlnTomoYShiftAngst": "shift_y_angstrom",
}


#: RMS of a tilt's patch-tracking local shifts, Å.
LOCAL_SHIFT_LABEL = "tpLocalShiftRmsAngst"


def _optional_columns(tilts: list[TiltImage]) -> dict[str, list[object]]:
    columns: dict[str, list[object]] = {}
    for label, attribute in OPTIONAL_PATHS.items():
        values = [getattr(t, attribute) for t in tilts]
        if any(v is not None for v in values):
            columns[label] = [_text(v) for v in values]
    if any(t.accumulated_motion_angstrom is not None for t in tilts):
        for k, label in enumerate(MOTION_LABELS):
            columns[label] = [
                math.nan if t.accumulated_motion_angstrom is None else t.accumulated_motion_angstrom[k] for t in tilts
            ]
    if any(t.alignment is not None for t in tilts):
        for label, attribute in ALIGNMENT_LABELS.items():
            columns[label] = [math.nan if t.alignment is None else getattr(t.alignment, attribute) for t in tilts]
    if any(t.local_shift_rms_angstrom is not None for t in tilts):
        columns[LOCAL_SHIFT_LABEL] = [
            math.nan if t.local_shift_rms_angstrom is None else t.local_shift_rms_angstrom for t in tilts
        ]
    return columns


def tilt_series_table(ts: TiltSeries) -> pd.DataFrame:
    """The per-series table: one row per tilt, in acquisition order."""
    tilts = sorted(ts.tilts, key=lambda t: t.acquisition_index)
    table = pd.DataFrame([tilt_row(t) for t in tilts])
    for label, values in _optional_columns(tilts).items():
        table[label] = values
    return table


def _optional_fields(row: pd.Series) -> dict[str, object]:
    fields: dict[str, object] = {}
    for label, attribute in OPTIONAL_PATHS.items():
        text = _opt_text(row.get(label))
        fields[attribute] = None if text is None else Path(text)
    total, early, late = (_opt_float(row.get(label)) for label in MOTION_LABELS)
    # Early and late are unknown (nan) when the dose is: the total is kept.
    fields["accumulated_motion_angstrom"] = (
        None if total is None else (total, math.nan if early is None else early, math.nan if late is None else late)
    )
    pose = {attribute: _opt_float(row.get(label)) for label, attribute in ALIGNMENT_LABELS.items()}
    fields["alignment"] = None if any(v is None for v in pose.values()) else TiltAlignment(**pose)  # type: ignore[arg-type]
    fields["local_shift_rms_angstrom"] = _opt_float(row.get(LOCAL_SHIFT_LABEL))
    return fields


def _tilt_from_row(row: pd.Series) -> TiltImage:
    micrograph = _opt_text(row.get("rlnMicrographName"))
    stack_path: Path | None = None
    micrograph_path: Path | None = None
    if micrograph is not None and "@" in micrograph:
        stack_path = Path(micrograph.split("@", 1)[1])
    elif micrograph is not None:
        micrograph_path = Path(micrograph)
    gain_path = _opt_text(row.get("tpGainReference"))
    gain = None
    if gain_path is not None:
        gain = GainReference(
            Path(gain_path),
            rotation_deg=cast(GainRotation, int(row.get("tpGainRotation", 0))),
            flip=cast(GainFlip, str(row.get("tpGainFlip", "none"))),
        )
    movie = _opt_text(row.get("rlnMicrographMovieName"))
    frames = int(row.get("rlnTomoTiltMovieFrameCount", -1))
    defocus_um = _opt_float(row.get("rlnTomoNominalDefocus"))
    stamp = _opt_text(row.get("tpDateTime"))
    return TiltImage(
        acquisition_index=int(row["tpAcquisitionIndex"]),
        section_index=int(row["tpSectionIndex"]),
        nominal_tilt_angle_deg=float(row["rlnTomoNominalStageTiltAngle"]),
        nominal_tilt_axis_angle_deg=float(row["rlnTomoNominalTiltAxisAngle"]),
        pre_exposure_e_per_angstrom2=_opt_float(row["rlnMicrographPreExposure"]),
        dose_e_per_angstrom2=_opt_float(row["tpExposureDose"]),
        movie_path=None if movie is None else Path(movie),
        frame_count=None if frames < 0 else frames,
        nominal_defocus_angstrom=None if defocus_um is None else -defocus_um * 1e4,
        gain=gain,
        micrograph_path=micrograph_path,
        stack_path=stack_path,
        date_time=None if stamp is None else datetime.fromisoformat(stamp),
        excluded=bool(int(row.get("tpExcluded", 0))),
        exclusion_reason=_opt_text(row.get("tpExclusionReason")) or "",
        **_optional_fields(row),  # type: ignore[arg-type]
    )


def tilt_series_from_tables(set_row_: pd.Series, table: pd.DataFrame) -> TiltSeries:
    """Rebuild a tilt series from its set-table row and its per-series table."""
    optics = Optics(
        voltage_kv=float(set_row_["rlnVoltage"]),
        spherical_aberration_mm=float(set_row_["rlnSphericalAberration"]),
        amplitude_contrast=float(set_row_["rlnAmplitudeContrast"]),
        optics_group_name=str(set_row_.get("rlnOpticsGroupName", "opticsGroup1")),
    )
    sources = _opt_text(set_row_.get("tpSources"))
    local = _opt_text(set_row_.get("tpLocalAlignmentFile"))
    return TiltSeries(
        name=str(set_row_["rlnTomoName"]),
        original_pixel_spacing_angstrom=float(set_row_["rlnMicrographOriginalPixelSize"]),
        optics=optics,
        tilts=tuple(_tilt_from_row(row) for _, row in table.iterrows()),
        hand=cast(Hand, int(set_row_["rlnTomoHand"])),
        tilt_series_pixel_spacing_angstrom=_opt_float(set_row_.get("rlnTomoTiltSeriesPixelSize")),
        sources=() if sources is None else tuple(Path(p) for p in sources.split(";")),
        specimen_thickness_angstrom=_opt_float(set_row_.get("tpSpecimenThicknessAngst")),
        local_alignment_path=None if local is None else Path(local),
    )
