"""Translate tilt series to and from STAR tables with RELION 5 labels (own labels are prefixed ``tp``).

The set table (``data_global``) has one row per tilt series; each series has its own table
``data_<rlnTomoName>`` with one row per tilt in acquisition (dose) order, excluded tilts included and flagged.
Absent optional text is written as ``None``; absent numbers as ``nan``: an unknown dose is ``nan`` in
``rlnMicrographPreExposure`` and ``tpExposureDose``, never a 0 that would read as a real value.

This module is the only place that knows the labels and the files' units; the model holds Å and degrees:

- ``rlnTomoNominalDefocus`` is in µm, negative for underfocus (RELION's sign); the model's
  ``nominal_defocus_angstrom`` is in Å, positive for underfocus.
- ``rlnTomoNominalTiltAxisAngle`` is a per-tilt column in RELION, and the series' one value
  (``TiltSeries.nominal_tilt_axis_angle_deg``) is written into every row; a table whose rows disagree is refused.
- ``rlnMicrographName`` is ``<section + 1>@<stack>`` for a tilt of an imported stack (acquisition record) and the
  motion-corrected sum otherwise (motion record); a row with a plain micrograph name has a motion record.
- A tilt's stage records are spread over columns: the motion record over ``rlnMicrographName*``,
  ``rlnMicrographMetadata`` and ``rlnAccumMotion*``; the exclusion over ``tpExcluded`` and ``tpExclusionReason``;
  the alignment over RELION's five pose labels, ``tpLocalShiftRmsAngst`` and the projection matching's
  ``tpMatchScore`` and ``tpMatchCorrectionAngst``; the CTF over RELION's CTF labels
  (:mod:`tomoprep.io.ctf_star`). The optional columns are written only when some tilt has a value.

pandas is imported where a table is built, so that importing the labels costs nothing.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from tomoprep.errors import InputError
from tomoprep.io.ctf_star import ctf_columns, ctf_from_row, hand_fields, hand_from_row, sample_fields, sample_from_row
from tomoprep.io.tomogram_star import primary_fields, tomograms_from_star
from tomoprep.model.tilt_series import (
    GainFlip,
    GainReference,
    GainRotation,
    Hand,
    Optics,
    TiltAcquisition,
    TiltAlignment,
    TiltExclusion,
    TiltImage,
    TiltMotion,
    TiltSeries,
)

if TYPE_CHECKING:
    import pandas as pd

NONE_TEXT = "None"
#: The set table's labels of a series' name and of its per-series STAR file.
NAME_LABEL = "rlnTomoName"
STAR_FILE_LABEL = "rlnTomoTiltSeriesStarFile"
AXIS_LABEL = "rlnTomoNominalTiltAxisAngle"
#: Rows may differ by the text format's rounding only (values are written with 6 decimals).
AXIS_TOLERANCE_DEG = 1e-5
MICROMETRE_IN_ANGSTROM = 1e4


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


def series_optics_fields(ts: TiltSeries) -> dict[str, object]:
    """The optics, original pixel size and hand of ``ts`` as RELION 5's set table labels them."""
    return {
        "rlnVoltage": ts.optics.voltage_kv,
        "rlnSphericalAberration": ts.optics.spherical_aberration_mm,
        "rlnAmplitudeContrast": ts.optics.amplitude_contrast,
        "rlnMicrographOriginalPixelSize": ts.original_pixel_spacing_angstrom,
        "rlnTomoHand": ts.hand,
        "rlnOpticsGroupName": ts.optics.optics_group_name,
    }


def set_row(ts: TiltSeries, *, tilt_series_star_file: str) -> dict[str, object]:
    """One row of the tilt-series set table for ``ts``; the per-series STAR path is given as stored."""
    row: dict[str, object] = {NAME_LABEL: ts.name, STAR_FILE_LABEL: tilt_series_star_file, **series_optics_fields(ts)}
    if ts.tilt_series_pixel_spacing_angstrom is not None:
        row["rlnTomoTiltSeriesPixelSize"] = ts.tilt_series_pixel_spacing_angstrom
    row["tpSources"] = ";".join(str(p) for p in ts.sources) or NONE_TEXT
    if ts.specimen_thickness_angstrom is not None:
        row["tpSpecimenThicknessAngst"] = ts.specimen_thickness_angstrom
    if ts.local_alignment_path is not None:
        row["tpLocalAlignmentFile"] = str(ts.local_alignment_path)
    if ts.axis_scores_path is not None:
        row[AXIS_SCORES_FILE_LABEL] = str(ts.axis_scores_path)
    row.update(hand_fields(ts.ctf_hand))
    row.update(sample_fields(ts.ctf_sample))
    row.update(primary_fields(ts))
    return row


def _micrograph_name(tilt: TiltImage) -> str | None:
    acquisition = tilt.acquisition
    if acquisition.stack_path is not None:
        return f"{acquisition.section_index + 1}@{acquisition.stack_path}"
    return None if tilt.motion is None else str(tilt.motion.micrograph_path)


def tilt_row(tilt: TiltImage, *, nominal_tilt_axis_angle_deg: float) -> dict[str, object]:
    """One row of a per-series table for ``tilt`` (the series' axis angle is written into every row)."""
    acquisition = tilt.acquisition
    defocus = acquisition.nominal_defocus_angstrom
    gain = acquisition.gain
    return {
        "rlnMicrographMovieName": _text(acquisition.movie_path),
        "rlnTomoTiltMovieFrameCount": -1 if acquisition.frame_count is None else acquisition.frame_count,
        "rlnTomoNominalStageTiltAngle": acquisition.nominal_tilt_angle_deg,
        AXIS_LABEL: nominal_tilt_axis_angle_deg,
        "rlnMicrographPreExposure": _number(acquisition.pre_exposure_e_per_angstrom2),
        "rlnTomoNominalDefocus": math.nan if defocus is None else -defocus / MICROMETRE_IN_ANGSTROM,
        "rlnMicrographName": _text(_micrograph_name(tilt)),
        "tpAcquisitionIndex": acquisition.acquisition_index,
        "tpSectionIndex": acquisition.section_index,
        "tpExposureDose": _number(acquisition.dose_e_per_angstrom2),
        "tpGainReference": _text(None if gain is None else gain.path),
        "tpGainRotation": 0 if gain is None else gain.rotation_deg,
        "tpGainFlip": "none" if gain is None else gain.flip,
        "tpDateTime": _text(None if acquisition.date_time is None else acquisition.date_time.isoformat()),
        "tpExcluded": int(tilt.excluded),
        "tpExclusionReason": _free_text("" if tilt.exclusion is None else tilt.exclusion.reason),
    }


#: Optional motion-record columns: label -> :class:`TiltMotion` field; written only when some tilt has one.
MOTION_PATHS = {
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
#: The projection matching's last pass, per tilt: correlation with the others' reprojection, and its shift (Å).
MATCH_LABELS = {"tpMatchScore": "match_score", "tpMatchCorrectionAngst": "match_correction_angstrom"}
#: The set table's label of a series' axis-search scores (:mod:`tomoprep.io.axis_scores`).
AXIS_SCORES_FILE_LABEL = "tpAxisScoresFile"


def _motion_columns(tilts: list[TiltImage]) -> dict[str, list[object]]:
    columns: dict[str, list[object]] = {}
    motions = [t.motion for t in tilts]
    for label, attribute in MOTION_PATHS.items():
        values = [None if m is None else getattr(m, attribute) for m in motions]
        if any(v is not None for v in values):
            columns[label] = [_text(v) for v in values]
    accumulated = [None if m is None else m.accumulated_motion_angstrom for m in motions]
    if any(a is not None for a in accumulated):
        for k, label in enumerate(MOTION_LABELS):
            columns[label] = [math.nan if a is None else a[k] for a in accumulated]
    return columns


def _alignment_columns(tilts: list[TiltImage]) -> dict[str, list[object]]:
    columns: dict[str, list[object]] = {}
    poses = [t.alignment for t in tilts]
    if any(p is not None for p in poses):
        for label, attribute in ALIGNMENT_LABELS.items():
            columns[label] = [math.nan if p is None else getattr(p, attribute) for p in poses]
    for label, attribute in {LOCAL_SHIFT_LABEL: "local_shift_rms_angstrom", **MATCH_LABELS}.items():
        values = [None if p is None else getattr(p, attribute) for p in poses]
        if any(v is not None for v in values):
            columns[label] = [_number(v) for v in values]
    return columns


def tilt_series_table(ts: TiltSeries) -> pd.DataFrame:
    """The per-series table: one row per tilt, in acquisition order."""
    import pandas as pd  # here, not with the module: the run-folder layout imports its labels for every command

    tilts = sorted(ts.tilts, key=lambda t: t.acquisition.acquisition_index)
    table = pd.DataFrame([tilt_row(t, nominal_tilt_axis_angle_deg=ts.nominal_tilt_axis_angle_deg) for t in tilts])
    for label, values in {**_motion_columns(tilts), **_alignment_columns(tilts), **ctf_columns(tilts)}.items():
        table[label] = values
    return table


def _acquisition_from_row(row: pd.Series) -> TiltAcquisition:
    micrograph = _opt_text(row.get("rlnMicrographName"))
    stack = micrograph.split("@", 1)[1] if micrograph is not None and "@" in micrograph else None
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
    return TiltAcquisition(
        acquisition_index=int(row["tpAcquisitionIndex"]),
        section_index=int(row["tpSectionIndex"]),
        nominal_tilt_angle_deg=float(row["rlnTomoNominalStageTiltAngle"]),
        pre_exposure_e_per_angstrom2=_opt_float(row["rlnMicrographPreExposure"]),
        dose_e_per_angstrom2=_opt_float(row["tpExposureDose"]),
        movie_path=None if movie is None else Path(movie),
        frame_count=None if frames < 0 else frames,
        nominal_defocus_angstrom=None if defocus_um is None else -defocus_um * MICROMETRE_IN_ANGSTROM,
        gain=gain,
        date_time=None if stamp is None else datetime.fromisoformat(stamp),
        stack_path=None if stack is None else Path(stack),
    )


def _motion_from_row(row: pd.Series) -> TiltMotion | None:
    micrograph = _opt_text(row.get("rlnMicrographName"))
    if micrograph is None or "@" in micrograph:
        return None
    paths = {attribute: _opt_text(row.get(label)) for label, attribute in MOTION_PATHS.items()}
    total, early, late = (_opt_float(row.get(label)) for label in MOTION_LABELS)
    return TiltMotion(
        micrograph_path=Path(micrograph),
        **{attribute: None if text is None else Path(text) for attribute, text in paths.items()},
        # Early and late are unknown (nan) when the dose is: the total is kept.
        accumulated_motion_angstrom=(
            None if total is None else (total, math.nan if early is None else early, math.nan if late is None else late)
        ),
    )


def _alignment_from_row(row: pd.Series) -> TiltAlignment | None:
    pose = {attribute: _opt_float(row.get(label)) for label, attribute in ALIGNMENT_LABELS.items()}
    if any(v is None for v in pose.values()):
        return None
    extra = {attribute: _opt_float(row.get(label)) for label, attribute in MATCH_LABELS.items()}
    return TiltAlignment(**pose, local_shift_rms_angstrom=_opt_float(row.get(LOCAL_SHIFT_LABEL)), **extra)  # type: ignore[arg-type]


def _tilt_from_row(row: pd.Series) -> TiltImage:
    excluded = bool(int(row.get("tpExcluded", 0)))
    return TiltImage(
        acquisition=_acquisition_from_row(row),
        motion=_motion_from_row(row),
        exclusion=TiltExclusion(_opt_text(row.get("tpExclusionReason")) or "") if excluded else None,
        alignment=_alignment_from_row(row),
        ctf=ctf_from_row(row),
    )


def _series_axis(table: pd.DataFrame, *, name: str, source: Path | None) -> float:
    """The series' nominal tilt-axis angle from its per-tilt column, which must hold one value."""
    values = table[AXIS_LABEL].astype(float)
    if values.isna().any() or float(values.max() - values.min()) > AXIS_TOLERANCE_DEG:
        raise InputError(
            source,
            f"the tilts of {name!r} disagree on {AXIS_LABEL} ({sorted(set(values.round(3)))}); tomoprep keeps one "
            "nominal tilt-axis angle per series.",
            f"write the series' one value into every row of data_{name}.",
        )
    return float(values.iloc[0])


def tilt_series_from_tables(
    set_row_: pd.Series, table: pd.DataFrame, *, source: Path | None = None, tomograms: pd.DataFrame | None = None
) -> TiltSeries:
    """Rebuild a tilt series from its set-table row and its per-series table (and the set's table of tomograms,
    :mod:`tomoprep.io.tomogram_star`).

    Raises
    ------
    InputError
        If the tilts of the table disagree on the nominal tilt-axis angle (``source`` names the file).
    """
    name = str(set_row_[NAME_LABEL])
    optics = Optics(
        voltage_kv=float(set_row_["rlnVoltage"]),
        spherical_aberration_mm=float(set_row_["rlnSphericalAberration"]),
        amplitude_contrast=float(set_row_["rlnAmplitudeContrast"]),
        optics_group_name=str(set_row_.get("rlnOpticsGroupName", "opticsGroup1")),
    )
    sources = _opt_text(set_row_.get("tpSources"))
    local = _opt_text(set_row_.get("tpLocalAlignmentFile"))
    axis_scores = _opt_text(set_row_.get(AXIS_SCORES_FILE_LABEL))
    spacing = _opt_float(set_row_.get("rlnTomoTiltSeriesPixelSize"))
    return TiltSeries(
        name=name,
        original_pixel_spacing_angstrom=float(set_row_["rlnMicrographOriginalPixelSize"]),
        optics=optics,
        tilts=tuple(_tilt_from_row(row) for _, row in table.iterrows()),
        nominal_tilt_axis_angle_deg=_series_axis(table, name=name, source=source),
        hand=cast(Hand, int(set_row_["rlnTomoHand"])),
        tilt_series_pixel_spacing_angstrom=spacing,
        sources=() if sources is None else tuple(Path(p) for p in sources.split(";")),
        specimen_thickness_angstrom=_opt_float(set_row_.get("tpSpecimenThicknessAngst")),
        local_alignment_path=None if local is None else Path(local),
        axis_scores_path=None if axis_scores is None else Path(axis_scores),
        ctf_hand=hand_from_row(set_row_),
        ctf_sample=sample_from_row(set_row_),
        tomograms=tomograms_from_star(set_row_, tomograms, tilt_series_pixel_spacing_angstrom=spacing),
    )
