"""Written mdoc files read back through tomoprep's mdoc reader, in both flavours and for axes of both signs."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tomoprep.io.mdoc import detect_flavour, read_mdoc
from tomoprep.simulate.mdoc_writer import (
    MdocFlavour,
    MdocHeader,
    MdocTiltRecord,
    format_date_time,
    mdoc_text,
    movie_name,
    windows_frame_path,
    write_mdoc,
)

START = datetime(2024, 5, 14, 9, 30, 5)
ANGLES = [0.00117, 2.99863, 5.99912, -3.00128, -6.00051]


def _records(flavour: MdocFlavour) -> list[MdocTiltRecord]:
    records = []
    for k, angle in enumerate(ANGLES):
        name = movie_name("TS_07", k, round(angle), ".eer")
        records.append(
            MdocTiltRecord(
                z_value=k,
                tilt_angle_deg=angle,
                exposure_dose_e_per_angstrom2=3.0,
                prior_record_dose_e_per_angstrom2=3.0 * k,
                defocus_um=-3.41,
                target_defocus_um=-3.5,
                exposure_time_s=1.2,
                date_time=START + timedelta(seconds=41 * k),
                sub_frame_path=windows_frame_path(name, flavour=flavour),
                num_sub_frames=300,
                gain_reference="gain_A.gain",
            )
        )
    return records


def _write(tmp_path: Path, flavour: MdocFlavour, axis: float) -> Path:
    header = MdocHeader("TS_07.mrc", (4096, 4096), 1.7, 300.0, axis, START)
    path = tmp_path / "TS_07.mrc.mdoc"
    write_mdoc(path, header, _records(flavour), flavour=flavour)
    return path


@pytest.mark.parametrize("flavour", ["serialem", "tomo5"])
@pytest.mark.parametrize("axis", [85.0, -95.0, 175.0, -4.5])
def test_round_trip_through_read_mdoc(tmp_path: Path, flavour: MdocFlavour, axis: float) -> None:
    path = _write(tmp_path, flavour, axis)
    series = read_mdoc(path)
    assert detect_flavour(path) == flavour and series.name == "TS_07"
    assert series.tilt_axis_angle_deg == pytest.approx(axis, abs=0.006)
    assert series.pixel_spacing_angstrom == pytest.approx(1.7) and series.voltage_kv == 300
    digits = 2 if flavour == "tomo5" else 5
    assert [t.tilt_angle_deg for t in series.tilts] == pytest.approx([round(a, digits) for a in ANGLES], abs=1e-5)
    assert [t.prior_record_dose_e_per_angstrom2 for t in series.tilts] == [0, 3, 6, 9, 12]
    assert {t.exposure_dose_e_per_angstrom2 for t in series.tilts} == {3.0}
    times = [t.date_time for t in series.tilts]
    assert times == [START + timedelta(seconds=41 * k) for k in range(5)]
    assert [t.movie_name for t in series.tilts] == [f"TS_07_{k:03d}_{a}.eer" for k, a in
                                                    enumerate(["0.0", "3.0", "6.0", "-3.0", "-6.0"])]  # fmt: skip
    assert {t.num_sub_frames for t in series.tilts} == {300}
    assert {t.target_defocus_um for t in series.tilts} == {-3.5}
    assert {t.gain_reference for t in series.tilts} == {"gain_A.gain"}


def test_serialem_layout(tmp_path: Path) -> None:
    raw = _write(tmp_path, "serialem", 85.0).read_bytes()
    assert raw.count(b"\r\n") == raw.count(b"\n")  # CRLF throughout, as SerialEM on Windows writes
    text = raw.decode()
    assert "[T =     Tilt axis angle = 85, binning = 1  spot = 8  camera = 0]" in text
    assert "RotationAngle = 175\r\n" in text
    assert "DateTime = 14-May-24  09:30:05" in text
    assert "SubFramePath = D:\\DATA\\tomoprep_sim\\frames\\TS_07_000_0.0.eer" in text
    assert "TiltAngle = 0.00117\r\n" in text


def test_tomo5_layout() -> None:
    header = MdocHeader("Position_1.mrc", (4096, 4096), 2.09, 300.0, 85.84, START)
    text = mdoc_text(header, _records("tomo5")[:1], flavour="tomo5")
    # The title carries Tomo5's own angle, -A - 90; the sections carry A itself (conventions.py).
    assert "[T =   TiltAxisAngle = -175.84  Binning = 1  SpotSize = 8]" in text
    assert "RotationAngle = 85.84\n" in text
    assert text.startswith("DataMode = 1\nImageSize = 4096 4096\n")
    assert "[T = Tomography: " in text and "Voltage = 300.00" in text
    assert "DateTime = 14-May-2024  09:30:05" in text and "TiltAngle = 0.00\n" in text
    assert "SubFramePath = \\\\192.168.12.2\\DoseFractions\\" in text


def test_date_time_and_movie_names() -> None:
    moment = datetime(2015, 11, 3, 15, 21, 8)
    assert format_date_time(moment, flavour="serialem") == "03-Nov-15  15:21:08"
    assert format_date_time(moment, flavour="tomo5") == "03-Nov-2015  15:21:08"
    assert movie_name("TS_01", 3, -6.0, ".eer") == "TS_01_003_-6.0.eer"
    assert movie_name("TS_01", 0, -0.0, ".tif") == "TS_01_000_0.0.tif"
