"""AreTomo .aln files: real AreTomo 1.2/1.3 files, AreTomo2/3 headers, SEC conventions, RELION 5 conversions."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tomoprep.errors import InputError
from tomoprep.io.aretomo import (
    AlnDarkFrame,
    AlnLocalRow,
    AlnRow,
    AreTomoAlignment,
    alignment_from_aretomo,
    aretomo_from_alignment,
    read_aln,
    tilts_of_aln_rows,
    write_aln,
)
from tomoprep.io.imod import read_xf, write_xf
from tomoprep.io.imod_align import alignment_from_imod
from tomoprep.model import TiltAcquisition, TiltAlignment, TiltExclusion, TiltImage

LIL = Path("teamtomo-lil-aretomo")
HEADER = "# SEC     ROT         GMAG       TX          TY      SMEAN     SFIT    SCALE     BASE     TILT"


def _row(sec: int, tilt: float, rot: float = 85.0, tx: float = 0.0, ty: float = 0.0) -> str:
    return f"{sec:5d}  {rot:9.4f}  {1:9.5f}  {tx:9.3f}  {ty:9.3f}  {1:7.2f}  {1:7.2f}  {1:7.2f}  {0:7.2f}  {tilt:8.2f}"


def _aln(tmp_path: Path, header: list[str], secs: list[int], extra: list[str] | None = None) -> Path:
    path = tmp_path / "ts.aln"
    rows = [_row(sec, -30.0 + 15 * i) for i, sec in enumerate(secs)]
    path.write_text("\n".join(["# AreTomo Alignment / Priims bprmMn", *header, HEADER, *rows, *(extra or [])]) + "\n")
    return path


# --- real files


def test_aretomo_1_3_file(real_data: Path, tmp_path: Path) -> None:
    source = real_data / LIL / "example_v1_3_0.aln"
    aln = read_aln(source)
    assert aln.raw_size_px == (5760, 4092, 41)
    assert (aln.num_patches, aln.sec_base, aln.dark_frames, aln.local_rows) == (0, 0, (), ())
    assert aln.alpha_offset_deg is None and aln.other_header_lines == ()
    # First line:     0   -93.6692    1.00000    157.142    720.866     1.00     1.00     1.00     0.00    -51.98
    assert aln.rows[0] == AlnRow(sec=0, rot_deg=-93.6692, tx_px=157.142, ty_px=720.866, tilt_deg=-51.98)
    # The reference view: no shift at -0.99 degrees, section 17.
    assert aln.rows[17] == AlnRow(sec=17, rot_deg=-93.6692, tx_px=0.0, ty_px=0.0, tilt_deg=-0.99)
    np.testing.assert_array_equal(aln.sections, np.arange(41))
    out = tmp_path / "out.aln"
    write_aln(out, aln)
    assert out.read_bytes() == source.read_bytes()


def test_aretomo_1_2_file_crlf_and_bare_count_line(real_data: Path, tmp_path: Path) -> None:
    aln = read_aln(real_data / LIL / "example_v1_2_0.aln")
    assert aln.raw_size_px is None and aln.num_patches == 0
    assert aln.other_header_lines == ("# 41  0",)
    assert aln.n_stack_sections == 41 and aln.sec_base == 0
    # Last line:    40   -93.7196    1.00000     40.271   -800.005     1.00     1.00     1.00     0.00     68.00
    assert aln.rows[-1] == AlnRow(sec=40, rot_deg=-93.7196, tx_px=40.271, ty_px=-800.005, tilt_deg=68.0)
    write_aln(tmp_path / "out.aln", aln)
    assert read_aln(tmp_path / "out.aln") == aln


def test_relion_fields_of_real_file(real_data: Path) -> None:
    aln = read_aln(real_data / LIL / "example_v1_3_0.aln")
    alignments = alignment_from_aretomo(aln, pixel_spacing_angstrom=1.5)
    assert alignments[0] == TiltAlignment(
        y_tilt_deg=-51.98,
        z_rot_deg=-93.6692,
        x_tilt_deg=0.0,
        shift_x_angstrom=157.142 * 1.5,
        shift_y_angstrom=720.866 * 1.5,
    )
    assert alignments[40].y_tilt_deg == 68.0 and alignments[40].shift_y_angstrom == pytest.approx(-809.333 * 1.5)


# --- IMOD and AreTomo describe the same alignment identically


def _xf_as_aretomo_exports(aln: AreTomoAlignment) -> np.ndarray:
    """AreTomo's own -OutImod .xf (CSaveXF.cpp): a11 = cos(-θ), a12 = -sin(-θ), a21 = sin(-θ), a22 = cos(-θ),
    shift = A (-TX, -TY)."""
    theta = np.radians([row.rot_deg for row in aln.rows])
    a11, a12, a21, a22 = np.cos(-theta), -np.sin(-theta), np.sin(-theta), np.cos(-theta)
    tx, ty = np.array([row.tx_px for row in aln.rows]), np.array([row.ty_px for row in aln.rows])
    dx, dy = a11 * -tx + a12 * -ty, a21 * -tx + a22 * -ty
    return np.stack([np.stack([a11, a12, dx], -1), np.stack([a21, a22, dy], -1)], axis=1)


def test_imod_and_aretomo_give_identical_relion_fields(real_data: Path, tmp_path: Path) -> None:
    aln = read_aln(real_data / LIL / "example_v1_3_0.aln")
    from_aretomo = alignment_from_aretomo(aln, pixel_spacing_angstrom=2.0)
    xf = _xf_as_aretomo_exports(aln)
    tilts = [row.tilt_deg for row in aln.rows]
    from_imod = alignment_from_imod(xf, tilts, pixel_spacing_angstrom=2.0)
    for a, b in zip(from_aretomo, from_imod, strict=True):
        assert b.z_rot_deg == pytest.approx(a.z_rot_deg, abs=1e-9)
        assert (b.y_tilt_deg, b.x_tilt_deg) == (a.y_tilt_deg, a.x_tilt_deg)
        assert (b.shift_x_angstrom, b.shift_y_angstrom) == pytest.approx((a.shift_x_angstrom, a.shift_y_angstrom))
    # Through an .xf file: IMOD's 7 matrix decimals and 3 shift decimals.
    write_xf(tmp_path / "ts.xf", xf)
    from_file = alignment_from_imod(read_xf(tmp_path / "ts.xf"), tilts, pixel_spacing_angstrom=2.0)
    np.testing.assert_allclose([b.z_rot_deg for b in from_file], [a.z_rot_deg for a in from_aretomo], atol=1e-5)
    np.testing.assert_allclose(
        [b.shift_y_angstrom for b in from_file], [a.shift_y_angstrom for a in from_aretomo], atol=2e-3
    )


def test_constructed_example_by_hand() -> None:
    # ROT = 90, (TX, TY) = (3, 4) px. xf: A = R(-90°) = [[0, 1], [-1, 0]], shift = -A (3, 4) = (-4, 3).
    aln = AreTomoAlignment(rows=(AlnRow(sec=0, rot_deg=90.0, tx_px=3.0, ty_px=4.0, tilt_deg=12.0),), sec_base=0)
    [from_aretomo] = alignment_from_aretomo(aln, pixel_spacing_angstrom=1.0)
    [from_imod] = alignment_from_imod(np.array([[0.0, 1.0, -1.0, 0.0, -4.0, 3.0]]), [12.0], pixel_spacing_angstrom=1.0)
    assert from_aretomo == TiltAlignment(12.0, 90.0, 0.0, 3.0, 4.0)
    assert from_imod.z_rot_deg == pytest.approx(90.0)
    assert (from_imod.shift_x_angstrom, from_imod.shift_y_angstrom) == pytest.approx((3.0, 4.0))


# --- SEC conventions


def test_one_based_when_last_section_is_listed(tmp_path: Path) -> None:
    aln = read_aln(_aln(tmp_path, ["# RawSize = 100 100 5", "# NumPatches = 0"], [1, 2, 3, 4, 5]))
    assert aln.sec_base == 1
    np.testing.assert_array_equal(aln.sections, [0, 1, 2, 3, 4])


def test_zero_based_with_dark_frame_removed(tmp_path: Path) -> None:
    header = ["# RawSize = 100 100 5", "# NumPatches = 0", "# DarkFrame =     4    4    60.00"]
    aln = read_aln(_aln(tmp_path, header, [0, 1, 2, 3]))
    assert aln.sec_base == 0
    assert aln.dark_frames == (AlnDarkFrame(frame_index=4, sec=4, tilt_deg=60.0),)


@pytest.mark.parametrize(("darks", "expected"), [((0, 4), 0), ((4, 5), 1)])
def test_dark_frames_decide_when_both_ends_are_missing(tmp_path: Path, darks: tuple[int, int], expected: int) -> None:
    header = ["# RawSize = 100 100 5", "# NumPatches = 0"]
    header += [f"# DarkFrame =  {i:4d} {sec:4d}    50.00" for i, sec in enumerate(darks)]
    assert read_aln(_aln(tmp_path, header, [1, 2, 3])).sec_base == expected


def test_undecidable_sec_base_asks_for_it(tmp_path: Path) -> None:
    # Sections 1..3 of a 5-section stack: missing 0 and 4 (0-based) or 4 and 5 (1-based), and dark-frame
    # sections that match neither reading.
    header = ["# RawSize = 100 100 5", "# NumPatches = 0"]
    header += ["# DarkFrame =     0    9   -60.00", "# DarkFrame =     4    8    60.00"]
    path = _aln(tmp_path, header, [1, 2, 3])
    with pytest.raises(InputError, match="fit both the 0-based and the 1-based convention") as info:
        read_aln(path)
    assert "sec_base=0" in str(info.value) and info.value.path == path
    assert read_aln(path, sec_base=1).sections.tolist() == [0, 1, 2]
    assert read_aln(path, sec_base=0).sections.tolist() == [1, 2, 3]


@pytest.mark.parametrize(
    ("secs", "sec_base", "match"),
    [
        ([0, 1, 2, 3, 4], 1, "counted from 1"),
        ([1, 2, 3, 4, 5], 0, "counted from 0"),
        ([0, 1, 2, 3, 5], "auto", "in either convention"),
        ([0, 1, 1, 2, 3], "auto", "repeats SEC numbers"),
    ],
)
def test_sec_numbers_that_do_not_fit(tmp_path: Path, secs: list[int], sec_base: object, match: str) -> None:
    path = _aln(tmp_path, ["# RawSize = 100 100 5", "# NumPatches = 0"], secs)
    with pytest.raises(InputError, match=match):
        read_aln(path, sec_base=sec_base)  # type: ignore[arg-type]


# --- AreTomo3 header, local alignment, malformed files


def test_aretomo3_header_and_local_rows_round_trip(tmp_path: Path) -> None:
    header = [
        "# RawSize = 4096 4096 4",
        "# NumPatches = 2",
        "# DarkFrame =     3    4    45.00",
        "# AlphaOffset =     1.50",
        "# BetaOffset =    -0.30",
        "# Thickness = 1200",
    ]
    local = ["# Local Alignment"] + [
        f"{t:4d} {p:3d} {-1000.0 + p:8.2f}  {500.0:8.2f}  {1.25 * t:8.2f}  {-0.5:8.2f}  {1.0:4.1f}"
        for t in range(3)
        for p in range(2)
    ]
    aln = read_aln(_aln(tmp_path, header, [1, 2, 3], extra=local))
    assert (aln.sec_base, aln.num_patches, aln.thickness_px) == (1, 2, 1200)
    assert (aln.alpha_offset_deg, aln.beta_offset_deg) == (1.5, -0.3)
    assert aln.local_rows[5] == AlnLocalRow(
        row=2, patch=1, x_px=-999.0, y_px=500.0, shift_x_px=2.5, shift_y_px=-0.5, good=1.0
    )
    write_aln(tmp_path / "again.aln", aln)
    assert read_aln(tmp_path / "again.aln") == aln
    assert (tmp_path / "again.aln").read_text() == (tmp_path / "ts.aln").read_text()


@pytest.mark.parametrize(
    ("header", "secs", "extra", "match"),
    [
        (["# RawSize = 100 100 5"], [0, 1, 2], [], "do not add up to the 5 sections of RawSize"),
        (["# NumPatches = 2"], [0, 1], ["# Local Alignment", "0 0 1 2 3 4 1.0"], "local-alignment rows"),
        ([], [0, 1], ["# Local Alignment", "0 0 1 2 3 4 1.0", "7 0 1 2 3 4 1.0"], "outside 0..1"),
        (["# RawSize = 100 100"], [0], [], "line 2 is not 3 numbers"),
        ([], [0], ["1 2 3"], r"line 4 is not 10 numbers: '1 2 3'"),
        (["# NumPatches = 1.5"], [0], [], "should be a whole number"),
    ],
)
def test_malformed_files_name_the_problem(
    tmp_path: Path, header: list[str], secs: list[int], extra: list[str], match: str
) -> None:
    path = _aln(tmp_path, header, secs, extra=extra)
    with pytest.raises(InputError, match=match) as info:
        read_aln(path)
    assert info.value.path == path


def test_stray_text_line_is_rejected(tmp_path: Path) -> None:
    path = _aln(tmp_path, [], [0, 1])
    path.write_text("Hello\n" + path.read_text())
    with pytest.raises(InputError, match="line 1 is not 10 numbers: 'Hello'"):
        read_aln(path)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_aln(tmp_path / "absent.aln")
    empty = _aln(tmp_path, [], [])
    with pytest.raises(InputError, match="holds no alignment rows"):
        read_aln(empty)


# --- writing from RELION fields


def test_aretomo_from_alignment_round_trip(tmp_path: Path) -> None:
    alignments = [TiltAlignment(t, 85.123456, 0.0, 10.0 * t, -3.3) for t in (-3.0, 0.0, 3.0)]
    aln = aretomo_from_alignment(
        alignments,
        pixel_spacing_angstrom=2.0,
        image_size_px=(4096, 4096),
        sections=[1, 2, 3],
        removed_sections={0: -6.0, 4: 6.0},
    )
    assert aln.raw_size_px == (4096, 4096, 5) and [r.sec for r in aln.rows] == [1, 2, 3]
    # As AreTomo records removed images: position among all five by tilt angle, section, tilt.
    assert aln.dark_frames == (AlnDarkFrame(0, 0, -6.0), AlnDarkFrame(4, 4, 6.0))
    write_aln(tmp_path / "w.aln", aln)
    again = read_aln(tmp_path / "w.aln")  # SEC 1..3 of 5 sections: the dark frames tell 0-based
    assert dataclasses.replace(again, rows=aln.rows) == aln
    back = alignment_from_aretomo(again, pixel_spacing_angstrom=2.0)
    for before, after in zip(alignments, back, strict=True):
        assert after.z_rot_deg == pytest.approx(before.z_rot_deg, abs=5e-5)
        assert after.y_tilt_deg == before.y_tilt_deg
        assert after.shift_x_angstrom == pytest.approx(before.shift_x_angstrom, abs=1e-3)
        assert after.shift_y_angstrom == pytest.approx(before.shift_y_angstrom, abs=1e-3)
    one_based = aretomo_from_alignment(alignments, pixel_spacing_angstrom=2.0, image_size_px=(10, 10), sec_base=1)
    assert [r.sec for r in one_based.rows] == [1, 2, 3] and one_based.sec_base == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sections": [0, 0, 1]}, "not each of 0..N-1 once"),
        ({"sections": [0, 1, 3]}, "not each of 0..N-1 once"),
        ({"sections": [0, 1, 3], "removed_sections": {3: 9.0}}, "not each of 0..N-1 once"),
        ({"sections": [0, 1]}, "2 sections for 3 alignments"),
        ({"pixel_spacing_angstrom": -1.0}, "positive"),
    ],
)
def test_aretomo_from_alignment_rejects(kwargs: dict, match: str) -> None:
    alignments = [TiltAlignment(t, 85.0) for t in (-3.0, 0.0, 3.0)]
    arguments = {"pixel_spacing_angstrom": 1.0, "image_size_px": (10, 10), **kwargs}
    with pytest.raises(ValueError, match=match):
        aretomo_from_alignment(alignments, **arguments)


def test_x_tilt_cannot_be_written_to_aln() -> None:
    with pytest.raises(ValueError, match="X tilt"):
        aretomo_from_alignment(
            [TiltAlignment(0.0, 85.0, x_tilt_deg=0.5)], pixel_spacing_angstrom=1.0, image_size_px=(1, 1)
        )


def test_write_rejects_non_finite(tmp_path: Path) -> None:
    aln = AreTomoAlignment(rows=(AlnRow(sec=0, rot_deg=float("nan"), tx_px=0.0, ty_px=0.0, tilt_deg=0.0),), sec_base=0)
    with pytest.raises(ValueError, match="non-finite"):
        write_aln(tmp_path / "x.aln", aln)
    local = dataclasses.replace(aln, rows=(dataclasses.replace(aln.rows[0], rot_deg=0.0),), num_patches=2)
    with pytest.raises(ValueError, match="local rows"):
        write_aln(tmp_path / "x.aln", dataclasses.replace(local, local_rows=(AlnLocalRow(0, 0, 0, 0, 0, 0, 1.0),)))


# --- rows to tilts


def _tilt(acquisition: int, section: int, angle: float, *, stack: bool, excluded: bool = False) -> TiltImage:
    return TiltImage(
        TiltAcquisition(
            acquisition_index=acquisition,
            section_index=section,
            nominal_tilt_angle_deg=angle,
            pre_exposure_e_per_angstrom2=3.0 * acquisition,
            dose_e_per_angstrom2=3.0,
            stack_path=Path("ts.mrc") if stack else None,
        ),
        exclusion=TiltExclusion("clean: test") if excluded else None,
    )


def test_rows_follow_sec_into_an_acquisition_ordered_stack() -> None:
    # A dose-symmetric stack in acquisition order: sections hold 0, 3, -3, 6, -6 degrees.
    angles = [0.0, 3.0, -3.0, 6.0, -6.0]
    tilts = [_tilt(i, i, angle, stack=True) for i, angle in enumerate(angles)]
    # AreTomo lists rows by tilt angle; SEC (1-based, AreTomo3) points back into the stack.
    rows = tuple(AlnRow(sec=s + 1, rot_deg=85.0, tx_px=0.0, ty_px=0.0, tilt_deg=angles[s]) for s in (4, 2, 0, 1, 3))
    aln = AreTomoAlignment(rows=rows, sec_base=1, raw_size_px=(10, 10, 5))
    paired = tilts_of_aln_rows(tilts, aln, path="ts.aln")
    assert [t.acquisition.nominal_tilt_angle_deg for t in paired] == [row.tilt_deg for row in rows]


def test_rows_of_motion_corrected_series_with_excluded_tilt() -> None:
    tilts = [
        _tilt(0, 0, 0.0, stack=False),
        _tilt(1, 1, 3.0, stack=False),
        _tilt(2, 2, -3.0, stack=False, excluded=True),
    ]
    rows = tuple(AlnRow(sec=s, rot_deg=85.0, tx_px=0.0, ty_px=0.0, tilt_deg=a) for s, a in ((0, 0.0), (1, 3.0)))
    aln = AreTomoAlignment(rows=rows, sec_base=0, raw_size_px=(10, 10, 2))
    assert [t.acquisition.acquisition_index for t in tilts_of_aln_rows(tilts, aln, path="ts.aln")] == [0, 1]
    with pytest.raises(InputError, match="lists 4 views"):
        tilts_of_aln_rows(tilts, dataclasses.replace(aln, raw_size_px=(10, 10, 4)), path="ts.aln")
