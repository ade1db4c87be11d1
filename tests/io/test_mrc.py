"""MRC reading and writing: real SerialEM, Thermo (FEI1/FEI2) and EMDB files, synthetic extended headers."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Literal

import mdocfile
import mrcfile
import numpy as np
import pytest

from tomoprep.errors import ImageFileError
from tomoprep.io.mrc import (
    IMOD_STAMP,
    SectionMetadata,
    read_mrc,
    read_mrc_header,
    serialem_shorts_to_float,
    write_mrc,
)


def _main_header_pixel_spacing(path: Path) -> float:
    with mrcfile.open(path, header_only=True) as mrc:
        return float(mrc.voxel_size.x)


# --- SerialEM (SERI)


def test_serialem_stack_header(real_data: Path) -> None:
    header = read_mrc_header(real_data / "nist-etspy" / "test_000.mrc")
    assert header.shape == (2, 1024, 1024)
    assert (header.dtype, header.mode) == ("int16", 1)
    assert header.pixel_spacing_angstrom == pytest.approx(7.88)
    assert header.extended_header_type == "SERI"
    assert header.labels[0].startswith("SerialEM: NIST Titan D3094")
    assert "Tilt axis angle = -90.0" in header.labels[1]
    assert len(header.sections) == 2


def test_serialem_extended_header_matches_mdoc(real_data: Path) -> None:
    path = real_data / "nist-etspy" / "test_000.mrc"
    sections = read_mrc_header(path).sections
    mdoc = mdocfile.read(path.with_name(path.name + ".mdoc")).sort_values("ZValue")
    assert len(sections) == len(mdoc) == 2
    for section, (_, row) in zip(sections, mdoc.iterrows(), strict=True):
        # Each item is a rounded int16: tilt x 100, stage x 25, intensity x 25000, magnification / 100.
        assert section.tilt_angle_deg == pytest.approx(row.TiltAngle, abs=0.005)
        assert section.magnification == row.Magnification
        assert section.dose_e_per_angstrom2 == pytest.approx(row.ExposureDose, abs=1e-6)
        assert section.extra["intensity"] == pytest.approx(row.Intensity, abs=0.5 / 25000)
        assert section.extra["stage_x_um"] == pytest.approx(row.StagePosition[0], abs=0.5 / 25)
        assert section.extra["stage_y_um"] == pytest.approx(row.StagePosition[1], abs=0.5 / 25)
        # Not in a SerialEM extended header: left to the mdoc.
        assert section.defocus_angstrom is None
        assert section.pixel_spacing_angstrom is None
        assert section.exposure_time_s is None
        assert section.voltage_kv is None


def test_serialem_data_matches_mdoc_statistics(real_data: Path) -> None:
    path = real_data / "nist-etspy" / "test_000.mrc"
    data = read_mrc(path)
    assert data.shape == (2, 1024, 1024)
    assert data.dtype == np.float32
    mdoc = mdocfile.read(path.with_name(path.name + ".mdoc")).sort_values("ZValue")
    for image, (low, high, mean) in zip(data, mdoc.MinMaxMean, strict=True):
        assert (image.min(), image.max()) == (low, high)
        assert image.mean() == pytest.approx(mean, abs=0.01)


@pytest.mark.parametrize(
    ("s1", "s2", "value"),
    [
        (0, 0, 0.0),
        (0, 3, 3.0),
        (1, 0, 256.0),
        (0, 256 + 3, 6.0),  # exponent 1
        (2, -(8 * 256 + 128), 2.5),  # (2 * 256 + 128) * 2**-8
        (-2, -(8 * 256 + 128), -2.5),
    ],
)
def test_serialem_shorts_to_float(s1: int, s2: int, value: float) -> None:
    assert serialem_shorts_to_float(s1, s2) == value


def _write_with_extended_header(
    path: Path, data: np.ndarray, extended: bytes, *, exttyp: bytes, nint: int, nreal: int
) -> None:
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 2.0
        mrc.set_extended_header(np.frombuffer(extended, dtype="V1"))
        mrc.header.exttyp = exttyp
        byteorder = mrc.header.mode.dtype.byteorder
    # nint and nreal sit in the header's spare bytes, which mrcfile does not name.
    with path.open("r+b") as stream:
        stream.seek(128)
        stream.write(struct.pack(f"{'>' if byteorder == '>' else '<'}hh", nint, nreal))


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_serialem_all_items_decoded(tmp_path: Path, byteorder: Literal["<", ">"]) -> None:
    # flags 1|2|4|8|16|32: tilt, piece X Y Z, stage X Y, magnification, intensity, dose (2 shorts) = 20 bytes
    sections = [
        (-4567, 40000 - 65536, 100, 3, 313, -80, 290, 12500, 2, -(8 * 256 + 128)),
        (1234, 0, 0, -1, 0, 0, 1150, 0, 0, 0),
    ]
    extended = b"".join(struct.pack(f"{byteorder}10h", *values) for values in sections)
    data = np.zeros((3, 4, 5), dtype=np.dtype(np.int16).newbyteorder(byteorder))
    path = tmp_path / "seri.mrc"
    _write_with_extended_header(path, data, extended, exttyp=b"SERI", nint=20, nreal=63)

    header = read_mrc_header(path)
    first, second, third = header.sections
    assert first.tilt_angle_deg == pytest.approx(-45.67)
    assert first.magnification == 29000
    assert first.dose_e_per_angstrom2 == 2.5
    assert dict(first.extra) == pytest.approx(
        {
            "piece_x": 40000,
            "piece_y": 100,
            "piece_z": 3,
            "stage_x_um": 12.52,
            "stage_y_um": -3.2,
            "intensity": 0.5,
        }
    )
    assert second.tilt_angle_deg == pytest.approx(12.34)
    assert second.extra["piece_z"] == -1
    # The extended header held records for two of the three sections.
    assert third == SectionMetadata()


def test_serialem_reserved_flag_kept_raw(tmp_path: Path) -> None:
    # flags 1|64: tilt then a reserved 2-byte item
    path = tmp_path / "reserved.mrc"
    _write_with_extended_header(
        path, np.zeros((1, 2, 2), np.float32), struct.pack("<hh", 1000, 258), exttyp=b"SERI", nint=4, nreal=65
    )
    (section,) = read_mrc_header(path).sections
    assert section.tilt_angle_deg == 10.0
    assert section.extra == {"reserved_flag_64_hex": "0201"}


def test_agard_layout_when_flags_do_not_fit(tmp_path: Path) -> None:
    # nint=1 int32 and nreal=2 float32 per section; IMOD takes the first real as the tilt angle.
    extended = struct.pack("<iff", 7, -30.5, 1.5) + struct.pack("<iff", 8, 30.5, 2.5)
    path = tmp_path / "agard.mrc"
    _write_with_extended_header(path, np.zeros((2, 2, 2), np.float32), extended, exttyp=b"AGAR", nint=1, nreal=2)
    sections = read_mrc_header(path).sections
    assert [s.tilt_angle_deg for s in sections] == [-30.5, 30.5]
    assert dict(sections[1].extra) == {"int_0": 8, "real_1": 2.5}


# --- Thermo Fisher (FEI1, FEI2)


def test_fei1_extended_header(real_data: Path) -> None:
    path = real_data / "ccpem-mrcfile" / "fei-extended.mrc.head"
    header = read_mrc_header(path)
    print(header.sections)
    assert header.extended_header_type == "FEI1"
    assert header.shape == (3838, 3710)
    assert (header.dtype, header.mode) == ("uint16", 6)
    assert header.pixel_spacing_angstrom == pytest.approx(0.8538, abs=1e-4)
    (section,) = header.sections
    # Pixel size in metres in the extended header, in Å (float32) in the main header.
    assert section.pixel_spacing_angstrom == pytest.approx(_main_header_pixel_spacing(path), rel=1e-6)
    assert section.voltage_kv == pytest.approx(300.0)
    assert section.tilt_angle_deg == pytest.approx(0.00427, abs=1e-5)  # single-particle image: untilted
    assert section.defocus_angstrom == pytest.approx(8000.0)  # EPU applied -0.8 µm
    assert section.dose_e_per_angstrom2 == pytest.approx(47.62, abs=0.01)
    assert section.exposure_time_s == pytest.approx(10.0)
    assert section.magnification == 165000
    assert section.extra["Microscope type"] == "TITAN52336320"
    assert section.extra["Application"] == "Fei EPU"
    assert section.extra["Camera name"] == "EF-CCD"
    assert section.extra["Defocus"] == pytest.approx(-9.0658e-7, rel=1e-4)  # lens readout, metres
    # Bitmask 1 flags neither the tilt-axis angle nor the dual-axis rotation: no value, not 0.
    assert "Tilt axis angle" not in section.extra
    assert "Convergence angle" not in section.extra  # parallel illumination: unflagged in bitmask 2


def test_fei2_extended_header(real_data: Path) -> None:
    path = real_data / "ccpem-mrcfile" / "epu2.9_example.mrc.head"
    header = read_mrc_header(path)
    print(header.sections)
    assert header.extended_header_type == "FEI2"
    assert header.shape == (4096, 4096)
    assert header.pixel_spacing_angstrom == pytest.approx(0.6666, abs=1e-4)
    (section,) = header.sections
    assert section.pixel_spacing_angstrom == pytest.approx(_main_header_pixel_spacing(path), rel=1e-6)
    assert section.voltage_kv == pytest.approx(300.0)
    assert section.tilt_angle_deg == pytest.approx(-0.01186, abs=1e-5)
    assert section.defocus_angstrom == pytest.approx(22000.0)  # EPU applied -2.2 µm
    assert section.dose_e_per_angstrom2 == pytest.approx(41.17, abs=0.01)
    assert section.exposure_time_s == pytest.approx(12.207756)
    assert section.magnification == 120000
    assert section.extra["Application version"] == "2.9.0.1519"
    assert section.extra["Camera name"] == "BM-Falcon"
    assert section.extra["EFTEM On"] is False
    assert "Slit width" not in section.extra  # no energy filter: unflagged
    assert "Scan rotation" not in section.extra  # FEI2 fields, all unflagged (bitmask 4 is 0)


def _within(value: float | None, low: float, high: float) -> bool:
    return value is not None and low < value < high


@pytest.mark.parametrize("name", ["fei-extended.mrc.head", "epu2.9_example.mrc.head"])
def test_fei_values_physically_plausible(real_data: Path, name: str) -> None:
    (section,) = read_mrc_header(real_data / "ccpem-mrcfile" / name).sections
    assert section.voltage_kv in (100.0, 200.0, 300.0)
    assert _within(section.pixel_spacing_angstrom, 0.1, 20)
    assert _within(section.tilt_angle_deg, -70, 70)
    assert _within(section.defocus_angstrom, 1000, 60000)  # underfocus, 0.1 to 6 µm
    assert _within(section.dose_e_per_angstrom2, 1, 200)
    assert _within(section.exposure_time_s, 0.01, 60)


@pytest.mark.parametrize(
    ("name", "expected_bytes", "actual_bytes"),
    [("fei-extended.mrc.head", 29265416, 787456), ("epu2.9_example.mrc.head", 34464768, 910336)],
)
def test_header_excerpt_data_is_truncated(real_data: Path, name: str, expected_bytes: int, actual_bytes: int) -> None:
    path = real_data / "ccpem-mrcfile" / name
    with pytest.raises(ImageFileError, match="truncated") as info:
        read_mrc(path)
    message = str(info.value)
    assert name in message
    assert str(expected_bytes) in message and str(actual_bytes) in message


# --- Plain files


def test_emdb_map(real_data: Path) -> None:
    path = real_data / "ccpem-mrcfile" / "EMD-3197.map"
    header = read_mrc_header(path)
    assert header.shape == (20, 20, 20)
    assert header.pixel_spacing_angstrom == pytest.approx(11.4)
    assert header.extended_header_type == ""
    assert header.sections == ()
    assert header.labels == ("::::EMDATABANK.org::::EMD-3197::::",)
    data = read_mrc(path)
    assert data.shape == (20, 20, 20) and data.dtype == np.float32
    assert (data.min(), data.max(), data.mean()) == pytest.approx((-4.134, 5.577, 0.7836), abs=1e-3)


def test_stack_without_pixel_spacing(shared_real_data: Path) -> None:
    path = shared_real_data / "turonova-cryoCAT" / "tilt_stack.mrc"
    header = read_mrc_header(path)
    assert header.shape == (4, 240, 232)
    assert header.pixel_spacing_angstrom is None
    assert read_mrc(path).shape == (4, 240, 232)


def test_imod_unsigned_bytes(tmp_path: Path) -> None:
    path = tmp_path / "bytes.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.array([[[-56, 10]]], dtype=np.int8))  # bytes 0xC8, 0x0A
    with path.open("r+b") as stream:  # as IMOD writes it: stamp, flag 1 ("signed bytes") clear
        stream.seek(152)
        stream.write(struct.pack("<ii", IMOD_STAMP, 0))
    assert read_mrc_header(path).dtype == "uint8"
    assert read_mrc(path).tolist() == [[[200.0, 10.0]]]


# --- Writing and errors


@pytest.mark.parametrize("shape", [(6, 5), (3, 6, 5)])
def test_write_read_round_trip(tmp_path: Path, shape: tuple[int, ...]) -> None:
    data = np.random.default_rng(0).normal(size=shape).astype(np.float64)
    path = tmp_path / "out.mrc"
    write_mrc(path, data, pixel_spacing_angstrom=1.35)
    header = read_mrc_header(path)
    assert header.shape == shape
    assert (header.dtype, header.mode) == ("float32", 2)
    assert header.pixel_spacing_angstrom == pytest.approx(1.35)
    back = read_mrc(path)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, data.astype(np.float32))


def test_write_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "out.mrc"
    write_mrc(path, np.zeros((2, 2)), pixel_spacing_angstrom=1.0)
    with pytest.raises(ImageFileError, match="already exists"):
        write_mrc(path, np.ones((2, 2)), pixel_spacing_angstrom=1.0)
    write_mrc(path, np.ones((2, 2)), pixel_spacing_angstrom=1.0, overwrite=True)
    assert read_mrc(path).tolist() == [[1.0, 1.0], [1.0, 1.0]]


@pytest.mark.parametrize(
    ("data", "spacing"), [(np.zeros((2, 2, 2, 2)), 1.0), (np.zeros(4), 1.0), (np.zeros((2, 2)), 0.0)]
)
def test_write_rejects_bad_arguments(tmp_path: Path, data: np.ndarray, spacing: float) -> None:
    with pytest.raises(ValueError):
        write_mrc(tmp_path / "out.mrc", data, pixel_spacing_angstrom=spacing)


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.mrc"
    write_mrc(path, np.zeros((4, 8, 8)), pixel_spacing_angstrom=2.0)
    path.write_bytes(path.read_bytes()[:-100])
    assert read_mrc_header(path).shape == (4, 8, 8)  # the header alone is intact
    with pytest.raises(ImageFileError, match=r"cut\.mrc.*truncated.*file is 1948 bytes.*implies 2048"):
        read_mrc(path)


# --- Old-style FEI/Thermo tomography stacks (no MAP stamp, nint=0/nreal=32, 131072-byte extended header)

HAADF = "nist-etspy/HAADF.mrc"


def test_old_fei_stack_opens_and_says_what_it_lacks(real_data: Path) -> None:
    header = read_mrc_header(real_data / HAADF)
    assert (header.shape, header.dtype, header.mode) == ((77, 256, 256), "int16", 1)
    assert header.labels == ("    Fei Company (c) Copyright 2003",)
    assert any("MAP" in note for note in header.irregularities)
    assert any("machine stamp" in note for note in header.irregularities)
    assert header.pixel_spacing_angstrom == 1.0  # cell = grid: the main header leaves it unset


def test_old_fei_extended_header(real_data: Path) -> None:
    sections = read_mrc_header(real_data / HAADF).sections
    rawtlt = np.loadtxt(real_data / "nist-etspy" / "HAADF.rawtlt")
    np.testing.assert_allclose([s.tilt_angle_deg for s in sections], rawtlt)
    # The acquisition log beside the file in etspy (HAADF.txt) says 3.36 nm pixels at 115000x.
    assert {s.pixel_spacing_angstrom for s in sections} == {33.6}
    assert {s.magnification for s in sections} == {115000.0}
    assert sections[0].extra["mean_int"] == pytest.approx(5039.413, abs=1e-3)
    assert sections[0].extra["real_13"] == 300000.0  # not in the definition: kept, not dropped


def test_old_fei_data_starts_after_the_extended_header(real_data: Path) -> None:
    raw = (real_data / HAADF).read_bytes()
    section_bytes = 256 * 256 * 2
    start = 1024 + 131072 + 38 * section_bytes
    expected = np.frombuffer(raw[start : start + section_bytes], dtype="<i2").reshape(256, 256)
    np.testing.assert_array_equal(read_mrc(real_data / HAADF, sections=[38])[0], expected)


def test_stampless_file_that_its_header_does_not_describe_is_refused(real_data: Path, tmp_path: Path) -> None:
    raw = (real_data / HAADF).read_bytes()
    cut = tmp_path / "cut.mrc"
    cut.write_bytes(raw[:-2])
    with pytest.raises(ImageFileError, match=r"cut\.mrc: cannot be read as MRC.*10224638 bytes.*implies 10224640"):
        read_mrc_header(cut)
    longer = tmp_path / "longer.mrc"
    longer.write_bytes(raw + bytes(512))
    with pytest.raises(ImageFileError, match=r"longer\.mrc.*10225152 bytes"):
        read_mrc(longer)
    bad_mode = tmp_path / "mode.mrc"
    bad_mode.write_bytes(raw[:12] + struct.pack("<i", 77) + raw[16:])
    with pytest.raises(ImageFileError, match=r"mode\.mrc.*mode"):
        read_mrc_header(bad_mode)


def test_missing_and_non_mrc_files(tmp_path: Path) -> None:
    with pytest.raises(ImageFileError, match="does not exist"):
        read_mrc_header(tmp_path / "absent.mrc")
    text = tmp_path / "notes.mrc"
    text.write_text("not an image\n" * 200)
    # Its "extended header" would be 1.6 GB: refused before anything of that size is read.
    with pytest.raises(ImageFileError, match=r"notes\.mrc.*extended-header size \d+ does not fit in its 2600 bytes"):
        read_mrc_header(text)
    with pytest.raises(ImageFileError, match=r"notes\.mrc"):
        read_mrc(text)


def test_gzip_compressed_file(tmp_path: Path) -> None:
    path = tmp_path / "stack.mrc.gz"
    with mrcfile.new(path, compression="gzip") as mrc:
        mrc.set_data(np.arange(24, dtype=np.int16).reshape(2, 3, 4))
        mrc.voxel_size = 3.3
    assert read_mrc_header(path).pixel_spacing_angstrom == pytest.approx(3.3)
    np.testing.assert_array_equal(read_mrc(path), np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    cut = tmp_path / "cut.mrc.gz"
    cut.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-10]))
    with pytest.raises(ImageFileError, match=r"cut\.mrc\.gz"):
        read_mrc(cut)


def test_header_pickles_for_worker_processes(real_data: Path) -> None:
    """Headers travel to worker processes of a process pool, so they must pickle."""
    import pickle

    header = read_mrc_header(real_data / "nist-etspy" / "test_000.mrc")
    assert pickle.loads(pickle.dumps(header)) == header
