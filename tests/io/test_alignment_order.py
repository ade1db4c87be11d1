"""Which tilt each row of an external alignment file describes: stack order, all or included tilts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tomoprep.errors import InputError
from tomoprep.io.alignment_order import stack_order, views_in_file_order
from tomoprep.model import TiltAcquisition, TiltExclusion, TiltImage


def _tilt(acquisition: int, angle: float, *, section: int | None = None, excluded: bool = False) -> TiltImage:
    return TiltImage(
        TiltAcquisition(
            acquisition_index=acquisition,
            section_index=acquisition if section is None else section,
            nominal_tilt_angle_deg=angle,
            pre_exposure_e_per_angstrom2=3.0 * acquisition,
            dose_e_per_angstrom2=3.0,
            stack_path=None if section is None else Path("ts.st"),
        ),
        exclusion=TiltExclusion("clean: test") if excluded else None,
    )


# A dose-symmetric series in acquisition order: 0, 3, -3, 6, -6 degrees.
ANGLES = [0.0, 3.0, -3.0, 6.0, -6.0]


def test_motion_corrected_tilts_are_in_tilt_angle_order() -> None:
    tilts = [_tilt(i, a) for i, a in enumerate(ANGLES)]
    ordered = views_in_file_order(tilts, n_rows=5, path="a.xf")
    assert [t.acquisition.nominal_tilt_angle_deg for t in ordered] == sorted(ANGLES)


def test_stack_tilts_are_in_section_order() -> None:
    # The stack holds the tilts in acquisition order, as some exports do: IMOD rows follow the sections.
    tilts = [_tilt(i, a, section=i) for i, a in enumerate(ANGLES)]
    ordered = views_in_file_order(list(reversed(tilts)), n_rows=5, path="a.xf")
    assert [t.acquisition.nominal_tilt_angle_deg for t in ordered] == ANGLES


def test_file_of_included_tilts_only() -> None:
    tilts = [_tilt(i, a, excluded=(a == 6.0)) for i, a in enumerate(ANGLES)]
    included = views_in_file_order(tilts, n_rows=4, path="a.xf")
    assert [t.acquisition.nominal_tilt_angle_deg for t in included] == [-6, -3, 0, 3]
    assert len(views_in_file_order(tilts, n_rows=5, path="a.xf")) == 5


def test_count_matching_neither_names_the_file() -> None:
    tilts = [_tilt(i, a, excluded=(i == 0)) for i, a in enumerate(ANGLES)]
    with pytest.raises(InputError, match="lists 3 views, but the tilt series has 5 tilts, 4 of them included") as info:
        views_in_file_order(tilts, n_rows=3, path="ts/TS_01.xf")
    assert info.value.path == Path("ts/TS_01.xf")


def test_equal_angles_keep_acquisition_order() -> None:
    tilts = [_tilt(1, 0.0), _tilt(0, 0.0), _tilt(2, -3.0)]
    assert [t.acquisition.acquisition_index for t in stack_order(tilts)] == [2, 0, 1]


def test_mixed_series_and_repeated_sections_are_rejected() -> None:
    with pytest.raises(ValueError, match="only some tilts come from a stack"):
        stack_order([_tilt(0, 0.0, section=0), _tilt(1, 3.0)])
    with pytest.raises(ValueError, match="share a stack section"):
        stack_order([_tilt(0, 0.0, section=0), _tilt(1, 3.0, section=0)])
