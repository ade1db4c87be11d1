"""A tilt carries one record per processing stage; the series holds what all its tilts share."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tomoprep.model import Optics, TiltAcquisition, TiltAlignment, TiltExclusion, TiltImage, TiltMotion, TiltSeries


def _tilt(index: int, *, dose: float | None = 3.0) -> TiltImage:
    return TiltImage(TiltAcquisition(index, index, 3.0 * index, None if dose is None else dose * index, dose))


def _series(*tilts: TiltImage) -> TiltSeries:
    return TiltSeries("TS", 1.0, Optics(), tilts, nominal_tilt_axis_angle_deg=-95.0)


def test_an_imported_tilt_has_only_its_acquisition_record() -> None:
    tilt = _tilt(0)
    assert (tilt.motion, tilt.exclusion, tilt.alignment) == (None, None, None)
    assert not tilt.excluded


def test_each_step_fills_its_own_record() -> None:
    tilt = replace(_tilt(1), motion=TiltMotion(Path("1.mrc")))
    tilt = replace(tilt, alignment=TiltAlignment(3.2, -94.5))
    assert tilt.acquisition == _tilt(1).acquisition  # later steps leave the import's record alone
    assert tilt.motion is not None and tilt.motion.accumulated_motion_angstrom is None
    assert tilt.alignment is not None and tilt.alignment.local_shift_rms_angstrom is None


def test_exclusion_record_decides_what_is_included() -> None:
    ts = _series(_tilt(0), replace(_tilt(1), exclusion=TiltExclusion("auto: dark")), _tilt(2))
    assert ts.tilts[1].excluded and [t.acquisition.acquisition_index for t in ts.included_tilts] == [0, 2]
    assert replace(ts.tilts[1], exclusion=None).excluded is False


def test_dose_known_looks_at_included_tilts_only() -> None:
    unknown = replace(_tilt(1, dose=None), exclusion=TiltExclusion("import: unreadable"))
    assert _series(_tilt(0), unknown).dose_known
    assert not _series(_tilt(0), _tilt(1, dose=None)).dose_known


def test_series_values_are_kept_when_the_tilts_change() -> None:
    ts = _series(_tilt(0), _tilt(1))
    fewer = ts.with_tilts((_tilt(0),))
    assert fewer.nominal_tilt_axis_angle_deg == -95.0 and fewer.optics == ts.optics and fewer.n_tilts == 1


def test_acquisition_indices_must_number_the_tilts() -> None:
    with pytest.raises(ValueError, match=r"acquisition indices are not 0\.\.1"):
        _series(_tilt(0), _tilt(2))
    with pytest.raises(ValueError, match="has no tilts"):
        _series()
