"""Write tilt-series mdoc files as SerialEM and Thermo Fisher Tomography 5 write them.

SerialEM: global ``PixelSpacing``/``ImageFile``/``ImageSize``/``DataMode``/``Voltage`` lines, the titles
``[T = SerialEM: <scope>  dd-Mon-yy  HH:MM:SS]`` and ``[T =     Tilt axis angle = A, binning = 1 ...]``, then one
``[ZValue = n]`` section per image with six-significant-digit numbers, ``RotationAngle = A + 90`` and
``DateTime = dd-Mon-yy  HH:MM:SS``.

Tomo5: the titles ``[T = Tomography: <scope>  dd-Mon-yyyy  HH:MM:SS]`` and ``[T =   TiltAxisAngle = θ  Binning = 1
SpotSize = 8]`` with ``θ = -A - 90`` (its own convention), ``RotationAngle = A`` in every section, two-decimal
numbers, four-digit years (layout of the Tomo5 file quoted in AreTomo3 issue #61; see
:mod:`tomoprep.conventions` for both axis rules).

Both are written with CRLF line ends, as the Windows programs that write them do. ``A`` is the tilt-axis angle
counter-clockwise from the image Y axis (:mod:`tomoprep.conventions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np

from tomoprep.conventions import normalise_angle_deg
from tomoprep.simulate.acquisition import TiltPlan

MdocFlavour = Literal["serialem", "tomo5"]
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class MdocHeader:
    """The global part of an mdoc.

    Attributes
    ----------
    image_file
        Name of the stack the mdoc describes (``TS_01.mrc``).
    image_size_xy
        Image width and height in pixels.
    pixel_spacing_angstrom
        Pixel spacing of the images in Å (binning 1: that of the movies).
    voltage_kv
        Acceleration voltage.
    tilt_axis_angle_deg
        Nominal tilt-axis angle, degrees counter-clockwise from the image Y axis.
    start_time
        Time written in the program's title line.
    data_mode
        MRC mode of the stack (1: int16, 2: float32, 6: uint16).
    scope_name
        Microscope name in the title line.
    """

    image_file: str
    image_size_xy: tuple[int, int]
    pixel_spacing_angstrom: float
    voltage_kv: float
    tilt_axis_angle_deg: float
    start_time: datetime
    data_mode: int = 1
    scope_name: str = "tomoprep simulated Krios"


@dataclass(frozen=True)
class MdocTiltRecord:
    """One ``[ZValue]`` section: what the microscope reports about one tilt image.

    Defocus values are in µm as microscopes write them, negative for underfocus; doses in e⁻/Å².
    """

    z_value: int
    tilt_angle_deg: float
    exposure_dose_e_per_angstrom2: float
    prior_record_dose_e_per_angstrom2: float
    defocus_um: float
    target_defocus_um: float
    exposure_time_s: float
    date_time: datetime
    stage_position_um: tuple[float, float] = (0.0, 0.0)
    sub_frame_path: str | None = None
    num_sub_frames: int | None = None
    gain_reference: str | None = None


def tilt_records(
    tilts: Sequence[TiltPlan],
    *,
    sub_frame_paths: Sequence[str],
    n_frames: int,
    exposure_time_s: float,
    target_defocus_angstrom: float,
    gain_reference: str | None,
    rng: np.random.Generator,
) -> list[MdocTiltRecord]:
    """The ``[ZValue]`` records of planned tilts, in acquisition order, as the microscope reports them.

    ``Defocus`` is the scope's reading: the true mean defocus with ±250 Å of error; ``StagePosition`` a random
    area of the grid plus the tilt's tracking shift.
    """
    corner = [float(c) for c in rng.uniform(-400.0, 400.0, size=2)]  # µm
    records = []
    for tilt, path in zip(tilts, sub_frame_paths, strict=True):
        records.append(
            MdocTiltRecord(
                z_value=tilt.acquisition_index,
                tilt_angle_deg=tilt.nominal_tilt_deg,
                exposure_dose_e_per_angstrom2=tilt.dose_e_per_angstrom2,
                prior_record_dose_e_per_angstrom2=tilt.pre_exposure_e_per_angstrom2,
                defocus_um=-(tilt.defocus_angstrom + float(rng.normal(0.0, 250.0))) / 1e4,
                target_defocus_um=-target_defocus_angstrom / 1e4,
                exposure_time_s=exposure_time_s,
                date_time=tilt.date_time,
                stage_position_um=(corner[0] + tilt.shift_x_angstrom / 1e4, corner[1] + tilt.shift_y_angstrom / 1e4),
                sub_frame_path=path,
                num_sub_frames=n_frames,
                gain_reference=gain_reference,
            )
        )
    return records


def stack_records(records: Sequence[MdocTiltRecord], stack_indices: Sequence[int]) -> list[MdocTiltRecord]:
    """The sections of a stack sorted by angle, as SerialEM re-sorts a dose-symmetric stack (times kept)."""
    pairs = sorted(zip(stack_indices, records, strict=True), key=lambda pair: pair[0])
    return [replace(record, z_value=index, sub_frame_path=None, gain_reference=None) for index, record in pairs]


def format_date_time(value: datetime, *, flavour: MdocFlavour) -> str:
    """``dd-Mon-yy  HH:MM:SS`` (SerialEM) or ``dd-Mon-yyyy  HH:MM:SS`` (Tomo5), English month names."""
    year = f"{value.year % 100:02d}" if flavour == "serialem" else f"{value.year:04d}"
    return f"{value.day:02d}-{_MONTHS[value.month - 1]}-{year}  {value:%H:%M:%S}"


def movie_name(series_name: str, acquisition_index: int, intended_tilt_deg: float, suffix: str) -> str:
    """``TS_01_003_-6.0.eer``: series, acquisition index (3 digits), intended tilt (1 decimal), suffix."""
    angle = f"{intended_tilt_deg:.1f}"
    if angle == "-0.0":
        angle = "0.0"
    return f"{series_name}_{acquisition_index:03d}_{angle}{suffix}"


def windows_frame_path(name: str, *, flavour: MdocFlavour, session_folder: str = "tomoprep_sim") -> str:
    """Where the program saved a movie, as it writes ``SubFramePath`` (Windows drive or network share)."""
    if flavour == "tomo5":
        return f"\\\\192.168.12.2\\DoseFractions\\{session_folder}\\{name}"
    return f"D:\\DATA\\{session_folder}\\frames\\{name}"


def mdoc_text(header: MdocHeader, tilts: Sequence[MdocTiltRecord], *, flavour: MdocFlavour) -> str:
    """The mdoc text with ``\\n`` line ends (:func:`write_mdoc` writes it with CRLF)."""
    writer = _serialem if flavour == "serialem" else _tomo5
    lines = writer(header, tilts)
    return "\n".join(lines) + "\n"


def write_mdoc(path: Path, header: MdocHeader, tilts: Sequence[MdocTiltRecord], *, flavour: MdocFlavour) -> None:
    """Write an mdoc file with CRLF line ends (sections in the order given)."""
    Path(path).write_bytes(mdoc_text(header, tilts, flavour=flavour).replace("\n", "\r\n").encode("ascii"))


def _g(value: float) -> str:
    """SerialEM's number format: up to six significant digits."""
    text = f"{value:.6g}"
    return "0" if text == "-0" else text


def _f2(value: float) -> str:
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def _serialem(header: MdocHeader, tilts: Sequence[MdocTiltRecord]) -> list[str]:
    axis = normalise_angle_deg(header.tilt_axis_angle_deg)
    stamp = format_date_time(header.start_time, flavour="serialem")
    lines = [
        f"PixelSpacing = {_g(header.pixel_spacing_angstrom)}",
        f"Voltage = {_g(header.voltage_kv)}",
        f"ImageFile = {header.image_file}",
        f"ImageSize = {header.image_size_xy[0]} {header.image_size_xy[1]}",
        f"DataMode = {header.data_mode}",
        "",
        f"[T = SerialEM: {header.scope_name:<40s}{stamp}    ]",
        "",
        f"[T =     Tilt axis angle = {_g(axis)}, binning = 1  spot = 8  camera = 0]",
        "",
    ]
    rotation = normalise_angle_deg(axis + 90.0)
    for tilt in tilts:
        lines.append(f"[ZValue = {tilt.z_value}]")
        if tilt.gain_reference:
            lines.append(f"GainReference = {tilt.gain_reference}")
        lines += [
            f"TiltAngle = {_g(tilt.tilt_angle_deg)}",
            f"StagePosition = {_g(tilt.stage_position_um[0])} {_g(tilt.stage_position_um[1])}",
            "StageZ = 12.4816",
            f"Magnification = {_magnification(header.pixel_spacing_angstrom)}",
            "Intensity = 0.0891174",
            f"ExposureDose = {_g(tilt.exposure_dose_e_per_angstrom2)}",
            f"PixelSpacing = {_g(header.pixel_spacing_angstrom)}",
            "SpotSize = 8",
            f"Defocus = {_g(tilt.defocus_um)}",
            "ImageShift = 0 0",
            f"RotationAngle = {_g(rotation)}",
            f"ExposureTime = {_g(tilt.exposure_time_s)}",
            "Binning = 1",
            "CameraIndex = 0",
            "DividedBy2 = 0",
            "MagIndex = 31",
            f"TargetDefocus = {_g(tilt.target_defocus_um)}",
            f"PriorRecordDose = {_g(tilt.prior_record_dose_e_per_angstrom2)}",
            *_frame_lines(tilt),
            f"DateTime = {format_date_time(tilt.date_time, flavour='serialem')}",
            "",
        ]
    return lines


def _tomo5(header: MdocHeader, tilts: Sequence[MdocTiltRecord]) -> list[str]:
    axis = normalise_angle_deg(header.tilt_axis_angle_deg)
    theta = normalise_angle_deg(-axis - 90.0)  # Tomo5's own axis convention (conventions.py)
    stamp = format_date_time(header.start_time, flavour="tomo5")
    lines = [
        f"DataMode = {header.data_mode}",
        f"ImageSize = {header.image_size_xy[0]} {header.image_size_xy[1]}",
        f"ImageFile = {header.image_file}",
        f"PixelSpacing = {_f2(header.pixel_spacing_angstrom)}",
        f"Voltage = {_f2(header.voltage_kv)}",
        "",
        f"[T = Tomography: {header.scope_name}    {stamp}]",
        "",
        f"[T =   TiltAxisAngle = {_f2(theta)}  Binning = 1  SpotSize = 8]",
    ]
    for tilt in tilts:
        lines += [
            "",
            f"[ZValue = {tilt.z_value}]",
            f"TiltAngle = {_f2(tilt.tilt_angle_deg)}",
            f"StagePosition = {_f2(tilt.stage_position_um[0])} {_f2(tilt.stage_position_um[1])} ",
            f"ExposureDose = {_f2(tilt.exposure_dose_e_per_angstrom2)}",
            f"PixelSpacing = {_f2(header.pixel_spacing_angstrom)}",
            f"Defocus = {_f2(tilt.defocus_um)}",
            f"RotationAngle = {_f2(axis)}",
            f"ExposureTime = {_f2(tilt.exposure_time_s)}",
            "Binning = 1",
            "CountsPerElectron = NaN",
            f"TargetDefocus = {_f2(tilt.target_defocus_um)}",
            f"PriorRecordDose = {_f2(tilt.prior_record_dose_e_per_angstrom2)}",
            *_frame_lines(tilt),
            f"DateTime = {format_date_time(tilt.date_time, flavour='tomo5')}",
            "ChannelName = ",
        ]
        if tilt.gain_reference:
            lines.append(f"GainReference = {tilt.gain_reference}")
    return lines


def _frame_lines(tilt: MdocTiltRecord) -> list[str]:
    if tilt.sub_frame_path is None:
        return []
    lines = [f"SubFramePath = {tilt.sub_frame_path}"]
    if tilt.num_sub_frames:
        per_frame = tilt.exposure_dose_e_per_angstrom2 / tilt.num_sub_frames
        lines.append(f"NumSubFrames = {tilt.num_sub_frames}")
        lines.append(f"FrameDosesAndNumber = {per_frame:.4g} {tilt.num_sub_frames}")
    return lines


def _magnification(pixel_spacing_angstrom: float) -> int:
    """A nominal magnification for a 5 µm camera pixel (only written, never used)."""
    return int(round(5e4 / pixel_spacing_angstrom / 100.0) * 100)
