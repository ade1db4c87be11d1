"""IMOD tilt-angle and transform files: real files from IMOD, teamtomo, TomoBabel, cryoCAT; error cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tomoprep.errors import InputError
from tomoprep.io.imod import read_tilt_angles, read_tilt_columns, read_xf, write_tilt_angles, write_xf

# --- tilt angles


def test_tlt_written_by_tiltalign(real_data: Path) -> None:
    angles = read_tilt_angles(real_data / "teamtomo-etomofiles" / "TS_001.tlt")
    assert angles.shape == (40,) and angles.dtype == np.float64
    assert (angles[0], angles[-1]) == (-57.12, 59.84)
    assert np.all(np.diff(angles) > 0)


def test_rawtlt(real_data: Path) -> None:
    angles = read_tilt_angles(real_data / "teamtomo-etomofiles" / "TS_001.rawtlt")
    assert angles.shape == (40,)
    assert angles[0] == -60.0
    np.testing.assert_allclose(np.diff(angles), 3.0, atol=0.011)


def test_tlt_with_dose_column(real_data: Path) -> None:
    path = real_data / "tomobabel-cets-imod" / "TS_03.tlt"
    angles = read_tilt_angles(path)
    np.testing.assert_array_equal(angles, np.arange(-57.0, 61.0, 3.0))
    columns = read_tilt_columns(path)
    assert columns.shape == (40, 2)
    np.testing.assert_array_equal(columns[:, 0], angles)
    dose = columns[:, 1]
    # Accumulated dose of a dose-symmetric series, 3 e/Å² per tilt, starting at 0°.
    assert dose[angles == 0.0] == 3.0
    assert len(set(dose)) == 40 and np.all(dose % 3 == 0)


def test_imod_tutorial_tlt(shared_real_data: Path) -> None:
    angles = read_tilt_angles(shared_real_data / "imod-etomo-uitestdata" / "BBa.tlt")
    assert angles.shape == (61,)
    assert (angles[0], angles[-1]) == (65.06, -55.12)


def test_tlt_with_trailing_blank_line(shared_real_data: Path) -> None:
    angles = read_tilt_angles(shared_real_data / "turonova-cryoCAT" / "TS_017" / "017.tlt")
    assert angles.shape == (60,)
    assert (angles[0], angles[-1]) == (-52.01, 65.97)


@pytest.mark.parametrize(
    ("root", "relative"),
    [("real_data", "teamtomo-etomofiles/TS_001.tlt"), ("shared_real_data", "imod-etomo-uitestdata/BBa.tlt")],
)
def test_write_tilt_angles_as_tiltalign(
    request: pytest.FixtureRequest, tmp_path: Path, root: str, relative: str
) -> None:
    source = request.getfixturevalue(root) / relative
    out = tmp_path / "out.tlt"
    write_tilt_angles(out, read_tilt_angles(source))
    assert out.read_bytes() == source.read_bytes()


def test_tilt_angles_round_trip(tmp_path: Path) -> None:
    angles = [-60.0, -0.004, 0.0, 2.499, 59.996, 123.456]
    path = tmp_path / "a.tlt"
    write_tilt_angles(path, angles)
    np.testing.assert_allclose(read_tilt_angles(path), np.round(angles, 2), atol=1e-12)
    assert path.read_text().splitlines()[0] == " -60.00"


def test_tilt_angles_tolerate_crlf_blanks_and_spaces(tmp_path: Path) -> None:
    path = tmp_path / "a.tlt"
    path.write_bytes(b"\r\n  -3.00  \r\n\r\n0.00\t\r\n3.0\r\n\r\n")
    np.testing.assert_array_equal(read_tilt_angles(path), [-3.0, 0.0, 3.0])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1.0\n2.0\nabc\n", "line 3 is not a row of numbers: 'abc'"),
        ("1.0\n\n2.0 x\n", "line 3"),
        ("1.0\nnan\n", "line 2"),
        ("1.0 3\n2.0\n", "line 2 has a different number of columns"),
        ("\n \n", "holds no tilt-angle lines"),
    ],
)
def test_tilt_angle_errors_name_file_and_line(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.tlt"
    path.write_text(text)
    with pytest.raises(InputError, match=match) as info:
        read_tilt_angles(path)
    assert info.value.path == path
    assert "bad.tlt" in str(info.value)


def test_missing_tilt_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_tilt_angles(tmp_path / "absent.tlt")


def test_binary_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "stack.tlt"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(InputError, match="not a text file"):
        read_tilt_angles(path)


def test_write_tilt_angles_rejects_non_finite(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="finite"):
        write_tilt_angles(tmp_path / "a.tlt", [0.0, float("nan")])


# --- transforms


def test_xf_layout(real_data: Path) -> None:
    xf = read_xf(real_data / "teamtomo-etomofiles" / "TS_001.xf")
    assert xf.shape == (40, 2, 3) and xf.dtype == np.float64
    # First line: A11 A12 A21 A22 DX DY = 0.1020875 0.9947760 -0.9947760 0.1020875 2.395 -3.871
    np.testing.assert_array_equal(xf[0], [[0.1020875, 0.9947760, 2.395], [-0.9947760, 0.1020875, -3.871]])
    # tiltalign solved rotations only here: every matrix is a rotation by about 84 degrees.
    np.testing.assert_allclose(np.linalg.det(xf[:, :, :2]), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("root", "relative"),
    [
        ("real_data", "teamtomo-etomofiles/TS_001.xf"),
        ("real_data", "tomobabel-cets-imod/TS_03.xf"),
        ("shared_real_data", "imod-etomo-uitestdata/BBa.xf"),
        ("shared_real_data", "imod-etomo-uitestdata/BBa.tltxf"),
    ],
)
def test_xf_round_trip_is_byte_identical(
    request: pytest.FixtureRequest, tmp_path: Path, root: str, relative: str
) -> None:
    source = request.getfixturevalue(root) / relative
    xf = read_xf(source)
    out = tmp_path / "out.xf"
    write_xf(out, xf)
    assert out.read_bytes() == source.read_bytes()
    np.testing.assert_array_equal(read_xf(out), xf)


def test_xf_round_trip_rounds_to_imod_precision(tmp_path: Path) -> None:
    xf = np.random.default_rng(1).normal(scale=[[1, 1, 300], [1, 1, 300]], size=(7, 2, 3))
    path = tmp_path / "r.xf"
    write_xf(path, xf)
    back = read_xf(path)
    np.testing.assert_allclose(back[:, :, :2], xf[:, :, :2], atol=5e-8)
    np.testing.assert_allclose(back[:, :, 2], xf[:, :, 2], atol=5e-4)


def test_xf_line_with_wrong_count_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.xf"
    path.write_text("1 0 0 1 0 0\r\n\r\n1 0 0 1 0\r\n")
    with pytest.raises(InputError, match=r"bad\.xf.*line 3 holds 5 numbers"):
        read_xf(path)


def test_xf_non_numeric_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.xf"
    path.write_text("1 0 0 1 0 0\n1 0 0 1 0 zero\n")
    with pytest.raises(InputError, match="line 2 is not a row of numbers"):
        read_xf(path)


def test_local_alignment_file_is_not_an_xf(shared_real_data: Path) -> None:
    with pytest.raises(InputError, match="line 1 holds 9 numbers"):
        read_xf(shared_real_data / "imod-etomo-uitestdata" / "BBalocal.xf")


@pytest.mark.parametrize(
    ("xf", "match"),
    [
        (np.zeros((3, 3, 3)), "shape"),
        (np.zeros((2, 6)), "shape"),
        (np.full((1, 2, 3), np.inf), "non-finite"),
        (np.array([[[1000.0, 0, 0], [0, 1, 0]]]), "do not fit"),
        (np.array([[[1.0, 0, -1e8], [0, 1, 0]]]), "do not fit"),
    ],
)
def test_write_xf_rejects_bad_input(tmp_path: Path, xf: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        write_xf(tmp_path / "out.xf", xf)
