"""The CTF stage's STAR columns: RELION 5's per-tilt CTF labels and the series' CTF hand.

Per tilt: ``rlnDefocusU``, ``rlnDefocusV`` (Å, positive for underfocus), ``rlnDefocusAngle`` (degrees),
``rlnCtfAstigmatism`` (``U - V``, Å, written for RELION, recomputed on reading), ``rlnPhaseShift`` (degrees),
``rlnCtfMaxResolution`` (Å; ``inf`` for a tilt repaired from the series), ``rlnCtfFigureOfMerit``, ``rlnCtfImage``
(``<section + 1>@<power-spectra stack>``) and ``tpCtfFlag`` (why the tilt's own fit failed, ``None`` when it did
not). Per series: ``tpCtfHand`` (``+1``/``-1``, ``0`` undetermined) and ``tpCtfHandConfidence``; the hand used
downstream is ``rlnTomoHand``. Where asked for, the specimen the rings show (:class:`CtfSample`):
``tpCtfThicknessAngst`` with ``tpCtfThicknessErrorAngst`` (Å; ``nan`` where not measurable), ``tpCtfTiltAxisAngle``
and ``tpCtfTiltOffset`` with ``tpCtfTiltAxisAngleError`` and ``tpCtfTiltOffsetError`` (degrees). A table without
``rlnDefocusU`` has no CTF stage (runs before the CTF step).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from tomoprep.model.tilt_series import CtfHand, CtfSample, Hand, TiltCtf, TiltImage

if TYPE_CHECKING:
    import pandas as pd

#: RELION's labels of the CTF values and the :class:`TiltCtf` fields they hold.
CTF_LABELS = {
    "rlnDefocusU": "defocus_u_angstrom",
    "rlnDefocusV": "defocus_v_angstrom",
    "rlnDefocusAngle": "astigmatism_angle_deg",
    "rlnPhaseShift": "phase_shift_deg",
    "rlnCtfMaxResolution": "fit_resolution_angstrom",
    "rlnCtfFigureOfMerit": "figure_of_merit",
}
ASTIGMATISM_LABEL = "rlnCtfAstigmatism"
IMAGE_LABEL = "rlnCtfImage"
FLAG_LABEL = "tpCtfFlag"
HAND_LABEL = "tpCtfHand"
HAND_CONFIDENCE_LABEL = "tpCtfHandConfidence"
#: The set table's labels of :class:`CtfSample` and the fields they hold.
SAMPLE_LABELS = {
    "tpCtfThicknessAngst": "thickness_angstrom",
    "tpCtfThicknessErrorAngst": "thickness_error_angstrom",
    "tpCtfTiltAxisAngle": "tilt_axis_deg",
    "tpCtfTiltAxisAngleError": "tilt_axis_error_deg",
    "tpCtfTiltOffset": "tilt_offset_deg",
    "tpCtfTiltOffsetError": "tilt_offset_error_deg",
}
_NONE = "None"


def ctf_columns(tilts: list[TiltImage]) -> dict[str, list[object]]:
    """The CTF columns of a per-series table (``tilts`` in its row order); empty when no tilt has a CTF."""
    records = [t.ctf for t in tilts]
    if all(r is None for r in records):
        return {}
    columns: dict[str, list[object]] = {}
    for label, attribute in CTF_LABELS.items():
        values = [None if r is None else getattr(r, attribute) for r in records]
        columns[label] = [math.nan if v is None else float(v) for v in values]
    columns[ASTIGMATISM_LABEL] = [math.nan if r is None else r.astigmatism_angstrom for r in records]
    columns[IMAGE_LABEL] = [
        _NONE if r is None or r.power_spectrum_path is None or r.power_spectrum_section is None
        else f"{r.power_spectrum_section + 1}@{r.power_spectrum_path}"
        for r in records
    ]  # fmt: skip
    columns[FLAG_LABEL] = [_NONE if r is None or not r.flag else r.flag.replace(" ", "_") for r in records]
    return columns


def _number(value: object) -> float | None:
    if value is None:
        return None
    try:
        number = float(cast(Any, value))
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def ctf_from_row(row: pd.Series) -> TiltCtf | None:
    """The CTF record of one table row; ``None`` when the row has no defocus."""
    values = {attribute: _number(row.get(label)) for label, attribute in CTF_LABELS.items()}
    u, v, angle = values["defocus_u_angstrom"], values["defocus_v_angstrom"], values["astigmatism_angle_deg"]
    if u is None or v is None or angle is None:
        return None
    image = str(row.get(IMAGE_LABEL, _NONE))
    path, section = None, None
    if "@" in image:
        number, _, name = image.partition("@")
        path, section = Path(name), int(number) - 1
    flag = str(row.get(FLAG_LABEL, _NONE))
    return TiltCtf(
        defocus_u_angstrom=u,
        defocus_v_angstrom=v,
        astigmatism_angle_deg=angle,
        phase_shift_deg=values["phase_shift_deg"] or 0.0,
        fit_resolution_angstrom=values["fit_resolution_angstrom"],
        figure_of_merit=values["figure_of_merit"],
        flag="" if flag in (_NONE, "nan", "") else flag.replace("_", " "),
        power_spectrum_path=path,
        power_spectrum_section=section,
    )


def hand_fields(hand: CtfHand | None) -> dict[str, object]:
    """The set-table fields of a series' CTF hand (none before the CTF estimation)."""
    if hand is None:
        return {}
    return {HAND_LABEL: 0 if hand.hand is None else hand.hand, HAND_CONFIDENCE_LABEL: hand.confidence}


def hand_from_row(row: pd.Series) -> CtfHand | None:
    """The series' CTF hand from its set-table row; ``None`` where the row has none."""
    hand = _number(row.get(HAND_LABEL))
    if hand is None:
        return None
    confidence = _number(row.get(HAND_CONFIDENCE_LABEL))
    return CtfHand(None if hand == 0 else cast(Hand, int(hand)), math.nan if confidence is None else confidence)


def sample_fields(sample: CtfSample | None) -> dict[str, object]:
    """The set-table fields of what the CTF showed of the specimen (none where it was not asked for); a value
    not measured is ``nan``."""
    if sample is None:
        return {}
    values = {label: getattr(sample, attribute) for label, attribute in SAMPLE_LABELS.items()}
    return {label: math.nan if value is None else float(value) for label, value in values.items()}


def sample_from_row(row: pd.Series) -> CtfSample | None:
    """What the CTF showed of the specimen from the series' set-table row; ``None`` where it has no value."""
    values = {attribute: _number(row.get(label)) for label, attribute in SAMPLE_LABELS.items()}
    return None if all(v is None for v in values.values()) else CtfSample(**values)
