"""Tests of tomoprep.io.mdoc on the real mdocs of tests/data/real and ../shared/data/real."""

from __future__ import annotations

import logging
import random
import re
from datetime import datetime
from pathlib import Path

import mdocfile
import pytest

from tomoprep.errors import MdocError
from tomoprep.io.mdoc import axis_disagreement, detect_flavour, read_mdoc, read_mdocs

TESTS = Path(__file__).parents[1]
SHIPPED = sorted((TESTS / "data" / "real").rglob("*.mdoc"))
SHARED_FOLDER = TESTS.parent.parent / "shared" / "data" / "real"
SHARED = sorted(SHARED_FOLDER.rglob("*.mdoc")) if SHARED_FOLDER.is_dir() else []
ALL_REAL = SHIPPED + SHARED
TS_01 = "alisterburt-tomo_preprocessing/TS_01.mrc.mdoc"


def _id(path: Path) -> str:
    folder = "shared" if path in SHARED else "shipped"
    return f"{folder}/{path.parent.name}/{path.name}"


# A Tomo5 mdoc laid out as Tomography 5 writes it ("Tomography:" and "TiltAxisAngle" titles, two decimals,
# trailing blanks, 4-digit years, NaN for unknowns), with the values of the file quoted in AreTomo3 issue #61.
TOMO5_MDOC = """\
DataMode = 6
ImageSize = 4096 4096
ImageFile = Position_1.mrc
PixelSpacing = 2.09
Voltage = 300.00

[T = Tomography: TITAN52337740    30-Sep-2025  14:55:42]

[T =   TiltAxisAngle = -175.84  Binning = 2  SpotSize = 6]
{sections}"""
TOMO5_SECTION = """
[ZValue = {z}]
TiltAngle = {angle:.2f}
StagePosition = 112.64 -658.25{sp}
ExposureDose = 0.57
PixelSpacing = 2.09
Defocus = -3.41
RotationAngle = 85.84
ExposureTime = 4.61
Binning = 2
CountsPerElectron = NaN
TargetDefocus = -3.00
PriorRecordDose = {prior:.2f}
SubFramePath = \\\\192.168.12.2\\DoseFractions\\Position_1_{n:03d}_{angle:.2f}_{stamp}_Fractions.mrc
NumSubFrames = 10
FrameDosesAndNumber = 0.06 10{sp}{sp}
DateTime = 30-Sep-2025  14:{minute:02d}:42
ChannelName ={sp}
"""


def _tomo5_text() -> str:
    angles = [0.0, 3.0, -3.0, 6.0]
    sections = [
        TOMO5_SECTION.format(
            z=z, angle=a, prior=0.57 * z, n=z + 1, minute=55 + z, sp=" ", stamp=f"20250930_1455{z + 1:02d}"
        )
        for z, a in enumerate(angles)
    ]
    return TOMO5_MDOC.format(sections="".join(sections))


def _write(path: Path, text: str, newline: str = "\n") -> Path:
    path.write_bytes(text.replace("\n", newline).encode())
    return path


def _ts01_text(real_data: Path) -> str:
    return (real_data / TS_01).read_bytes().decode().replace("\r\n", "\n")


def _sections(text: str) -> tuple[str, list[str]]:
    """Split an mdoc text into the part before the first [ZValue] and the [ZValue] sections."""
    head, *sections = re.split(r"(?=^\[ZValue)", text, flags=re.MULTILINE)
    return head, sections


@pytest.mark.parametrize("path", ALL_REAL, ids=_id)
def test_every_real_mdoc_parses(path: Path) -> None:
    if path.name == "montage_section.mdoc":
        # Documented behaviour: a montage (62 pieces at one Z) is refused with an error that says so.
        with pytest.raises(MdocError, match="montage") as raised:
            read_mdoc(path)
        assert str(path) in str(raised.value)
        return
    series = read_mdoc(path)
    assert series.tilts and series.sources == (path,)
    assert all(t.source == path for t in series.tilts)
    assert series.flavour == detect_flavour(path) == "serialem"


@pytest.mark.parametrize("path", [p for p in ALL_REAL if p.name != "montage_section.mdoc"], ids=_id)
def test_agrees_with_mdocfile(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="mdocfile")  # it warns about every key it has no field for
    frame = mdocfile.read(path)
    ours = sorted(read_mdoc(path).tilts, key=lambda t: t.section_index)
    kind = "FrameSet" if "FrameSet" in frame.columns else "ZValue"
    rows = frame[frame[kind].notna()]  # frame-set files: mdocfile also lists the per-frame blocks as rows
    assert [t.tilt_angle_deg for t in ours] == pytest.approx(list(rows["TiltAngle"]))


def test_empiar_10164_ts01(real_data: Path) -> None:
    series = read_mdoc(real_data / TS_01)
    assert series.name == "TS_01" and len(series.tilts) == 41
    assert series.pixel_spacing_angstrom == pytest.approx(5.4)
    assert series.image_size == (924, 958)
    assert series.tilt_axis_angle_deg == pytest.approx(85.3)
    assert series.tilt_axis_source == "title line 'Tilt axis angle = 85.3'"
    first, second = series.tilts[:2]
    assert first.tilt_angle_deg == pytest.approx(0.001, abs=1e-4) and first.section_index == 0
    assert second.sub_frame_path == r"D:\DATA\Flo\HGK149_20151130\frames\TS_01_001_3.0.mrc"
    assert second.movie_name == "TS_01_001_3.0.mrc"
    assert first.target_defocus_um == -4 and first.defocus_um == pytest.approx(2.68083)
    assert first.rotation_angle_deg == pytest.approx(175.3) and first.num_sub_frames == 8
    assert first.date_time == datetime(2015, 11, 30, 15, 21, 38)
    times = [t.date_time or datetime.min for t in series.tilts]
    assert times == sorted(times) and [t.section_index for t in series.tilts] == list(range(41))
    assert first.extra["MinMaxMean"] == "5 1403 623.699" and "TiltAngle" not in first.extra
    raw = (real_data / TS_01).read_bytes()
    assert raw.count(b"\r\n") == raw.count(b"\n")  # the file really is CRLF


@pytest.mark.parametrize("path", [p for p in ALL_REAL if p.name != "montage_section.mdoc"], ids=_id)
def test_real_mdocs_agree_on_their_tilt_axis(path: Path) -> None:
    assert axis_disagreement(read_mdoc(path)) is None


def test_tilts_with_another_rotation_angle_are_reported(real_data: Path, tmp_path: Path) -> None:
    """The series keeps its title's axis; tilts whose RotationAngle says otherwise are counted and the worst named."""
    head, sections = _sections(_ts01_text(real_data))
    sections[7] = sections[7].replace("RotationAngle = 175.3", "RotationAngle = 178.8")
    sections[9] = sections[9].replace("RotationAngle = 175.3", "RotationAngle = 175.9")  # within 1°: agrees
    series = read_mdoc(_write(tmp_path / "TS_01.mrc.mdoc", head + "".join(sections)))
    assert series.tilt_axis_angle_deg == pytest.approx(85.3)
    warning = axis_disagreement(series)
    assert warning is not None and warning.startswith("1 of 41 tilts' RotationAngle give another tilt axis")
    assert "up to 88.80° (section 7 of TS_01.mrc.mdoc)" in warning and "keeps 85.30°" in warning


def test_crlf_and_lf_give_the_same_tilts(real_data: Path, tmp_path: Path) -> None:
    crlf = read_mdoc(real_data / TS_01)
    lf = read_mdoc(_write(tmp_path / "TS_01.mrc.mdoc", _ts01_text(real_data)))
    strip = [dict(vars(t), source=None) for t in lf.tilts]
    assert strip == [dict(vars(t), source=None) for t in crlf.tilts]


def test_key_order_does_not_matter(real_data: Path, tmp_path: Path) -> None:
    # AreTomo3 2.3.0 skipped every other tilt when ExposureTime came before SubFramePath (AreTomo3#67).
    head, sections = _sections(_ts01_text(real_data))
    rng = random.Random(0)
    shuffled = []
    for section in sections:
        header, *lines = [line for line in section.splitlines() if line]
        rng.shuffle(lines)
        shuffled.append("\n".join([header, *lines]) + "\n\n")
    series = read_mdoc(_write(tmp_path / "TS_01.mrc.mdoc", head + "".join(shuffled)))
    reference = read_mdoc(real_data / TS_01)
    assert [dict(vars(t), source=None) for t in series.tilts] == [dict(vars(t), source=None) for t in reference.tilts]


def test_title_variants(real_data: Path, tmp_path: Path) -> None:
    # A closing bracket wrapped onto its own line (seen in 3dem/relion#1135), and an unbracketed title holding
    # two "=" (frame-set style), which mdocfile cannot read.
    text = re.sub(r"(\[T = SerialEM: .*?) *\]", r"\1\n    ]", _ts01_text(real_data))
    text = re.sub(r"\[T = +(Tilt axis angle = .*)\]", r"T = \1", text)
    series = read_mdoc(_write(tmp_path / "TS_01.mrc.mdoc", text))
    assert series.title_lines[1] == "Tilt axis angle = 85.3, binning = 4  spot = 8  camera = 2"
    assert series.tilt_axis_angle_deg == pytest.approx(85.3) and len(series.tilts) == 41


def test_single_piece_montage_is_a_tilt_series(real_data: Path, tmp_path: Path) -> None:
    # SerialEM can acquire a tilt series as a 1x1 "montage" (Montage = 1, one piece per Z): that is still a
    # tilt series; the [MontSection] summaries are ignored.
    head, sections = _sections(_ts01_text(real_data))
    pieces = [re.sub(r"(\[ZValue = (\d+)\]\n)", r"\1PieceCoordinates = 0 0 \2\n", s) for s in sections]
    text = head.replace("DataMode = 1", "Montage = 1\nDataMode = 1") + "".join(pieces)
    series = read_mdoc(_write(tmp_path / "TS_01.mrc.mdoc", text + "\n[MontSection = 0]\nTiltAngle = 0\n"))
    assert len(series.tilts) == 41 and series.tilts[3].extra["PieceCoordinates"] == "0 0 3"


def test_017_dose_symmetric(shared_real_data: Path) -> None:
    series = read_mdoc(shared_real_data / "turonova-cryoCAT/TS_017/017.mdoc")
    assert len(series.tilts) == 60 and series.name == "017"
    assert series.tilt_axis_angle_deg == pytest.approx(82.9)
    assert series.voltage_kv == 300
    first = series.tilts[0]
    assert first.frame_doses_and_number == ((0.023687, 3), (0.035531, 7))
    assert first.prior_record_dose_e_per_angstrom2 == pytest.approx(134.379)
    assert first.dose_rate_e_per_unbinned_pixel_per_s == pytest.approx(4.31403)
    # SerialEM sorted this dose-symmetric stack by tilt angle after acquisition: tilts stay in stack order,
    # and DateTime gives the acquisition order, along which the prior dose grows from the 8° start.
    assert [t.section_index for t in series.tilts] == list(range(60))
    assert first.tilt_angle_deg == pytest.approx(-52.0064)
    acquired = sorted(series.tilts, key=lambda t: t.date_time or datetime.min)
    assert acquired[0].section_index == 30 and acquired[0].tilt_angle_deg == pytest.approx(7.97729)
    priors = [t.prior_record_dose_e_per_angstrom2 or 0.0 for t in acquired]
    assert priors == sorted(priors) and priors[0] == pytest.approx(0.0728312)


def test_frame_set_mdocs_group_into_one_series(shared_real_data: Path) -> None:
    paths = sorted((shared_real_data / "turonova-cryoCAT/frames_mdoc").glob("*.mdoc"))
    random.Random(1).shuffle(paths)
    series, errors = read_mdocs(paths)
    assert errors == [] and len(series) == 1
    ts = series[0]
    assert ts.name == "TS_019" and len(ts.tilts) == 61 and len(ts.sources) == 61
    assert [t.section_index for t in ts.tilts] == list(range(61))  # the index in the names: acquisition order
    times = [t.date_time or datetime.min for t in ts.tilts]
    assert times == sorted(times) and times[-1] == datetime(2023, 6, 7, 0, 17, 28)  # across midnight
    assert [t.movie_name for t in ts.tilts[:2]] == ["TS_019_0000_8.0.mrc", "TS_019_0001_10.0.mrc"]
    assert ts.tilt_axis_angle_deg == pytest.approx(82.9)
    assert ts.tilt_axis_source == "RotationAngle 172.9 (SerialEM, -90)"
    assert ts.pixel_spacing_angstrom == pytest.approx(1.971) and ts.voltage_kv == 300
    assert ts.title_lines == ("SerialEM: Titan Krios G4 D3946 at MPI BP                06-Jun-23  12:49:49",)


def test_frame_set_with_per_frame_blocks(real_data: Path) -> None:
    series = read_mdoc(real_data / "teamtomo-mdocfile/frame_set_multiple.mdoc")
    (tilt,) = series.tilts  # the 20 [ZValue] blocks after the [FrameSet] are frames, not tilts
    assert tilt.tilt_angle_deg == pytest.approx(32.986) and tilt.num_sub_frames == 243
    assert tilt.gain_reference == "SuperRef_s_mmm_00000_-15.0_Oct08_01.59.24.dm4"
    assert tilt.binning == 0.5 and tilt.voltage_kv == 300
    assert len(tilt.frame_sections) == 20
    assert tilt.frame_sections[1]["FrameTSStartEndFrames"] == "22 34"
    assert series.title_lines[0].startswith("SerialEM: UMass_Krios")  # the unbracketed "T = " title
    assert series.tilt_axis_angle_deg == pytest.approx(178.414 - 90)


@pytest.mark.parametrize("cut", ["mid_line", "mid_header", "line_end"])
def test_truncated_mdoc_is_refused(real_data: Path, tmp_path: Path, cut: str) -> None:
    text = _ts01_text(real_data)
    start = text.index("[ZValue = 20]")
    end = {
        "mid_line": text.index("TiltAngle", start) + 14,
        "mid_header": start + 9,
        "line_end": text.index("RotationAngle", start),
    }[cut]
    path = _write(tmp_path / "TS_01.mrc.mdoc", text[:end] + ("\n" if cut == "mid_header" else ""))
    with pytest.raises(MdocError) as raised:
        read_mdoc(path)
    message = str(raised.value)
    assert str(path) in message and "Fix:" in message
    assert "truncated" in message or "cut" in message


def test_complete_mdoc_without_final_line_break_is_read(real_data: Path, tmp_path: Path) -> None:
    text = _ts01_text(real_data).rstrip("\r\n")
    series = read_mdoc(_write(tmp_path / "TS_01.mrc.mdoc", text))
    assert len(series.tilts) == 41 and series.tilts[-1].date_time is not None


@pytest.mark.parametrize(
    "content",
    [b"hello world\nthis is not an mdoc\n", b"", b"\x00\x01\x02\x03", b"PixelSpacing = 5.4\nImageSize = 10 10\n"],
)
def test_garbage_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "garbage.mdoc"
    path.write_bytes(content)
    with pytest.raises(MdocError) as raised:
        read_mdoc(path)
    assert str(path) in str(raised.value) and "Fix:" in str(raised.value)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("TiltAngle = 3.00113", "TiltAngle = 3.0o113", "not a number"),
        ("DateTime = 30-Nov-15  15:22:37", "DateTime = 2015/11/30 15:22:37", "DateTime"),
        ("[ZValue = 1]", "[ZValue = 0]", "more than once"),
        (
            "NumSubFrames = 8\nDateTime = 30-Nov-15  15:22:37",
            "NumSubFrames = 8\nNumSubFrames = 9\nDateTime = 30-Nov-15  15:22:37",
            "twice",
        ),
    ],
)
def test_bad_values_name_file_section_and_fix(
    real_data: Path, tmp_path: Path, old: str, new: str, expected: str
) -> None:
    text = _ts01_text(real_data)
    assert old in text
    path = _write(tmp_path / "TS_01.mrc.mdoc", text.replace(old, new, 1))
    with pytest.raises(MdocError, match=expected) as raised:
        read_mdoc(path)
    assert str(path) in str(raised.value) and "Fix:" in str(raised.value)


def test_one_bad_file_does_not_stop_the_others(real_data: Path, tmp_path: Path) -> None:
    bad = _write(tmp_path / "TS_02.mrc.mdoc", _ts01_text(real_data)[:5000])
    series, errors = read_mdocs([bad, real_data / TS_01, real_data / "nist-etspy/test_000.mrc.mdoc"])
    assert [s.name for s in series] == ["TS_01", "test_000"]
    assert len(errors) == 1 and errors[0].path == bad and str(bad) in str(errors[0])


def test_four_digit_years_and_old_serialem_without_version(real_data: Path, tmp_path: Path) -> None:
    text = _ts01_text(real_data).replace("30-Nov-15  15:21:38", "30-Nov-2015  15:21:38")
    assert "Version" not in text  # EMPIAR-10164 was written by a SerialEM that wrote no Version line
    series = read_mdoc(_write(tmp_path / "TS_01.mrc.mdoc", text))
    assert series.tilts[0].date_time == datetime(2015, 11, 30, 15, 21, 38)


def test_tomo5_mdoc(tmp_path: Path) -> None:
    path = _write(tmp_path / "Position_1.mdoc", _tomo5_text(), newline="\r\n")
    assert detect_flavour(path) == "tomo5"
    series = read_mdoc(path)
    assert series.name == "Position_1" and series.flavour == "tomo5" and len(series.tilts) == 4
    # Tomo5's title says TiltAxisAngle = -175.84; CCW from Y that is -(-175.84) - 90 = 85.84, which is also
    # the RotationAngle Tomo5 writes in every section.
    assert series.tilt_axis_angle_deg == pytest.approx(85.84)
    assert series.tilt_axis_source == "title line 'TiltAxisAngle = -175.84' (Tomo5, -θ-90)"
    tilt = series.tilts[1]
    assert tilt.date_time == datetime(2025, 9, 30, 14, 56, 42)
    assert tilt.movie_name == "Position_1_002_3.00_20250930_145502_Fractions.mrc"
    assert tilt.frame_doses_and_number == ((0.06, 10),)
    assert tilt.extra["CountsPerElectron"] == "NaN" and tilt.extra["ChannelName"] == ""
    assert series.voltage_kv == 300 and series.pixel_spacing_angstrom == pytest.approx(2.09)


def test_tomo5_axis_from_rotation_angle_and_new_title(tmp_path: Path) -> None:
    # Tomography 5.24 writes its first title "T = Tomography_5.24.0.10938: ...]", without "[" (AreTomo3#61).
    text = _tomo5_text().replace("[T = Tomography:", "T = Tomography_5.24.0.10938:")
    text = text.replace("[T =   TiltAxisAngle = -175.84  Binning = 2  SpotSize = 6]\n", "")
    path = _write(tmp_path / "Position_2.mdoc", text)
    series = read_mdoc(path)
    assert detect_flavour(path) == "tomo5" and series.flavour == "tomo5"
    assert series.tilt_axis_angle_deg == pytest.approx(85.84)
    assert series.tilt_axis_source == "RotationAngle 85.84 (Tomo5, as is)"


def test_tomo5_rule_forced_on_a_serialem_file(real_data: Path, tmp_path: Path) -> None:
    path = real_data / TS_01
    assert read_mdoc(path, flavour="serialem").tilt_axis_angle_deg == pytest.approx(85.3)
    forced = read_mdoc(path, flavour="tomo5")
    assert forced.flavour == "tomo5"
    assert forced.tilt_axis_angle_deg == pytest.approx(-85.3 - 90)  # the title read as Tomo5's TiltAxisAngle
    head, sections = _sections(_ts01_text(real_data))
    head = re.sub(r"\[T = +Tilt axis.*\]\n", "", head)
    untitled = _write(tmp_path / "TS_01.mrc.mdoc", head + "".join(sections))
    assert read_mdoc(untitled).tilt_axis_angle_deg == pytest.approx(175.3 - 90)  # SerialEM: RotationAngle-90
    assert read_mdoc(untitled, flavour="tomo5").tilt_axis_angle_deg == pytest.approx(175.3)  # Tomo5: as is


def _split_bidirectional(real_data: Path, folder: Path, overlap: int) -> tuple[Path, Path]:
    """Write TS_01 as SerialEM leaves an interrupted bidirectional copy: ``-half1`` holds the first 20 tilts
    (ZValue 0..19), the stack's mdoc the rest (ZValue 20..40) plus ``overlap`` first-half tilts already copied
    into it, inverted (ZValue 0, 1, ...)."""
    head, sections = _sections(_ts01_text(real_data))
    half1 = sections[:20]
    copied = [re.sub(r"\[ZValue = \d+\]", f"[ZValue = {i}]", s) for i, s in enumerate(half1[::-1][:overlap])]
    first = _write(folder / "TS_01.mrc-half1.mdoc", head + "".join(half1))
    second = _write(folder / "TS_01.mrc.mdoc", head + "".join(copied + sections[20:]))
    return first, second


@pytest.mark.parametrize("overlap", [0, 3])
def test_bidirectional_halves_merge(real_data: Path, tmp_path: Path, overlap: int) -> None:
    first, second = _split_bidirectional(real_data, tmp_path, overlap)
    series, errors = read_mdocs([second, first])
    assert errors == [] and len(series) == 1
    ts = series[0]
    reference = read_mdoc(real_data / TS_01)
    assert ts.name == "TS_01" and set(ts.sources) == {first, second}
    assert [t.tilt_angle_deg for t in ts.tilts] == [t.tilt_angle_deg for t in reference.tilts]
    assert [t.date_time for t in ts.tilts] == [t.date_time for t in reference.tilts]
    assert [t.section_index for t in ts.tilts[20:]] == list(range(20, 41))  # ZValues continue in the stack
    # Tilts present in both files are kept once, from the stack's mdoc (their final place in the stack).
    copied = [(t.source, t.section_index) for t in ts.tilts[20 - overlap : 20]]
    assert copied == [(second, i) for i in reversed(range(overlap))]
    assert ts.tilt_axis_angle_deg == pytest.approx(85.3)


def test_two_stack_mdocs_with_one_name_are_an_error(real_data: Path, tmp_path: Path) -> None:
    text = _ts01_text(real_data)
    one, two = _write(tmp_path / "TS_01.mrc.mdoc", text), _write(tmp_path / "TS_01.st.mdoc", text)
    series, errors = read_mdocs([one, two])
    assert series == [] and len(errors) == 1 and "TS_01" in str(errors[0])


def test_movie_mdocs_beside_their_stack_mdoc(shared_real_data: Path, real_data: Path, tmp_path: Path) -> None:
    frames = sorted((shared_real_data / "turonova-cryoCAT/frames_mdoc").glob("*.mdoc"))[:3]
    stack = _write(tmp_path / "TS_019.mrc.mdoc", _ts01_text(real_data))
    series, errors = read_mdocs([stack, *frames])
    assert [s.sources for s in series] == [(stack,)]
    assert len(errors) == 1 and "not used" in str(errors[0])


def test_read_mdocs_keeps_the_stack_order_of_a_single_file(shared_real_data: Path) -> None:
    path = shared_real_data / "turonova-cryoCAT/TS_017/017.mdoc"
    (series,), errors = read_mdocs([path])
    assert errors == [] and series == read_mdoc(path)


def test_series_pickle_for_worker_processes(real_data: Path) -> None:
    """Tilt series travel to worker processes of a process pool, so they must pickle."""
    import pickle

    series = read_mdoc(real_data / TS_01)
    assert pickle.loads(pickle.dumps(series)) == series
