"""Reading CTF estimates of other programs: IMOD ctfplotter (five real flavours), CTFFIND 4.1.8 (real), AreTomo.

The AreTomo ``_CTF.txt`` files are written here in the layout AreTomo2/3 print (their header line and row
format); no real one is among the test files.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tomoprep.errors import InputError
from tomoprep.io.ctf_files import read_aretomo_ctf, read_ctf_file, read_ctffind, read_ctfplotter

IMOD = "tomobabel-cets-imod"
FLAVOURS = [
    "TS_03_plain_estimation.defocus", "TS_03_only_astigmatism.defocus", "TS_03_only_phase_shift.defocus",
    "TS_03_astigmatism_and_phase_shift.defocus", "TS_03_astigmatism_phase_shift_and_cutoff_freq.defocus",
]  # fmt: skip


@pytest.mark.parametrize("name", FLAVOURS)
def test_every_ctfplotter_flavour_gives_40_views_in_angstrom(real_data: Path, name: str) -> None:
    ctf = read_ctfplotter(real_data / IMOD / name)
    assert ctf.program == "IMOD ctfplotter"
    assert [e.index for e in ctf.estimates] == list(range(40))
    assert ctf.estimates[0].tilt_deg == -57.0 and ctf.estimates[-1].tilt_deg == 60.0
    # TS_03 (EMPIAR-10164) was taken at about 1.4 µm underfocus: nm became Å.
    assert all(9000.0 < e.defocus_u_angstrom < 20000.0 for e in ctf.estimates)
    assert all(9000.0 < e.defocus_v_angstrom < 20000.0 for e in ctf.estimates)


def test_ctfplotter_columns_land_in_their_fields(real_data: Path) -> None:
    plain = read_ctfplotter(real_data / IMOD / "TS_03_plain_estimation.defocus").estimates
    assert plain[0].defocus_u_angstrom == 13600.0 == plain[0].defocus_v_angstrom
    assert plain[0].astigmatism_angle_deg == 0.0 and plain[0].phase_shift_deg == 0.0
    astigmatic = read_ctfplotter(real_data / IMOD / "TS_03_only_astigmatism.defocus").estimates[0]
    assert (astigmatic.defocus_u_angstrom, astigmatic.defocus_v_angstrom) == pytest.approx((16516.0, 12067.0))
    assert astigmatic.astigmatism_angle_deg == pytest.approx(31.76) and astigmatic.phase_shift_deg == 0.0
    phase = read_ctfplotter(real_data / IMOD / "TS_03_only_phase_shift.defocus").estimates[1]
    assert phase.defocus_u_angstrom == pytest.approx(9870.0) and phase.phase_shift_deg == pytest.approx(45.94)
    full = read_ctfplotter(real_data / IMOD / "TS_03_astigmatism_phase_shift_and_cutoff_freq.defocus").estimates[0]
    assert (full.defocus_u_angstrom, full.defocus_v_angstrom) == pytest.approx((13314.0, 9175.0))
    assert full.astigmatism_angle_deg == pytest.approx(32.43) and full.phase_shift_deg == pytest.approx(29.08)


def test_ctfplotter_radian_and_inverted_tilt_flags(real_data: Path, tmp_path: Path) -> None:
    """Flags 2, 8 and 16 (angles in radians, tilts inverted) give the same estimates as the real file."""
    source = real_data / IMOD / "TS_03_astigmatism_and_phase_shift.defocus"
    lines = source.read_text().splitlines()
    rows = []
    for line in lines[1:]:
        v = line.split()
        rows.append(f"{v[0]} {v[1]} {-float(v[2])} {-float(v[3])} {v[4]} {v[5]} "
                    f"{math.radians(float(v[6]))!r} {math.radians(float(v[7]))!r}")  # fmt: skip
    converted = tmp_path / "radians.defocus"
    converted.write_text("\n".join([f"{5 + 2 + 8 + 16} 0 0.0 0.0 0.0 3", *rows]) + "\n")
    for mine, theirs in zip(read_ctfplotter(converted).estimates, read_ctfplotter(source).estimates, strict=True):
        assert mine.astigmatism_angle_deg == pytest.approx(theirs.astigmatism_angle_deg, abs=1e-9)
        assert mine.phase_shift_deg == pytest.approx(theirs.phase_shift_deg, abs=1e-9)
        assert mine.tilt_deg == theirs.tilt_deg and mine.defocus_u_angstrom == theirs.defocus_u_angstrom


def test_a_ctfplotter_row_over_several_views_gives_each_its_estimate(tmp_path: Path) -> None:
    path = tmp_path / "ranges.defocus"
    path.write_text("1 2 -6.0 -3.0 2500 2\n3 5 0.0 6.0 2600\n")
    estimates = read_ctfplotter(path).estimates
    assert [e.index for e in estimates] == [0, 1, 2, 3, 4]
    assert [e.defocus_u_angstrom for e in estimates] == [25000.0, 25000.0, 26000.0, 26000.0, 26000.0]
    assert estimates[0].tilt_deg == -4.5


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1 1 -57.0 -57.0 1360\n2 2 -54.0 -54.0 1243\n", "version"),
        ("1 0 0.0 0.0 0.0 3\n1 1 -57.0 -57.0 1651.6 1206.7\n", "call for 7"),
        ("64 0 0.0 0.0 0.0 3\n1 1 -57.0 -57.0 1651.6\n", "unknown flags"),
        ("1 1 -57.0 -57.0 abc 2\n", "not a row of numbers"),
    ],
)
def test_bad_defocus_files_name_the_file_and_the_problem(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.defocus"
    path.write_text(text)
    with pytest.raises(InputError, match=match) as caught:
        read_ctfplotter(path)
    assert caught.value.path == path and caught.value.fix


def test_ctffind_4_1_8_output(shared_real_data: Path) -> None:
    ctf = read_ctffind(shared_real_data / "turonova-cryoCAT" / "TS_017" / "017_ctffind4.txt")
    assert ctf.program == "CTFFIND 4.1.8"
    assert ctf.optics == (1.327, 300.0, 2.7, 0.07)
    assert [e.index for e in ctf.estimates] == list(range(60))
    first = ctf.estimates[0]
    assert (first.defocus_u_angstrom, first.defocus_v_angstrom) == pytest.approx((14477.870117, 13500.001953))
    assert first.astigmatism_angle_deg == pytest.approx(75.000012) and first.phase_shift_deg == 0.0
    assert first.figure_of_merit == pytest.approx(0.001071)
    assert first.fit_resolution_angstrom == pytest.approx(12.144508)
    assert math.isnan(first.tilt_deg)
    assert read_ctf_file(shared_real_data / "turonova-cryoCAT" / "TS_017" / "017_ctffind4.txt").program == ctf.program


def test_ctffind5_extra_columns_are_read_by_their_names(tmp_path: Path) -> None:
    path = tmp_path / "ctffind5.txt"
    path.write_text(
        "# Output from CTFFind version 5.0.2, run on 2024-05-01 10:00:00\n"
        "# Input file: /data/TS_01.mrc ; Number of micrographs: 2\n"
        "# Pixel size: 2.000 Angstroms ; acceleration voltage: 300.0 keV ; spherical aberration: 2.70 mm ;"
        " amplitude contrast: 0.07\n"
        "# Columns: #1 - micrograph number; #2 - defocus 1 [Angstroms]; #3 - defocus 2; #4 - azimuth of "
        "astigmatism; #5 - additional phase shift [radians]; #6 - cross correlation; #7 - spacing (in Angstroms) "
        "up to which CTF rings were fit successfully; #8 - Estimated tilt axis angle; #9 - Estimated tilt angle ;"
        " #10 Estimated sample thickness (in Angstroms)\n"
        "1.000000 30500.0 30100.0 12.5 1.570796 0.120 6.5 84.0 -30.5 1520.0\n"
        "2.000000 30700.0 30300.0 13.0 0.000000 0.110 6.9 84.0 -27.5 1490.0\n"
    )
    ctf = read_ctffind(path)
    assert ctf.program == "CTFFIND 5.0.2" and len(ctf.estimates) == 2
    assert ctf.estimates[0].phase_shift_deg == pytest.approx(90.0, abs=1e-4)
    assert ctf.estimates[0].tilt_deg == -30.5 and ctf.estimates[1].fit_resolution_angstrom == 6.9


def _aretomo3_file(path: Path, hand: int) -> Path:
    header = ("# Columns: #1 micrograph number; #2 - defocus 1 [A]; #3 - defocus 2; #4 - azimuth of astigmatism; "
              "#5 - additional phase shift [radian]; #6 - cross correlation; #7 - spacing (in Angstroms) up to which "
              "CTF rings were fit successfully; #8 - dfHand\n")  # fmt: skip
    rows = [(1, 38234.17, 37467.33, 44.90, 0.5236, 0.0357, 10.7652), (2, 38301.50, 37520.10, 45.10, 0.5300, 0.0341,
                                                                        11.2000)]  # fmt: skip
    text = header + "".join(f"{i:4d}   {a:8.2f}  {b:8.2f}  {c:8.2f}  {d:9.4f}  {e:8.4f}  {f:8.4f}  {hand:3d}\n"
                            for i, a, b, c, d, e, f in rows)  # fmt: skip
    path.write_text(text)
    return path


def test_aretomo3_ctf_txt_phase_in_radians_and_hand(tmp_path: Path) -> None:
    ctf = read_aretomo_ctf(_aretomo3_file(tmp_path / "TS_01_CTF.txt", -1))
    assert ctf.program == "AreTomo" and ctf.hand == -1
    first = ctf.estimates[0]
    assert first.index == 0 and first.defocus_u_angstrom == 38234.17 and first.defocus_v_angstrom == 37467.33
    assert first.phase_shift_deg == pytest.approx(30.0, abs=0.01)
    assert first.fit_resolution_angstrom == 10.7652 and first.figure_of_merit == 0.0357
    assert read_ctf_file(tmp_path / "TS_01_CTF.txt").program == "AreTomo"


def test_aretomo2_ctf_txt_without_hand(tmp_path: Path) -> None:
    path = tmp_path / "TS_01_CTF.txt"
    path.write_text("# Columns: #1 micrograph number; #2 - defocus 1 [A]; #3 - defocus 2; #4 - azimuth of "
                    "astigmatism; #5 - additional phase shift [radian]; #6 - cross correlation; #7 - spacing (in "
                    "Angstroms) up to which CTF rings were fit successfully\n"
                    "   1   50016.20   48830.05    57.55     0.00    0.02228   10.0000\n")  # fmt: skip
    ctf = read_aretomo_ctf(path)
    assert ctf.hand is None and ctf.estimates[0].astigmatism_angle_deg == 57.55


def test_a_table_row_with_a_wrong_column_count_is_an_error(tmp_path: Path) -> None:
    path = _aretomo3_file(tmp_path / "TS_01_CTF.txt", 1)
    path.write_text(path.read_text() + "   3   38000.00  37000.00\n")
    with pytest.raises(InputError, match="line 4 has 3 values"):
        read_aretomo_ctf(path)
